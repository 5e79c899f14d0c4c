# Log-based metrics and alerts. The functions log one JSON line per record (shared/logs.py);
# Cloud Run turns it into a LogEntry whose jsonPayload holds the fields below.

locals {
  monitored_services = [for key, spec in local.functions : spec.name]

  # Every subscription with a dead-letter policy: the pushes to the functions and, when the
  # warehouse export is on, the BigQuery subscriptions (a schema mismatch dead-letters there).
  dead_lettering_subscriptions = concat(
    [for subscription in google_pubsub_subscription.push : subscription.name],
    [for subscription in google_pubsub_subscription.bigquery : subscription.name],
  )

  function_logs_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "resource.labels.service_name=(${join(" OR ", [for name in local.monitored_services : "\"${name}\""])})",
  ])

  alert_documentation_dead_letters = <<-EOT
    Events were dead-lettered: by a function (a permanent error such as invalid JSON, a
    missing client_id or an event older than the allowed lateness; the metric's `reason`
    label says which), or by Pub/Sub after ${var.max_delivery_attempts} failed deliveries.

    Inspect without consuming:
    `gcloud pubsub subscriptions pull ${local.topics["RESOLVE_DEAD_LETTER_TOPIC"]}-pull --project=${var.project_id} --limit=10`
    `gcloud pubsub subscriptions pull ${local.topics["FORWARD_DEAD_LETTER_TOPIC"]}-pull --project=${var.project_id} --limit=10`

    A dead letter written by a function is a JSON object with `reason`, `detail` and the
    original `payload`; one written by Pub/Sub is the original message unchanged.
  EOT

  alert_documentation_errors = <<-EOT
    A ga4-stitch function logged at severity ERROR or above. Transient failures (Firestore
    contention, GA4 5xx/429) are retried by Pub/Sub; a steady rate means events are piling
    up towards the dead-letter topics.

    Logs: Cloud Logging, filter `${local.function_logs_filter} AND severity>=ERROR`.
  EOT
}

resource "google_logging_metric" "dead_lettered" {
  project     = var.project_id
  name        = "ga4-stitch/dead-lettered-events"
  description = "Events a ga4-stitch function dead-lettered, by reason."
  filter      = "${local.function_logs_filter} AND jsonPayload.event=\"dead_lettered\""

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "ga4-stitch dead-lettered events"

    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Why the event was dead-lettered (a PermanentError reason)."
    }
    labels {
      key         = "service"
      value_type  = "STRING"
      description = "The function that dead-lettered it."
    }
  }

  label_extractors = {
    reason  = "EXTRACT(jsonPayload.reason)"
    service = "EXTRACT(resource.labels.service_name)"
  }

  depends_on = [google_project_service.this]
}

resource "google_logging_metric" "function_errors" {
  project     = var.project_id
  name        = "ga4-stitch/function-errors"
  description = "Log entries at severity ERROR or above from the ga4-stitch functions."
  filter      = "${local.function_logs_filter} AND severity>=ERROR"

  metric_descriptor {
    metric_kind  = "DELTA"
    value_type   = "INT64"
    unit         = "1"
    display_name = "ga4-stitch function errors"

    labels {
      key         = "service"
      value_type  = "STRING"
      description = "The function that logged the error."
    }
  }

  label_extractors = {
    service = "EXTRACT(resource.labels.service_name)"
  }

  depends_on = [google_project_service.this]
}

resource "google_monitoring_alert_policy" "dead_letters" {
  project               = var.project_id
  display_name          = "ga4-stitch: events dead-lettered"
  combiner              = "OR"
  notification_channels = var.notification_channel_ids
  user_labels           = local.labels
  severity              = "WARNING"

  conditions {
    display_name = "A function dead-lettered events"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.dead_lettered.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.dead_letter_alert_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "${var.alert_alignment_period_seconds}s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.reason"]
      }

      trigger {
        count = 1
      }
    }
  }

  conditions {
    display_name = "Pub/Sub dead-lettered undeliverable messages (function pushes or BigQuery export)"

    condition_threshold {
      filter          = "metric.type=\"pubsub.googleapis.com/subscription/dead_letter_message_count\" AND resource.type=\"pubsub_subscription\" AND resource.label.subscription_id=one_of(${join(", ", [for name in local.dead_lettering_subscriptions : "\"${name}\""])})"
      comparison      = "COMPARISON_GT"
      threshold_value = 0
      duration        = "0s"

      aggregations {
        alignment_period     = "${var.alert_alignment_period_seconds}s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["resource.label.subscription_id"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    content   = local.alert_documentation_dead_letters
    mime_type = "text/markdown"
  }
}

resource "google_monitoring_alert_policy" "function_errors" {
  project               = var.project_id
  display_name          = "ga4-stitch: function errors"
  combiner              = "OR"
  notification_channels = var.notification_channel_ids
  user_labels           = local.labels
  severity              = "ERROR"

  conditions {
    display_name = "A function logged errors"

    condition_threshold {
      filter          = "metric.type=\"logging.googleapis.com/user/${google_logging_metric.function_errors.name}\" AND resource.type=\"cloud_run_revision\""
      comparison      = "COMPARISON_GT"
      threshold_value = var.function_error_alert_threshold
      duration        = "0s"

      aggregations {
        alignment_period     = "${var.alert_alignment_period_seconds}s"
        per_series_aligner   = "ALIGN_DELTA"
        cross_series_reducer = "REDUCE_SUM"
        group_by_fields      = ["metric.label.service"]
      }

      trigger {
        count = 1
      }
    }
  }

  alert_strategy {
    auto_close = "1800s"
  }

  documentation {
    content   = local.alert_documentation_errors
    mime_type = "text/markdown"
  }
}
