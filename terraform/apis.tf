locals {
  services = concat(
    [
      "artifactregistry.googleapis.com",
      "cloudbuild.googleapis.com",
      "cloudfunctions.googleapis.com",
      "cloudresourcemanager.googleapis.com",
      "firestore.googleapis.com",
      "iam.googleapis.com",
      "logging.googleapis.com",
      "monitoring.googleapis.com",
      "pubsub.googleapis.com",
      "run.googleapis.com",
      "secretmanager.googleapis.com",
      "storage.googleapis.com",
    ],
    var.enable_bigquery_export ? ["bigquery.googleapis.com"] : [],
    # The forwarder's second destination (ga4_destination, ga4_stream_destinations).
    local.uses_data_manager ? ["datamanager.googleapis.com"] : [],
  )
}

resource "google_project_service" "this" {
  for_each = toset(local.services)

  project = var.project_id
  service = each.value

  # Other workloads in the project may use the same APIs: destroying ga4-stitch must
  # never switch them off.
  disable_on_destroy         = false
  disable_dependent_services = false
}
