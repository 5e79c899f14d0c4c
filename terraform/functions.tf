# The Cloud Functions (2nd gen). Each is HTTP-only: the pipeline functions receive
# Pub/Sub pushes (see pubsub.tf) and read the push body themselves
# (shared/adapters/push.py), which is the data of the CloudEvent an Eventarc trigger
# would deliver.

locals {
  # Key -> deployment of one entry point of functions/main.py. `secrets` names the
  # Secret Manager secrets (secrets.tf) mounted as environment variables of that name;
  # `runtime_environment` holds functions-framework's serving options (never a setting).
  pipeline_functions = {
    resolve = {
      name            = "ga4-stitch-resolve"
      entry_point     = "resolve"
      description     = "Raw event in, enriched event and identity links out."
      service_account = google_service_account.resolve.email
      scaling         = var.resolve_function
      ingress         = var.pipeline_ingress_settings
      secrets         = ["PII_HASH_SECRET", "LINK_TOKEN_SECRET", "BRIDGING_SALT"]
      # functions-framework serves THREADS requests at once (default: 4 per CPU); as many
      # as the instance's concurrency, or Cloud Run sends 80 deliveries to an instance that
      # works on 4 while the rest wait, and concurrent state writes share fewer requests.
      runtime_environment = { THREADS = tostring(var.resolve_function.concurrency) }
    }
    forward = {
      name            = "ga4-stitch-forward"
      entry_point     = "forward"
      description     = "Enriched event in, one Measurement Protocol request out."
      service_account = google_service_account.forward.email
      scaling         = var.forward_function
      ingress         = var.pipeline_ingress_settings
      secrets         = ["GA4_API_SECRET", "GA4_STREAM_SECRETS"]
      # functions-framework serves THREADS requests at once (default: 4 per CPU); as many
      # as the instance's concurrency, so concurrent deliveries can share a Data Manager
      # API request (DATA_MANAGER_BATCH_WINDOW_MS).
      runtime_environment = { THREADS = tostring(var.forward_function.concurrency) }
    }
  }

  inline_functions = {
    resolve_identity_session = {
      name                = "ga4-stitch-resolve-identity-session"
      entry_point         = "resolve_identity_session"
      description         = "Inline identity and session resolution for the GTM SC variable template."
      service_account     = one(google_service_account.inline[*].email)
      scaling             = var.inline_function
      ingress             = var.inline_ingress_settings
      secrets             = ["PII_HASH_SECRET", "LINK_TOKEN_SECRET", "BRIDGING_SALT", "INLINE_SHARED_KEY"]
      runtime_environment = {}
    }
    mint_link_token = {
      name                = "ga4-stitch-mint-link-token"
      entry_point         = "mint_link_token"
      description         = "Signed, single-use cross-domain link tokens."
      service_account     = one(google_service_account.inline[*].email)
      scaling             = var.inline_function
      ingress             = var.inline_ingress_settings
      secrets             = ["LINK_TOKEN_SECRET", "INLINE_SHARED_KEY"]
      runtime_environment = {}
    }
  }

  functions = merge(
    local.pipeline_functions,
    { for key, spec in local.inline_functions : key => spec if var.enable_inline_resolve },
  )
}

resource "google_cloudfunctions2_function" "this" {
  # checkov:skip=CKV_GCP_124: resolve and forward default to ALLOW_INTERNAL_ONLY (pipeline_ingress_settings); the optional inline functions are called by GTM SC over the internet, so they default to ALLOW_ALL but still require an IAM-authenticated caller (no allUsers invoker is ever granted).
  for_each = local.functions

  project     = var.project_id
  location    = var.region
  name        = each.value.name
  description = each.value.description
  labels      = merge(local.labels, { component = replace(each.key, "_", "-") })

  build_config {
    runtime           = var.python_runtime
    entry_point       = each.value.entry_point
    service_account   = google_service_account.build.id
    docker_repository = google_artifact_registry_repository.functions.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.source.name
      }
    }
  }

  service_config {
    available_memory                 = each.value.scaling.memory
    available_cpu                    = each.value.scaling.cpu
    timeout_seconds                  = each.value.scaling.timeout_seconds
    max_instance_request_concurrency = each.value.scaling.concurrency
    min_instance_count               = each.value.scaling.min_instances
    max_instance_count               = each.value.scaling.max_instances
    ingress_settings                 = each.value.ingress
    all_traffic_on_latest_revision   = true
    service_account_email            = each.value.service_account

    # The settings, and the serving options of functions-framework (never a setting).
    environment_variables = merge(local.settings_environment, each.value.runtime_environment)

    dynamic "secret_environment_variables" {
      for_each = [for name in each.value.secrets : name if contains(keys(local.enabled_secrets), name)]
      content {
        key        = secret_environment_variables.value
        project_id = var.project_id
        secret     = google_secret_manager_secret.this[secret_environment_variables.value].secret_id
        version    = "latest"
      }
    }
  }

  # A revision that cannot read its secrets, or a build that cannot write its image,
  # fails: grant first, deploy second.
  depends_on = [
    google_project_service.this,
    google_secret_manager_secret_iam_member.resolve_pii_hash_secret,
    google_secret_manager_secret_iam_member.resolve_link_token_secret,
    google_secret_manager_secret_iam_member.resolve_bridging_salt,
    google_secret_manager_secret_iam_member.forward_ga4_api_secret,
    google_secret_manager_secret_iam_member.forward_ga4_stream_secrets,
    google_secret_manager_secret_iam_member.inline_pii_hash_secret,
    google_secret_manager_secret_iam_member.inline_link_token_secret,
    google_secret_manager_secret_iam_member.inline_bridging_salt,
    google_secret_manager_secret_iam_member.inline_shared_key,
    google_project_iam_member.build_log_writer,
    google_artifact_registry_repository_iam_member.build_writer,
    google_project_iam_member.build_source_reader,
  ]
}
