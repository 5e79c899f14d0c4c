# What the pipeline keeps out of Cloud Logging storage (docs/cost.md, "Cloud Logging").
#
# Cloud Run writes one request log entry (run.googleapis.com/requests) for every HTTP
# request, so for every Pub/Sub push: two per event, one to resolve and one to forward,
# each about 1.2 KB billed at the ingestion price. For a push the function acknowledged
# (2xx) the entry repeats what the function's own log line says. A refused (401, 403),
# failed (5xx) or timed-out request may have no line of the function's at all, so its
# entry is always kept; Cloud Run's request metrics (request_count, request_latencies) do
# not come from these entries and are not affected. The inline functions, called by
# GTM SC over HTTP, keep every request entry.

locals {
  pipeline_request_logs_filter = join(" AND ", [
    "resource.type=\"cloud_run_revision\"",
    "logName=\"projects/${var.project_id}/logs/run.googleapis.com%2Frequests\"",
    "resource.labels.service_name=(${join(" OR ", [for key, spec in local.pipeline_functions : "\"${spec.name}\""])})",
    "httpRequest.status>=200",
    "httpRequest.status<300",
  ])
}

resource "google_logging_project_exclusion" "pipeline_request_logs" {
  count = var.exclude_pipeline_request_logs ? 1 : 0

  project     = var.project_id
  name        = "ga4-stitch-pipeline-request-logs"
  description = "Cloud Run request log entries of Pub/Sub pushes the ga4-stitch resolve and forward functions acknowledged (2xx); each function logs every delivery's outcome itself."
  filter      = local.pipeline_request_logs_filter

  depends_on = [google_project_service.this]
}
