# Secrets: created here without a value. Terraform never sees a secret's value (it would
# otherwise sit in the state file); an operator adds each version out of band, before the
# functions are deployed (README.md, "Secrets").

locals {
  # Environment variable -> Secret Manager secret id.
  secrets = {
    GA4_API_SECRET     = "ga4-stitch-ga4-api-secret"
    PII_HASH_SECRET    = "ga4-stitch-pii-hash-secret"
    LINK_TOKEN_SECRET  = "ga4-stitch-link-token-secret"
    GA4_STREAM_SECRETS = "ga4-stitch-ga4-stream-secrets"
    BRIDGING_SALT      = "ga4-stitch-bridging-salt"
    INLINE_SHARED_KEY  = "ga4-stitch-inline-shared-key"
  }

  # Secrets needed only with an option on; the others always exist.
  #   GA4_STREAM_SECRETS: routed streams with API secrets of their own (JSON map).
  #   BRIDGING_SALT: probabilistic cross-domain bridging (partner_domains); the settings
  #     refuse partner domains without it.
  #   INLINE_SHARED_KEY: an X-Ga4-Stitch-Key header required by the inline functions on
  #     top of Cloud Run IAM.
  #   GA4_API_SECRET: the Measurement Protocol's only; a deployment that forwards every
  #     stream through the Data Manager API authenticates with the forward function's
  #     service account instead (destinations.tf).
  optional_secrets = {
    GA4_API_SECRET     = local.uses_measurement_protocol
    GA4_STREAM_SECRETS = var.enable_ga4_stream_secrets
    BRIDGING_SALT      = length(var.partner_domains) > 0
    INLINE_SHARED_KEY  = var.enable_inline_resolve && var.enable_inline_shared_key
  }

  enabled_secrets = {
    for name, secret_id in local.secrets : name => secret_id
    if lookup(local.optional_secrets, name, true)
  }
}

resource "google_secret_manager_secret" "this" {
  for_each = local.enabled_secrets

  project   = var.project_id
  secret_id = each.value
  labels    = local.labels

  replication {
    dynamic "auto" {
      for_each = length(var.secret_replica_locations) == 0 ? [true] : []
      content {}
    }
    dynamic "user_managed" {
      for_each = length(var.secret_replica_locations) > 0 ? [var.secret_replica_locations] : []
      content {
        dynamic "replicas" {
          for_each = user_managed.value
          content {
            location = replicas.value
          }
        }
      }
    }
  }

  depends_on = [google_project_service.this]
}
