# Optional warehouse export (enable_bigquery_export): BigQuery subscriptions write every
# enriched event and every identity link to a table, so analysts can restitch earlier
# anonymous sessions and measure how often browser and server sessions disagree.
#
# The tables use Pub/Sub's "write metadata" layout without a topic schema: the
# subscription name, message id and publish time in their own columns, the message data
# as JSON, and the attributes (with the ordering key) as a JSON object.

locals {
  bigquery_export_tables = {
    enriched_events = {
      topic       = "ENRICHED_TOPIC"
      description = "Enriched events as the resolve function published them (the raw event plus `resolved`)."
    }
    identity_links = {
      topic       = "IDENTITY_LINKS_TOPIC"
      description = "Identity links (client_id to user_id) as the resolve function published them."
    }
  }

  bigquery_exports = {
    for table, export in local.bigquery_export_tables : table => export if var.enable_bigquery_export
  }

  bigquery_export_schema = [
    { name = "subscription_name", type = "STRING", mode = "REQUIRED", description = "Pub/Sub subscription that wrote the row." },
    { name = "message_id", type = "STRING", mode = "REQUIRED", description = "Pub/Sub message id; unique per message, use it to deduplicate redeliveries." },
    { name = "publish_time", type = "TIMESTAMP", mode = "REQUIRED", description = "When the message was published." },
    { name = "data", type = "JSON", mode = "NULLABLE", description = "The message data." },
    { name = "attributes", type = "JSON", mode = "NULLABLE", description = "The message attributes and ordering key." },
  ]
}

resource "google_bigquery_dataset" "export" {
  # checkov:skip=CKV_GCP_81: Google-managed encryption keys; customer-managed keys are an organisation policy decision outside this module.
  count = var.enable_bigquery_export ? 1 : 0

  project       = var.project_id
  dataset_id    = var.bigquery_dataset_id
  friendly_name = "ga4-stitch"
  description   = "ga4-stitch enriched events and identity links, written by Pub/Sub BigQuery subscriptions."
  location      = coalesce(var.bigquery_location, var.region)
  labels        = local.labels

  delete_contents_on_destroy = false

  depends_on = [google_project_service.this]
}

resource "google_bigquery_table" "export" {
  # checkov:skip=CKV_GCP_80: Google-managed encryption keys; customer-managed keys are an organisation policy decision outside this module.
  for_each = local.bigquery_exports

  project     = var.project_id
  dataset_id  = google_bigquery_dataset.export[0].dataset_id
  table_id    = each.key
  description = each.value.description
  labels      = local.labels

  deletion_protection = var.bigquery_deletion_protection

  time_partitioning {
    type          = "DAY"
    field         = "publish_time"
    expiration_ms = var.bigquery_partition_expiration_days == null ? null : var.bigquery_partition_expiration_days * 86400000
  }

  schema = jsonencode(local.bigquery_export_schema)
}

# Rows that BigQuery refuses (for example data that is not valid JSON) go here instead of
# blocking the subscription's backlog.
resource "google_pubsub_topic" "bigquery_dead_letter" {
  # checkov:skip=CKV_GCP_83: Google-managed encryption keys; customer-managed keys are an organisation policy decision outside this module.
  count = var.enable_bigquery_export ? 1 : 0

  project                    = var.project_id
  name                       = "ga4-stitch-bigquery-export-dead-letter"
  labels                     = local.labels
  message_retention_duration = var.topic_message_retention

  depends_on = [google_project_service.this]
}

resource "google_pubsub_subscription" "bigquery_dead_letter" {
  count = var.enable_bigquery_export ? 1 : 0

  project = var.project_id
  name    = "ga4-stitch-bigquery-export-dead-letter-pull"
  topic   = google_pubsub_topic.bigquery_dead_letter[0].id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_message_retention

  expiration_policy {
    ttl = ""
  }
}

resource "google_pubsub_subscription" "bigquery" {
  for_each = local.bigquery_exports

  project = var.project_id
  name    = "ga4-stitch-${replace(each.key, "_", "-")}-bigquery"
  topic   = google_pubsub_topic.pipeline[each.value.topic].id
  labels  = local.labels

  message_retention_duration = var.subscription_message_retention

  bigquery_config {
    table               = "${google_bigquery_table.export[each.key].project}.${google_bigquery_table.export[each.key].dataset_id}.${google_bigquery_table.export[each.key].table_id}"
    use_topic_schema    = false
    use_table_schema    = false
    write_metadata      = true
    drop_unknown_fields = false
  }

  retry_policy {
    minimum_backoff = "${var.retry_minimum_backoff_seconds}s"
    maximum_backoff = "${var.retry_maximum_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.bigquery_dead_letter[0].id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = ""
  }

  depends_on = [google_bigquery_dataset_iam_member.pubsub_agent_edits_export]
}

resource "google_bigquery_dataset_iam_member" "pubsub_agent_edits_export" {
  count = var.enable_bigquery_export ? 1 : 0

  project    = var.project_id
  dataset_id = google_bigquery_dataset.export[0].dataset_id
  role       = "roles/bigquery.dataEditor"
  member     = "serviceAccount:${local.pubsub_service_agent}"
}

resource "google_pubsub_topic_iam_member" "pubsub_agent_publishes_bigquery_dead_letter" {
  count = var.enable_bigquery_export ? 1 : 0

  project = var.project_id
  topic   = google_pubsub_topic.bigquery_dead_letter[0].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.pubsub_service_agent}"
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_subscribes_bigquery" {
  for_each = local.bigquery_exports

  project      = var.project_id
  subscription = google_pubsub_subscription.bigquery[each.key].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${local.pubsub_service_agent}"
}
