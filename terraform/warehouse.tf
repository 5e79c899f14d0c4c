# Optional dataset for the warehouse models (enable_warehouse_dataset; warehouse/ and
# docs/warehouse.md): dbt writes stitched_events, sessions, users and session_breakage
# there, reading the export tables of bigquery.tf. A service account of its own may only
# read the export dataset, write the models' dataset and run query jobs.

resource "google_bigquery_dataset" "warehouse" {
  # checkov:skip=CKV_GCP_81: Google-managed encryption keys; customer-managed keys are an organisation policy decision outside this module.
  count = var.enable_warehouse_dataset ? 1 : 0

  project       = var.project_id
  dataset_id    = var.warehouse_dataset_id
  friendly_name = "ga4-stitch warehouse"
  description   = "ga4-stitch warehouse models (dbt): stitched events, sessions, users, session breakage."
  location      = coalesce(var.bigquery_location, var.region)
  labels        = local.labels

  delete_contents_on_destroy = false

  lifecycle {
    precondition {
      condition     = var.enable_bigquery_export
      error_message = "enable_warehouse_dataset needs enable_bigquery_export: the models read the export tables."
    }
  }

  depends_on = [google_project_service.this]
}

resource "google_service_account" "warehouse" {
  count = var.enable_warehouse_dataset ? 1 : 0

  project      = var.project_id
  account_id   = "ga4-stitch-warehouse"
  display_name = "ga4-stitch warehouse models"
  description  = "Runs the dbt warehouse models: reads the export dataset, writes the warehouse dataset, runs query jobs."

  depends_on = [google_project_service.this]
}

resource "google_bigquery_dataset_iam_member" "warehouse_reads_export" {
  count = var.enable_warehouse_dataset ? 1 : 0

  project    = var.project_id
  dataset_id = google_bigquery_dataset.export[0].dataset_id
  role       = "roles/bigquery.dataViewer"
  member     = "serviceAccount:${google_service_account.warehouse[0].email}"
}

resource "google_bigquery_dataset_iam_member" "warehouse_writes_models" {
  count = var.enable_warehouse_dataset ? 1 : 0

  project    = var.project_id
  dataset_id = google_bigquery_dataset.warehouse[0].dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${google_service_account.warehouse[0].email}"
}

resource "google_project_iam_member" "warehouse_runs_jobs" {
  count = var.enable_warehouse_dataset ? 1 : 0

  project = var.project_id
  role    = "roles/bigquery.jobUser"
  member  = "serviceAccount:${google_service_account.warehouse[0].email}"
}

output "warehouse" {
  description = "The warehouse models' dataset (PROJECT.DATASET) and the service account dbt runs as, when enable_warehouse_dataset is true."
  value = var.enable_warehouse_dataset ? {
    dataset         = "${google_bigquery_dataset.warehouse[0].project}.${google_bigquery_dataset.warehouse[0].dataset_id}"
    service_account = google_service_account.warehouse[0].email
  } : null
}
