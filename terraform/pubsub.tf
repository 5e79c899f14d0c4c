# Topics and subscriptions.
#
# The pipeline topics carry the names in docs/contracts.md, keyed by the environment
# variable through which the functions learn each name (shared.settings.TOPIC_DEFAULTS).
# The functions are HTTP-only: each is fed by an explicit push subscription, because an
# Eventarc trigger's managed subscription cannot carry a dead-letter policy.

locals {
  topics = {
    RAW_EVENTS_TOPIC          = "ga4-stitch-raw-events"
    ENRICHED_TOPIC            = "ga4-stitch-enriched-events"
    IDENTITY_LINKS_TOPIC      = "ga4-stitch-identity-links"
    RESOLVE_DEAD_LETTER_TOPIC = "ga4-stitch-raw-events-dead-letter"
    FORWARD_DEAD_LETTER_TOPIC = "ga4-stitch-enriched-events-dead-letter"
  }

  dead_letter_topics = ["RESOLVE_DEAD_LETTER_TOPIC", "FORWARD_DEAD_LETTER_TOPIC"]

  # Push subscription -> the topic it reads, the function it feeds, where its dead
  # letters go.
  push_subscriptions = {
    resolve = {
      name        = "ga4-stitch-resolve"
      topic       = "RAW_EVENTS_TOPIC"
      dead_letter = "RESOLVE_DEAD_LETTER_TOPIC"
    }
    forward = {
      name        = "ga4-stitch-forward"
      topic       = "ENRICHED_TOPIC"
      dead_letter = "FORWARD_DEAD_LETTER_TOPIC"
    }
  }
}

resource "google_pubsub_topic" "pipeline" {
  # checkov:skip=CKV_GCP_83: Google-managed encryption keys; customer-managed keys are an organisation policy decision outside this module.
  for_each = local.topics

  project = var.project_id
  name    = each.value
  labels  = local.labels

  # Topic retention lets an operator seek a subscription back in time after a bad
  # deployment, independently of the subscriptions' own backlog.
  message_retention_duration = var.topic_message_retention

  dynamic "message_storage_policy" {
    for_each = length(var.message_storage_regions) > 0 ? [var.message_storage_regions] : []
    content {
      allowed_persistence_regions = message_storage_policy.value
    }
  }

  depends_on = [google_project_service.this]
}

# One push subscription per pipeline function.
resource "google_pubsub_subscription" "push" {
  for_each = local.push_subscriptions

  project = var.project_id
  name    = each.value.name
  topic   = google_pubsub_topic.pipeline[each.value.topic].id
  labels  = local.labels

  ack_deadline_seconds       = var.ack_deadline_seconds
  message_retention_duration = var.subscription_message_retention

  # Messages carry client_id as the ordering key: one browser's events reach the
  # function one at a time, in the order Pub/Sub received them (not necessarily the
  # order the browser sent them: the resolver decides on event time), different
  # browsers in parallel.
  enable_message_ordering = true

  push_config {
    push_endpoint = google_cloudfunctions2_function.this[each.key].service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.push.email
      audience              = google_cloudfunctions2_function.this[each.key].service_config[0].uri
    }
  }

  retry_policy {
    minimum_backoff = "${var.retry_minimum_backoff_seconds}s"
    maximum_backoff = "${var.retry_maximum_backoff_seconds}s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.pipeline[each.value.dead_letter].id
    max_delivery_attempts = var.max_delivery_attempts
  }

  # A pipeline subscription must never expire, however quiet the site.
  expiration_policy {
    ttl = ""
  }

  lifecycle {
    precondition {
      condition     = var.retry_minimum_backoff_seconds <= var.retry_maximum_backoff_seconds
      error_message = "retry_minimum_backoff_seconds must not exceed retry_maximum_backoff_seconds."
    }
    precondition {
      condition     = local.pipeline_functions[each.key].scaling.timeout_seconds <= var.ack_deadline_seconds
      error_message = "The ${each.key} function's timeout_seconds must not exceed ack_deadline_seconds, or Pub/Sub redelivers messages the function is still handling."
    }
    precondition {
      # The longest send: the retry budget, then one attempt (connect and read timeouts),
      # then the ledger mark; past the function's timeout a sent event would be redelivered.
      condition     = each.key != "forward" || var.ga4_retry_budget_seconds + 2 * var.ga4_timeout_seconds + 10 <= local.pipeline_functions[each.key].scaling.timeout_seconds
      error_message = "forward_function.timeout_seconds must be at least ga4_retry_budget_seconds + 2 * ga4_timeout_seconds + 10, or a send that GA4 took could be redelivered and sent twice."
    }
  }
}

# Pull subscriptions for inspecting and replaying dead letters
# (`gcloud pubsub subscriptions pull ... --auto-ack=false`).
resource "google_pubsub_subscription" "dead_letter" {
  for_each = toset(local.dead_letter_topics)

  project = var.project_id
  name    = "${local.topics[each.value]}-pull"
  topic   = google_pubsub_topic.pipeline[each.value].id
  labels  = local.labels

  ack_deadline_seconds       = 60
  message_retention_duration = var.dead_letter_message_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}
