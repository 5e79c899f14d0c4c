# Service accounts and IAM grants, one grant per resource, each as narrow as the service
# allows. README.md, "Least privilege", lists every grant with its reason;
# tests/terraform/test_structure.py fails when this file and that table disagree.

resource "google_service_account" "resolve" {
  project      = var.project_id
  account_id   = "ga4-stitch-resolve"
  display_name = "ga4-stitch resolve function"
  description  = "Runtime identity of the resolve function: Firestore state, publishes enriched events, identity links and dead letters."

  depends_on = [google_project_service.this]
}

resource "google_service_account" "forward" {
  project      = var.project_id
  account_id   = "ga4-stitch-forward"
  display_name = "ga4-stitch forward function"
  description  = "Runtime identity of the forward function: Firestore forwarding state, the GA4 API secret, publishes dead letters; the Data Manager API's caller (destinations.tf)."

  # The identity the forwarder reaches GA4 with: a plan whose destinations it could not
  # use stops here, before anything is deployed (destinations.tf).
  lifecycle {
    precondition {
      condition     = var.ga4_destination != "data_manager" || var.ga4_property_id != ""
      error_message = "ga4_destination = \"data_manager\" needs ga4_property_id: the Data Manager API addresses the GA4 property, not only its stream."
    }
    precondition {
      condition = alltrue([
        for measurement_id, destination in var.ga4_stream_destinations :
        destination != "data_manager" || var.ga4_property_id != "" || contains(keys(var.ga4_stream_properties), measurement_id)
      ])
      error_message = "Every stream ga4_stream_destinations sends through the Data Manager API needs a property: ga4_stream_properties[measurement id], or ga4_property_id."
    }
    precondition {
      condition     = local.uses_measurement_protocol || !var.enable_ga4_stream_secrets
      error_message = "No stream is forwarded through the Measurement Protocol, so no API secret is needed: GA4_API_SECRET is not created, and enable_ga4_stream_secrets must stay false."
    }
    precondition {
      condition     = length(var.data_manager_ads_conversions) == 0 || local.uses_data_manager
      error_message = "data_manager_ads_conversions is sent through the Data Manager API only: set ga4_destination (or a ga4_stream_destinations entry) to \"data_manager\"."
    }
  }

  depends_on = [google_project_service.this]
}

resource "google_service_account" "inline" {
  count = var.enable_inline_resolve ? 1 : 0

  project      = var.project_id
  account_id   = "ga4-stitch-inline"
  display_name = "ga4-stitch inline functions"
  description  = "Runtime identity of resolve_identity_session and mint_link_token: Firestore state, publishes identity links."

  depends_on = [google_project_service.this]
}

resource "google_service_account" "push" {
  project      = var.project_id
  account_id   = "ga4-stitch-push"
  display_name = "ga4-stitch Pub/Sub push"
  description  = "Identity in the OIDC token of Pub/Sub pushes to the pipeline functions; may only invoke them."

  depends_on = [google_project_service.this]
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "ga4-stitch-build"
  display_name = "ga4-stitch function builds"
  description  = "Cloud Build identity for building the ga4-stitch functions."

  depends_on = [google_project_service.this]
}

locals {
  # Firestore grants are project-level roles; this condition narrows them to the
  # ga4-stitch database.
  firestore_condition = {
    title      = "ga4-stitch-database-only"
    expression = "resource.name == \"projects/${var.project_id}/databases/${var.firestore_database}\""
  }

  # Cloud Functions copies the source object into its own gcf-v2-sources-* bucket before
  # building, so the build reads from there as well as from our bucket. The trailing "/"
  # keeps a bucket whose name merely starts with ours (ours-old, ours-2) out.
  build_source_condition = {
    title      = "ga4-stitch-function-sources-only"
    expression = "resource.name.startsWith(\"projects/_/buckets/gcf-v2-sources-${data.google_project.this.number}-\") || resource.name.startsWith(\"projects/_/buckets/${google_storage_bucket.source.name}/\")"
  }

  inline_invokers = var.enable_inline_resolve ? toset(coalescelist(
    var.inline_invoker_members,
    ["serviceAccount:${var.gtm_server_service_account_email}"],
  )) : toset([])
}

# --- resolve ---------------------------------------------------------------------------

resource "google_project_iam_member" "resolve_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.resolve.email}"

  condition {
    title      = local.firestore_condition.title
    expression = local.firestore_condition.expression
  }
}

resource "google_project_iam_member" "resolve_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.resolve.email}"
}

resource "google_pubsub_topic_iam_member" "resolve_publishes_enriched" {
  project = var.project_id
  topic   = google_pubsub_topic.pipeline["ENRICHED_TOPIC"].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.resolve.email}"
}

resource "google_pubsub_topic_iam_member" "resolve_publishes_identity_links" {
  project = var.project_id
  topic   = google_pubsub_topic.pipeline["IDENTITY_LINKS_TOPIC"].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.resolve.email}"
}

resource "google_pubsub_topic_iam_member" "resolve_publishes_dead_letter" {
  project = var.project_id
  topic   = google_pubsub_topic.pipeline["RESOLVE_DEAD_LETTER_TOPIC"].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.resolve.email}"
}

resource "google_secret_manager_secret_iam_member" "resolve_pii_hash_secret" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.this["PII_HASH_SECRET"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.resolve.email}"
}

resource "google_secret_manager_secret_iam_member" "resolve_link_token_secret" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.this["LINK_TOKEN_SECRET"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.resolve.email}"
}

resource "google_secret_manager_secret_iam_member" "resolve_bridging_salt" {
  count = length(var.partner_domains) > 0 ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.this["BRIDGING_SALT"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.resolve.email}"
}

# --- forward ---------------------------------------------------------------------------

resource "google_project_iam_member" "forward_datastore_user" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.forward.email}"

  condition {
    title      = local.firestore_condition.title
    expression = local.firestore_condition.expression
  }
}

resource "google_project_iam_member" "forward_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.forward.email}"
}

resource "google_pubsub_topic_iam_member" "forward_publishes_dead_letter" {
  project = var.project_id
  topic   = google_pubsub_topic.pipeline["FORWARD_DEAD_LETTER_TOPIC"].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.forward.email}"
}

resource "google_secret_manager_secret_iam_member" "forward_ga4_api_secret" {
  count = local.uses_measurement_protocol ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.this["GA4_API_SECRET"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.forward.email}"
}

resource "google_secret_manager_secret_iam_member" "forward_ga4_stream_secrets" {
  count = var.enable_ga4_stream_secrets ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.this["GA4_STREAM_SECRETS"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.forward.email}"
}

# --- inline functions (enable_inline_resolve) ------------------------------------------

resource "google_project_iam_member" "inline_datastore_user" {
  count = var.enable_inline_resolve ? 1 : 0

  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.inline[0].email}"

  condition {
    title      = local.firestore_condition.title
    expression = local.firestore_condition.expression
  }
}

resource "google_project_iam_member" "inline_log_writer" {
  count = var.enable_inline_resolve ? 1 : 0

  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.inline[0].email}"
}

resource "google_pubsub_topic_iam_member" "inline_publishes_identity_links" {
  count = var.enable_inline_resolve ? 1 : 0

  project = var.project_id
  topic   = google_pubsub_topic.pipeline["IDENTITY_LINKS_TOPIC"].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.inline[0].email}"
}

resource "google_secret_manager_secret_iam_member" "inline_pii_hash_secret" {
  count = var.enable_inline_resolve ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.this["PII_HASH_SECRET"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.inline[0].email}"
}

resource "google_secret_manager_secret_iam_member" "inline_link_token_secret" {
  count = var.enable_inline_resolve ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.this["LINK_TOKEN_SECRET"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.inline[0].email}"
}

resource "google_secret_manager_secret_iam_member" "inline_bridging_salt" {
  count = var.enable_inline_resolve && length(var.partner_domains) > 0 ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.this["BRIDGING_SALT"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.inline[0].email}"
}

resource "google_secret_manager_secret_iam_member" "inline_shared_key" {
  count = var.enable_inline_resolve && var.enable_inline_shared_key ? 1 : 0

  project   = var.project_id
  secret_id = google_secret_manager_secret.this["INLINE_SHARED_KEY"].secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.inline[0].email}"
}

# The function's Cloud Run service carries the function's name.
resource "google_cloud_run_service_iam_member" "invokers_call_resolve_identity_session" {
  for_each = local.inline_invokers

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.this["resolve_identity_session"].name
  role     = "roles/run.invoker"
  member   = each.value
}

resource "google_cloud_run_service_iam_member" "invokers_call_mint_link_token" {
  for_each = local.inline_invokers

  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.this["mint_link_token"].name
  role     = "roles/run.invoker"
  member   = each.value
}

# --- push delivery ---------------------------------------------------------------------

resource "google_cloud_run_service_iam_member" "push_invokes_resolve" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.this["resolve"].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"
}

resource "google_cloud_run_service_iam_member" "push_invokes_forward" {
  project  = var.project_id
  location = var.region
  service  = google_cloudfunctions2_function.this["forward"].name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push.email}"
}

# --- Pub/Sub service agent -------------------------------------------------------------

resource "google_service_account_iam_member" "pubsub_agent_mints_push_tokens" {
  service_account_id = google_service_account.push.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = "serviceAccount:${local.pubsub_service_agent}"
}

resource "google_pubsub_topic_iam_member" "pubsub_agent_publishes_resolve_dead_letter" {
  project = var.project_id
  topic   = google_pubsub_topic.pipeline["RESOLVE_DEAD_LETTER_TOPIC"].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.pubsub_service_agent}"
}

resource "google_pubsub_topic_iam_member" "pubsub_agent_publishes_forward_dead_letter" {
  project = var.project_id
  topic   = google_pubsub_topic.pipeline["FORWARD_DEAD_LETTER_TOPIC"].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${local.pubsub_service_agent}"
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_subscribes_resolve" {
  project      = var.project_id
  subscription = google_pubsub_subscription.push["resolve"].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${local.pubsub_service_agent}"
}

resource "google_pubsub_subscription_iam_member" "pubsub_agent_subscribes_forward" {
  project      = var.project_id
  subscription = google_pubsub_subscription.push["forward"].name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${local.pubsub_service_agent}"
}

# --- GTM server container --------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "gtm_server_publishes_raw_events" {
  project = var.project_id
  topic   = google_pubsub_topic.pipeline["RAW_EVENTS_TOPIC"].name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${var.gtm_server_service_account_email}"
}

# --- builds ----------------------------------------------------------------------------

resource "google_project_iam_member" "build_log_writer" {
  project = var.project_id
  role    = "roles/logging.logWriter"
  member  = "serviceAccount:${google_service_account.build.email}"
}

resource "google_project_iam_member" "build_source_reader" {
  project = var.project_id
  role    = "roles/storage.objectViewer"
  member  = "serviceAccount:${google_service_account.build.email}"

  condition {
    title      = local.build_source_condition.title
    expression = local.build_source_condition.expression
  }
}

resource "google_artifact_registry_repository_iam_member" "build_writer" {
  project    = var.project_id
  location   = var.region
  repository = google_artifact_registry_repository.functions.name
  role       = "roles/artifactregistry.writer"
  member     = "serviceAccount:${google_service_account.build.email}"
}
