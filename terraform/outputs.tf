# What an operator needs after `terraform apply`: where GTM SC publishes, where dead
# letters wait, which secrets still need a value, and where to look when alerts fire.

output "raw_events_topic" {
  description = "Topic the GTM SC tag publishes raw events to: the short name (the tag's topic field) and the full id."
  value = {
    name = google_pubsub_topic.pipeline["RAW_EVENTS_TOPIC"].name
    id   = google_pubsub_topic.pipeline["RAW_EVENTS_TOPIC"].id
  }
}

output "topics" {
  description = "Every pipeline topic, keyed by the environment variable that names it to the functions."
  value       = { for key, topic in google_pubsub_topic.pipeline : key => topic.id }
}

output "push_subscriptions" {
  description = "Push subscription feeding each pipeline function."
  value       = { for key, subscription in google_pubsub_subscription.push : key => subscription.id }
}

output "dead_letter_subscriptions" {
  description = "Pull subscriptions on the dead-letter topics, for inspection and replay (`gcloud pubsub subscriptions pull NAME --limit=10`)."
  value = merge(
    { for key, subscription in google_pubsub_subscription.dead_letter : key => subscription.name },
    { for subscription in google_pubsub_subscription.bigquery_dead_letter : "BIGQUERY_EXPORT" => subscription.name },
  )
}

output "functions" {
  description = "Each deployed function: name, Cloud Run URI and runtime service account."
  value = {
    for key, function in google_cloudfunctions2_function.this : key => {
      name            = function.name
      uri             = function.service_config[0].uri
      service_account = function.service_config[0].service_account_email
    }
  }
}

output "inline_endpoints" {
  description = "URLs of the inline HTTP functions for the GTM SC variable template (empty unless enable_inline_resolve)."
  value = {
    for key, function in google_cloudfunctions2_function.this : key => function.service_config[0].uri
    if contains(keys(local.inline_functions), key)
  }
}

output "service_accounts" {
  description = "Service accounts created here, by role."
  value = {
    resolve = google_service_account.resolve.email
    forward = google_service_account.forward.email
    inline  = one(google_service_account.inline[*].email)
    push    = google_service_account.push.email
    build   = google_service_account.build.email
  }
}

output "secrets" {
  description = "Secret Manager secrets, keyed by environment variable; each needs a version before the functions can start (README.md, \"Secrets\")."
  value       = { for key, secret in google_secret_manager_secret.this : key => secret.id }
}

output "secret_version_commands" {
  description = "Commands that add a secret's first version; run each once, with the value on standard input."
  value = {
    for key, secret in google_secret_manager_secret.this :
    key => "gcloud secrets versions add ${secret.secret_id} --project=${var.project_id} --data-file=-"
  }
}

output "firestore_database" {
  description = "Firestore database holding identity and session state."
  value       = var.firestore_database
}

output "source_object" {
  description = "Deployed source archive (gs:// URL); its name carries the archive's MD5, so it changes with the code."
  value       = "gs://${google_storage_bucket.source.name}/${google_storage_bucket_object.source.name}"
}

output "bigquery_tables" {
  description = "Export tables (PROJECT.DATASET.TABLE), when enable_bigquery_export is true."
  value = {
    for key, table in google_bigquery_table.export :
    key => "${table.project}.${table.dataset_id}.${table.table_id}"
  }
}

output "log_metrics" {
  description = "Log-based metrics, for dashboards (metric type logging.googleapis.com/user/NAME)."
  value = {
    dead_lettered   = google_logging_metric.dead_lettered.name
    function_errors = google_logging_metric.function_errors.name
  }
}

output "alert_policies" {
  description = "Alert policies on dead letters and function errors."
  value = {
    dead_letters    = google_monitoring_alert_policy.dead_letters.name
    function_errors = google_monitoring_alert_policy.function_errors.name
  }
}
