# One Cloud Monitoring dashboard for the pipeline: what came in, what was decided, what
# reached GA4, what was refused and why, and where messages wait. Every tile reads a
# metric that exists without extra setup: the log-based metrics of monitoring.tf (the
# functions' `event` log field), Cloud Run, Pub/Sub and Firestore's own metrics.

resource "google_logging_metric" "events" {
  project     = var.project_id
  name        = "ga4-stitch/events"
  description = "Log lines of the ga4-stitch functions by their event field (resolved, forwarded, retrying, ...)."
  filter      = "${local.function_logs_filter} AND jsonPayload.event:*"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "ga4-stitch events"

    labels {
      key         = "event"
      value_type  = "STRING"
      description = "The log line's event field."
    }
    labels {
      key         = "service"
      value_type  = "STRING"
      description = "The function that logged it."
    }
  }

  label_extractors = {
    event   = "EXTRACT(jsonPayload.event)"
    service = "EXTRACT(resource.labels.service_name)"
  }

  depends_on = [google_project_service.this]
}

locals {
  events_metric = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.events.name}\" AND resource.type=\"cloud_run_revision\""

  # (title, filter, group by) of each chart; a rate per second, summed over the group.
  dashboard_charts = [
    ["Events resolved, duplicates skipped, cookieless", "${local.events_metric} AND metric.label.event=one_of(\"resolved\", \"duplicate_skipped\", \"bot_dropped\")", "metric.label.event"],
    ["Forwarded to GA4, duplicates suppressed, unknown outcomes, duplicate risks", "${local.events_metric} AND metric.label.event=one_of(\"forwarded\", \"duplicate_suppressed\", \"ga4_outcome_unknown\", \"duplicate_risk\")", "metric.label.event"],
    ["Dead-lettered by reason", "metric.type=\"logging.googleapis.com/user/${google_logging_metric.dead_lettered.name}\" AND resource.type=\"cloud_run_revision\"", "metric.label.reason"],
    ["Retries (GA4 and Firestore) by function", "${local.events_metric} AND metric.label.event=\"retrying\"", "metric.label.service"],
    ["Function responses by status", "metric.type=\"run.googleapis.com/request_count\" AND resource.type=\"cloud_run_revision\" AND resource.label.service_name=one_of(${join(", ", [for name in local.monitored_services : "\"${name}\""])})", "metric.label.response_code_class"],
    ["Firestore requests by status (ABORTED, FAILED_PRECONDITION: contention)", "metric.type=\"firestore.googleapis.com/api/request_count\" AND resource.type=\"firestore_instance\"", "metric.label.response_code"],
    ["Backlog per subscription (undelivered messages)", "metric.type=\"pubsub.googleapis.com/subscription/num_undelivered_messages\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=starts_with(\"ga4-stitch\")", "resource.label.subscription_id"],
    ["Function errors", "metric.type=\"logging.googleapis.com/user/${google_logging_metric.function_errors.name}\" AND resource.type=\"cloud_run_revision\"", "metric.label.service"],
  ]
}

resource "google_monitoring_dashboard" "pipeline" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "ga4-stitch pipeline"
    mosaicLayout = {
      columns = 12
      tiles = [
        for index, chart in local.dashboard_charts : {
          xPos   = (index % 2) * 6
          yPos   = floor(index / 2) * 4
          width  = 6
          height = 4
          widget = {
            title = chart[0]
            xyChart = {
              dataSets = [{
                plotType = "LINE"
                timeSeriesQuery = {
                  timeSeriesFilter = {
                    filter = chart[1]
                    aggregation = {
                      alignmentPeriod    = "60s"
                      perSeriesAligner   = strcontains(chart[1], "num_undelivered_messages") ? "ALIGN_MEAN" : "ALIGN_RATE"
                      crossSeriesReducer = "REDUCE_SUM"
                      groupByFields      = [chart[2]]
                    }
                  }
                }
              }]
            }
          }
        }
      ]
    }
  })

  depends_on = [google_project_service.this]
}
