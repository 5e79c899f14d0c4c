# Inputs. Ranges mirror shared/settings.py, so a value the functions would reject at
# start-up is rejected here at plan time instead.

# --- project ---------------------------------------------------------------------------

variable "project_id" {
  description = "Google Cloud project to deploy into."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lowercase letters, digits or hyphens, starting with a letter), not a project name or number."
  }
}

variable "region" {
  description = "Region for the functions, the source bucket, the image repository and the default of bigquery_location."
  type        = string
  default     = "europe-west1"

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must be a Cloud region such as europe-west1 or us-central1."
  }
}

variable "labels" {
  description = "Labels added to every resource that takes labels (app = \"ga4-stitch\" is always added)."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for key, value in var.labels :
      can(regex("^[a-z][a-z0-9_-]{0,62}$", key)) && can(regex("^[a-z0-9_-]{0,63}$", value))
    ])
    error_message = "Label keys must start with a lowercase letter; keys and values may hold only lowercase letters, digits, '_' and '-' (at most 63 characters)."
  }
}

variable "gtm_server_service_account_email" {
  description = "Service account the server-side GTM container runs as; it is granted roles/pubsub.publisher on the raw-events topic (and, by default, may call the inline functions)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9-]+@[a-z0-9-]+\\.iam\\.gserviceaccount\\.com$", var.gtm_server_service_account_email)) || can(regex("^[0-9]+-compute@developer\\.gserviceaccount\\.com$", var.gtm_server_service_account_email))
    error_message = "gtm_server_service_account_email must be a service account email (NAME@PROJECT.iam.gserviceaccount.com or the Compute Engine default NUMBER-compute@developer.gserviceaccount.com)."
  }
}

# --- Pub/Sub ---------------------------------------------------------------------------

variable "topic_message_retention" {
  description = "How long each topic keeps published messages, as seconds with an 's' suffix; lets a subscription be seeked back after a bad deployment."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.topic_message_retention)) && try(tonumber(trimsuffix(var.topic_message_retention, "s")) >= 600 && tonumber(trimsuffix(var.topic_message_retention, "s")) <= 2678400, false)
    error_message = "topic_message_retention must be between 600s (10 minutes) and 2678400s (31 days)."
  }
}

variable "message_storage_regions" {
  description = "Regions where Pub/Sub may store messages (data residency); empty allows any region."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for region in var.message_storage_regions : can(regex("^[a-z]+-[a-z]+[0-9]+$", region))])
    error_message = "message_storage_regions must hold Cloud region names such as europe-west1."
  }
}

variable "subscription_message_retention" {
  description = "How long the pipeline and export subscriptions keep unacknowledged messages, as seconds with an 's' suffix."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.subscription_message_retention)) && try(tonumber(trimsuffix(var.subscription_message_retention, "s")) >= 600 && tonumber(trimsuffix(var.subscription_message_retention, "s")) <= 604800, false)
    error_message = "subscription_message_retention must be between 600s (10 minutes) and 604800s (7 days)."
  }
}

variable "dead_letter_message_retention" {
  description = "How long the dead-letter pull subscriptions keep messages for inspection, as seconds with an 's' suffix."
  type        = string
  default     = "604800s"

  validation {
    condition     = can(regex("^[0-9]+s$", var.dead_letter_message_retention)) && try(tonumber(trimsuffix(var.dead_letter_message_retention, "s")) >= 600 && tonumber(trimsuffix(var.dead_letter_message_retention, "s")) <= 604800, false)
    error_message = "dead_letter_message_retention must be between 600s (10 minutes) and 604800s (7 days)."
  }
}

variable "ack_deadline_seconds" {
  description = "How long Pub/Sub waits for a function to answer a push before redelivering; must be at least each pipeline function's timeout."
  type        = number
  default     = 60

  validation {
    condition     = var.ack_deadline_seconds >= 10 && var.ack_deadline_seconds <= 600 && floor(var.ack_deadline_seconds) == var.ack_deadline_seconds
    error_message = "ack_deadline_seconds must be a whole number between 10 and 600."
  }
}

variable "retry_minimum_backoff_seconds" {
  description = "Shortest wait before Pub/Sub redelivers a message a function failed (exponential backoff starts here)."
  type        = number
  default     = 10

  validation {
    condition     = var.retry_minimum_backoff_seconds >= 0 && var.retry_minimum_backoff_seconds <= 600 && floor(var.retry_minimum_backoff_seconds) == var.retry_minimum_backoff_seconds
    error_message = "retry_minimum_backoff_seconds must be a whole number between 0 and 600."
  }
}

variable "retry_maximum_backoff_seconds" {
  description = "Longest wait between Pub/Sub redeliveries of a failed message."
  type        = number
  default     = 600

  validation {
    condition     = var.retry_maximum_backoff_seconds >= 0 && var.retry_maximum_backoff_seconds <= 600 && floor(var.retry_maximum_backoff_seconds) == var.retry_maximum_backoff_seconds
    error_message = "retry_maximum_backoff_seconds must be a whole number between 0 and 600."
  }
}

variable "max_delivery_attempts" {
  description = "Deliveries of one message before Pub/Sub moves it to the dead-letter topic."
  type        = number
  default     = 10

  validation {
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100 && floor(var.max_delivery_attempts) == var.max_delivery_attempts
    error_message = "max_delivery_attempts must be a whole number between 5 and 100 (Pub/Sub's limits)."
  }
}

# --- functions -------------------------------------------------------------------------

variable "python_runtime" {
  description = "Cloud Functions runtime for every function."
  type        = string
  default     = "python311"

  validation {
    condition     = contains(["python311", "python312", "python313"], var.python_runtime)
    error_message = "python_runtime must be python311, python312 or python313 (the code needs Python 3.11 or newer)."
  }
}

variable "resolve_function" {
  description = "Resources and scaling of the resolve function. concurrency is requests per instance (more than 1 needs cpu of at least 1), and the requests functions-framework serves at once (THREADS); timeout_seconds must not exceed ack_deadline_seconds."
  type = object({
    memory          = optional(string, "512Mi")
    cpu             = optional(string, "1")
    concurrency     = optional(number, 80)
    timeout_seconds = optional(number, 60)
    min_instances   = optional(number, 0)
    max_instances   = optional(number, 100)
  })
  default = {}

  validation {
    condition = (
      can(regex("^[0-9]+(Mi|Gi)$", var.resolve_function.memory)) &&
      contains(["0.083", "0.167", "0.333", "0.583", "1", "2", "4", "6", "8"], var.resolve_function.cpu) &&
      var.resolve_function.concurrency >= 1 && var.resolve_function.concurrency <= 1000 &&
      (var.resolve_function.concurrency == 1 || try(tonumber(var.resolve_function.cpu) >= 1, false)) &&
      var.resolve_function.timeout_seconds >= 1 && var.resolve_function.timeout_seconds <= 540 &&
      var.resolve_function.min_instances >= 0 && var.resolve_function.max_instances >= 1 &&
      var.resolve_function.min_instances <= var.resolve_function.max_instances &&
      var.resolve_function.max_instances <= 1000
    )
    error_message = "resolve_function: memory like 512Mi or 1Gi; cpu one of 0.083, 0.167, 0.333, 0.583, 1, 2, 4, 6, 8; concurrency 1-1000 (above 1 needs cpu >= 1); timeout_seconds 1-540; 0 <= min_instances <= max_instances <= 1000."
  }
}

variable "forward_function" {
  description = "Resources and scaling of the forward function (fields as for resolve_function). Its timeout must cover GA4 retries (ga4_retry_budget_seconds)."
  type = object({
    memory          = optional(string, "512Mi")
    cpu             = optional(string, "1")
    concurrency     = optional(number, 80)
    timeout_seconds = optional(number, 60)
    min_instances   = optional(number, 0)
    max_instances   = optional(number, 100)
  })
  default = {}

  validation {
    condition = (
      can(regex("^[0-9]+(Mi|Gi)$", var.forward_function.memory)) &&
      contains(["0.083", "0.167", "0.333", "0.583", "1", "2", "4", "6", "8"], var.forward_function.cpu) &&
      var.forward_function.concurrency >= 1 && var.forward_function.concurrency <= 1000 &&
      (var.forward_function.concurrency == 1 || try(tonumber(var.forward_function.cpu) >= 1, false)) &&
      var.forward_function.timeout_seconds >= 1 && var.forward_function.timeout_seconds <= 540 &&
      var.forward_function.min_instances >= 0 && var.forward_function.max_instances >= 1 &&
      var.forward_function.min_instances <= var.forward_function.max_instances &&
      var.forward_function.max_instances <= 1000
    )
    error_message = "forward_function: memory like 512Mi or 1Gi; cpu one of 0.083, 0.167, 0.333, 0.583, 1, 2, 4, 6, 8; concurrency 1-1000 (above 1 needs cpu >= 1); timeout_seconds 1-540; 0 <= min_instances <= max_instances <= 1000."
  }
}

variable "inline_function" {
  description = "Resources and scaling of each inline HTTP function (fields as for resolve_function); used when enable_inline_resolve is true. A GTM SC variable waits for it, so keep min_instances above 0 to avoid cold starts on page hits."
  type = object({
    memory          = optional(string, "512Mi")
    cpu             = optional(string, "1")
    concurrency     = optional(number, 80)
    timeout_seconds = optional(number, 10)
    min_instances   = optional(number, 1)
    max_instances   = optional(number, 100)
  })
  default = {}

  validation {
    condition = (
      can(regex("^[0-9]+(Mi|Gi)$", var.inline_function.memory)) &&
      contains(["0.083", "0.167", "0.333", "0.583", "1", "2", "4", "6", "8"], var.inline_function.cpu) &&
      var.inline_function.concurrency >= 1 && var.inline_function.concurrency <= 1000 &&
      (var.inline_function.concurrency == 1 || try(tonumber(var.inline_function.cpu) >= 1, false)) &&
      var.inline_function.timeout_seconds >= 1 && var.inline_function.timeout_seconds <= 540 &&
      var.inline_function.min_instances >= 0 && var.inline_function.max_instances >= 1 &&
      var.inline_function.min_instances <= var.inline_function.max_instances &&
      var.inline_function.max_instances <= 1000
    )
    error_message = "inline_function: memory like 512Mi or 1Gi; cpu one of 0.083, 0.167, 0.333, 0.583, 1, 2, 4, 6, 8; concurrency 1-1000 (above 1 needs cpu >= 1); timeout_seconds 1-540; 0 <= min_instances <= max_instances <= 1000."
  }
}

variable "pipeline_ingress_settings" {
  description = "Network ingress of resolve and forward. ALLOW_INTERNAL_ONLY admits Pub/Sub pushes from this project and refuses the internet."
  type        = string
  default     = "ALLOW_INTERNAL_ONLY"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.pipeline_ingress_settings)
    error_message = "pipeline_ingress_settings must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "enable_inline_resolve" {
  description = "Also deploy the HTTP functions resolve_identity_session (inline resolution for the GTM SC variable template) and mint_link_token (cross-domain link tokens)."
  type        = bool
  default     = false
}

variable "inline_ingress_settings" {
  description = "Network ingress of the inline HTTP functions. A GTM server container outside a VPC reaches them over the internet, so ALLOW_ALL (still IAM-authenticated) is the default."
  type        = string
  default     = "ALLOW_ALL"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.inline_ingress_settings)
    error_message = "inline_ingress_settings must be ALLOW_ALL, ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "enable_inline_shared_key" {
  description = "Also require the header X-Ga4-Stitch-Key on the inline functions, checked against the INLINE_SHARED_KEY secret (on top of Cloud Run IAM)."
  type        = bool
  default     = false
}

variable "inline_invoker_members" {
  description = "IAM members allowed to call the inline HTTP functions (for example serviceAccount:gtm@PROJECT.iam.gserviceaccount.com). Empty means the GTM server container's service account alone."
  type        = list(string)
  default     = []

  validation {
    condition = alltrue([
      for member in var.inline_invoker_members :
      can(regex("^(serviceAccount|user|group|domain|principal|principalSet):.+$", member))
    ])
    error_message = "inline_invoker_members must be IAM members with a type prefix (serviceAccount:, user:, group:, domain:, principal: or principalSet:); allUsers and allAuthenticatedUsers are refused."
  }
}

variable "source_bucket_name" {
  description = "Name of the bucket for the function source archive; null means PROJECT_ID-ga4-stitch-source."
  type        = string
  default     = null

  validation {
    condition     = var.source_bucket_name == null || can(regex("^[a-z0-9][a-z0-9_.-]{1,61}[a-z0-9]$", var.source_bucket_name))
    error_message = "source_bucket_name must be a valid bucket name (3-63 lowercase letters, digits, '-', '_' or '.')."
  }
}

variable "function_images_kept" {
  description = "Build images kept per function in the Artifact Registry repository (older ones are deleted after 30 days)."
  type        = number
  default     = 5

  validation {
    condition     = var.function_images_kept >= 1 && var.function_images_kept <= 100 && floor(var.function_images_kept) == var.function_images_kept
    error_message = "function_images_kept must be a whole number between 1 and 100."
  }
}

# --- Firestore -------------------------------------------------------------------------

variable "create_firestore_database" {
  description = "Create the Firestore database. Set false when firestore_database already exists in the project (a project's (default) database often does)."
  type        = bool
  default     = true
}

variable "firestore_database" {
  description = "Firestore database id the functions use (FIRESTORE_DATABASE)."
  type        = string
  default     = "(default)"

  validation {
    condition     = var.firestore_database == "(default)" || can(regex("^[a-z][a-z0-9-]{2,61}[a-z0-9]$", var.firestore_database))
    error_message = "firestore_database must be (default) or 4-63 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "firestore_location" {
  description = "Firestore location: a multi-region (eur3, nam5) or a region (europe-west1). Cannot be changed after creation."
  type        = string
  default     = "eur3"

  validation {
    condition     = can(regex("^(eur3|nam5|nam7|[a-z]+-[a-z]+[0-9]+)$", var.firestore_location))
    error_message = "firestore_location must be eur3, nam5, nam7 or a region such as europe-west1."
  }
}

variable "firestore_point_in_time_recovery" {
  description = "Keep 7 days of document versions for point-in-time recovery (billed as storage)."
  type        = bool
  default     = false
}

variable "firestore_delete_protection" {
  description = "Refuse deletion of the Firestore database, whoever asks."
  type        = bool
  default     = true
}

variable "collection_prefix" {
  description = "Prefix of every Firestore collection name (COLLECTION_PREFIX), to share a database with other data."
  type        = string
  default     = ""

  validation {
    condition     = can(regex("^[a-z0-9_-]*$", var.collection_prefix))
    error_message = "collection_prefix may hold only lowercase letters, digits, '_' and '-'."
  }
}

variable "state_ttl_days" {
  description = "Days after its last write before a state document expires (STATE_TTL_DAYS)."
  type        = number
  default     = 400

  validation {
    condition     = var.state_ttl_days >= 1 && var.state_ttl_days <= 3650 && floor(var.state_ttl_days) == var.state_ttl_days
    error_message = "state_ttl_days must be a whole number between 1 and 3650."
  }
}

variable "firestore_unindexed_fields" {
  description = "Collection (before collection_prefix) -> fields exempted from single-field indexing: large blobs, maps and arrays of maps that are read with their document and never queried (see shared/adapters/firestore/codec.py, encode)."
  type        = map(list(string))
  default = {
    clients           = ["state"]
    bridge_candidates = ["clients"]
  }

  validation {
    condition = alltrue(flatten([
      for collection, fields in var.firestore_unindexed_fields : [
        for field in fields : can(regex("^[A-Za-z_][A-Za-z0-9_.]*$", field)) && field != "expire_at"
      ]
    ]))
    error_message = "firestore_unindexed_fields must name fields as simple or dotted paths, and not expire_at (its TTL field is configured separately)."
  }
}

# --- sessions and identity -------------------------------------------------------------

variable "session_timeout_minutes" {
  description = "Inactivity after which the next event starts a new session (SESSION_TIMEOUT_MINUTES; GA4 allows 5 minutes to 7 h 55 min)."
  type        = number
  default     = 30

  validation {
    condition     = var.session_timeout_minutes >= 5 && var.session_timeout_minutes <= 475 && floor(var.session_timeout_minutes) == var.session_timeout_minutes
    error_message = "session_timeout_minutes must be a whole number between 5 and 475."
  }
}

variable "allowed_lateness_hours" {
  description = "Events older than this, by event time, are dead-lettered as too late (ALLOWED_LATENESS_HOURS; GA4 backdates at most 72 h)."
  type        = number
  default     = 72

  validation {
    condition     = var.allowed_lateness_hours >= 1 && var.allowed_lateness_hours <= 720 && floor(var.allowed_lateness_hours) == var.allowed_lateness_hours
    error_message = "allowed_lateness_hours must be a whole number between 1 and 720."
  }
}

variable "split_on_campaign" {
  description = "Start a new session when the campaign (utm parameters) changes (SPLIT_ON_CAMPAIGN; GA4 does not)."
  type        = bool
  default     = false
}

variable "split_on_user_change" {
  description = "Start a new session when the user_id changes (SPLIT_ON_USER_CHANGE)."
  type        = bool
  default     = false
}

variable "max_session_minutes" {
  description = "Maximum session length in minutes; 0 disables the cap (MAX_SESSION_MINUTES)."
  type        = number
  default     = 0

  validation {
    condition     = var.max_session_minutes >= 0 && var.max_session_minutes <= 10080 && floor(var.max_session_minutes) == var.max_session_minutes
    error_message = "max_session_minutes must be a whole number between 0 and 10080 (7 days)."
  }
}

variable "max_session_events" {
  description = "Maximum events in one session; 0 disables the cap (MAX_SESSION_EVENTS)."
  type        = number
  default     = 0

  validation {
    condition     = var.max_session_events >= 0 && var.max_session_events <= 1000000 && floor(var.max_session_events) == var.max_session_events
    error_message = "max_session_events must be a whole number between 0 and 1000000."
  }
}

variable "session_windows_kept" {
  description = "Recent session windows remembered per client and stream, to place late events (SESSION_WINDOWS_KEPT)."
  type        = number
  default     = 8

  validation {
    condition     = var.session_windows_kept >= 1 && var.session_windows_kept <= 100 && floor(var.session_windows_kept) == var.session_windows_kept
    error_message = "session_windows_kept must be a whole number between 1 and 100."
  }
}

variable "dedup_events_kept" {
  description = "Recent event ids remembered per client, so a redelivery gets the identical answer (DEDUP_EVENTS_KEPT)."
  type        = number
  default     = 100

  validation {
    condition     = var.dedup_events_kept >= 1 && var.dedup_events_kept <= 2000 && floor(var.dedup_events_kept) == var.dedup_events_kept
    error_message = "dedup_events_kept must be a whole number between 1 and 2000."
  }
}

variable "logout_events" {
  description = "Event names that end a client's link to its user (LOGOUT_EVENTS)."
  type        = list(string)
  default     = ["logout"]

  validation {
    condition     = alltrue([for name in var.logout_events : can(regex("^[A-Za-z][A-Za-z0-9_]{0,39}$", name))])
    error_message = "logout_events must hold GA4 event names (a letter, then letters, digits or '_', at most 40 characters)."
  }
}

variable "blocked_user_ids" {
  description = "User id values never linked, in addition to the built-in list (empty, null, undefined, anonymous, 0, -1...) (BLOCKED_USER_IDS)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for value in var.blocked_user_ids : length(trimspace(value)) > 0 && !strcontains(value, ",")])
    error_message = "blocked_user_ids values must be non-empty and contain no comma."
  }
}

# --- GA4 -------------------------------------------------------------------------------

variable "ga4_measurement_id" {
  description = "Measurement id of the default GA4 web stream (GA4_MEASUREMENT_ID)."
  type        = string

  validation {
    condition     = can(regex("^G-[A-Z0-9]{4,}$", var.ga4_measurement_id))
    error_message = "ga4_measurement_id must look like G-XXXXXXXXXX."
  }
}

variable "ga4_endpoint" {
  description = "Measurement Protocol host (GA4_ENDPOINT); https://region1.google-analytics.com keeps collection in the EU."
  type        = string
  default     = "https://www.google-analytics.com"

  validation {
    condition     = can(regex("^https://[a-z0-9.-]+(:[0-9]+)?/?$", var.ga4_endpoint))
    error_message = "ga4_endpoint must be an https:// origin without a path."
  }
}

variable "ga4_validate_first" {
  description = "Send each request to /debug/mp/collect first and dead-letter it if GA4 reports validation messages (GA4_VALIDATE_FIRST); doubles the requests to GA4."
  type        = bool
  default     = false
}

variable "ga4_unknown_outcome" {
  description = "What a request GA4 may have taken without answering (a read timeout) becomes (GA4_UNKNOWN_OUTCOME): assume_sent acknowledges it, so GA4 never counts it twice but loses it if it never arrived; resend lets Pub/Sub redeliver it, so it is never lost but counted twice if it arrived."
  type        = string
  default     = "assume_sent"

  validation {
    condition     = contains(["assume_sent", "resend"], var.ga4_unknown_outcome)
    error_message = "ga4_unknown_outcome must be assume_sent or resend."
  }
}

variable "forward_ledger" {
  description = "How the forward function keeps GA4 from getting an event twice (FORWARD_LEDGER): lean reads the event's Firestore ledger document before the send and creates it once after (exactly once, but for a crash between GA4's answer and that write); none keeps no ledger (at least once: every redelivery of a sent event is sent again, no Firestore cost)."
  type        = string
  default     = "lean"

  validation {
    condition     = contains(["lean", "none"], var.forward_ledger)
    error_message = "forward_ledger must be lean or none."
  }
}

variable "ga4_timeout_seconds" {
  description = "Timeout of one Measurement Protocol request (GA4_TIMEOUT_SECONDS)."
  type        = number
  default     = 5

  validation {
    condition     = var.ga4_timeout_seconds >= 0.1 && var.ga4_timeout_seconds <= 60
    error_message = "ga4_timeout_seconds must be between 0.1 and 60."
  }
}

variable "ga4_retry_attempts" {
  description = "Attempts per Measurement Protocol request on network errors, 5xx and 429 (GA4_RETRY_ATTEMPTS)."
  type        = number
  default     = 4

  validation {
    condition     = var.ga4_retry_attempts >= 1 && var.ga4_retry_attempts <= 10 && floor(var.ga4_retry_attempts) == var.ga4_retry_attempts
    error_message = "ga4_retry_attempts must be a whole number between 1 and 10."
  }
}

variable "ga4_retry_budget_seconds" {
  description = "Time budget for all attempts of one request (GA4_RETRY_BUDGET_SECONDS); keep it below the forward function's timeout."
  type        = number
  default     = 20

  validation {
    condition     = var.ga4_retry_budget_seconds >= 0.1 && var.ga4_retry_budget_seconds <= 300
    error_message = "ga4_retry_budget_seconds must be between 0.1 and 300."
  }
}

variable "ga4_stream_routes" {
  description = "Hostname (or *.suffix) of page_location -> measurement id, for sites served by several GA4 streams (GA4_STREAM_ROUTES)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for host, measurement_id in var.ga4_stream_routes : can(regex("^G-[A-Z0-9]{4,}$", measurement_id)) && length(trimspace(host)) > 0])
    error_message = "ga4_stream_routes must map non-empty host names to measurement ids like G-XXXXXXXXXX."
  }
}

variable "ga4_destination" {
  description = "How the forward function reaches GA4 (GA4_DESTINATION): measurement_protocol (an API secret) or data_manager (the Data Manager API, as the forward service account; destinations.tf lists the GA4 and Google Ads access it needs)."
  type        = string
  default     = "measurement_protocol"

  validation {
    condition     = contains(["measurement_protocol", "data_manager"], var.ga4_destination)
    error_message = "ga4_destination must be measurement_protocol or data_manager."
  }
}

variable "ga4_stream_destinations" {
  description = "Measurement id -> measurement_protocol or data_manager, for streams forwarded otherwise than ga4_destination (GA4_STREAM_DESTINATIONS)."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for measurement_id, destination in var.ga4_stream_destinations :
      can(regex("^G-[A-Z0-9]{4,}$", measurement_id)) && contains(["measurement_protocol", "data_manager"], destination)
    ])
    error_message = "ga4_stream_destinations must map measurement ids like G-XXXXXXXXXX to measurement_protocol or data_manager."
  }
}

variable "ga4_property_id" {
  description = "Numeric id of the GA4 property of ga4_measurement_id (GA4_PROPERTY_ID); required when ga4_destination is data_manager."
  type        = string
  default     = ""

  validation {
    condition     = var.ga4_property_id == "" || can(regex("^[0-9]{1,20}$", var.ga4_property_id))
    error_message = "ga4_property_id must be the property's numeric id (Admin > Property details), or empty."
  }
}

variable "ga4_stream_properties" {
  description = "Measurement id -> numeric GA4 property id, for routed streams of other properties sent through the Data Manager API (GA4_STREAM_PROPERTIES)."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([
      for measurement_id, property_id in var.ga4_stream_properties :
      can(regex("^G-[A-Z0-9]{4,}$", measurement_id)) && can(regex("^[0-9]{1,20}$", property_id))
    ])
    error_message = "ga4_stream_properties must map measurement ids like G-XXXXXXXXXX to numeric property ids."
  }
}

variable "data_manager_endpoint" {
  description = "The Data Manager API's origin (DATA_MANAGER_ENDPOINT)."
  type        = string
  default     = "https://datamanager.googleapis.com"

  validation {
    condition     = can(regex("^https://[a-z0-9.-]+(:[0-9]+)?/?$", var.data_manager_endpoint))
    error_message = "data_manager_endpoint must be an https:// origin without a path."
  }
}

variable "data_manager_batch_window_ms" {
  description = "How long, in milliseconds, the first event of a batch waits for other events of its stream on the same forward instance before one Data Manager API request carries them all (DATA_MANAGER_BATCH_WINDOW_MS); 0 sends one request per event. The API allows 300 requests a minute per project."
  type        = number
  default     = 1000

  validation {
    condition     = var.data_manager_batch_window_ms >= 0 && var.data_manager_batch_window_ms <= 10000 && floor(var.data_manager_batch_window_ms) == var.data_manager_batch_window_ms
    error_message = "data_manager_batch_window_ms must be a whole number between 0 and 10000."
  }
}

variable "data_manager_batch_max_events" {
  description = "Events per Data Manager API request at most; a batch this full is sent at once (DATA_MANAGER_BATCH_MAX_EVENTS; the API takes up to 2,000)."
  type        = number
  default     = 500

  validation {
    condition     = var.data_manager_batch_max_events >= 1 && var.data_manager_batch_max_events <= 2000 && floor(var.data_manager_batch_max_events) == var.data_manager_batch_max_events
    error_message = "data_manager_batch_max_events must be a whole number between 1 and 2000."
  }
}

variable "data_manager_ads_conversions" {
  description = "Event name -> the Google Ads conversion action each such event is also sent to through the Data Manager API (DATA_MANAGER_ADS_CONVERSIONS); login_customer_id names a manager account, when the service account's access is through one."
  type = map(object({
    customer_id          = string
    conversion_action_id = string
    login_customer_id    = optional(string)
  }))
  default = {}

  validation {
    condition = alltrue([
      for event_name, conversion in var.data_manager_ads_conversions :
      can(regex("^[A-Za-z][A-Za-z0-9_]{0,39}$", event_name))
      && can(regex("^[0-9]{10}$", replace(conversion.customer_id, "-", "")))
      && can(regex("^[0-9]+$", conversion.conversion_action_id))
      && (conversion.login_customer_id == null || can(regex("^[0-9]{10}$", replace(coalesce(conversion.login_customer_id, "x"), "-", ""))))
    ])
    error_message = "data_manager_ads_conversions must map GA4 event names to {customer_id (10 digits, dashes allowed), conversion_action_id (digits), optional login_customer_id (10 digits)}."
  }
}

variable "enable_ga4_stream_secrets" {
  description = "Create and mount the GA4_STREAM_SECRETS secret (JSON: measurement id -> API secret) for routed streams that have API secrets of their own."
  type        = bool
  default     = false
}

variable "ga4_default_engagement_time_msec" {
  description = "engagement_time_msec sent when an event has none; GA4 counts a user as active only above 0, and 1 adds no engagement the page did not report (GA4_DEFAULT_ENGAGEMENT_TIME_MSEC)."
  type        = number
  default     = 1

  validation {
    condition     = var.ga4_default_engagement_time_msec >= 1 && var.ga4_default_engagement_time_msec <= 3600000 && floor(var.ga4_default_engagement_time_msec) == var.ga4_default_engagement_time_msec
    error_message = "ga4_default_engagement_time_msec must be a whole number between 1 and 3600000."
  }
}

variable "ga4_param_allow" {
  description = "If not empty, only these event parameters are forwarded (GA4_PARAM_ALLOW)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for name in var.ga4_param_allow : length(trimspace(name)) > 0 && !strcontains(name, ",")])
    error_message = "ga4_param_allow values must be non-empty and contain no comma."
  }
}

variable "ga4_param_deny" {
  description = "Event parameters never forwarded (GA4_PARAM_DENY)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for name in var.ga4_param_deny : length(trimspace(name)) > 0 && !strcontains(name, ",")])
    error_message = "ga4_param_deny values must be non-empty and contain no comma."
  }
}

variable "ga4_param_renames" {
  description = "Event parameter renames applied before forwarding, old name -> new name (GA4_PARAM_RENAMES)."
  type        = map(string)
  default     = {}

  validation {
    condition     = alltrue([for original, renamed in var.ga4_param_renames : can(regex("^[A-Za-z][A-Za-z0-9_]{0,39}$", renamed))])
    error_message = "ga4_param_renames targets must be valid GA4 parameter names (a letter, then letters, digits or '_', at most 40 characters)."
  }
}

# --- privacy ---------------------------------------------------------------------------

variable "pii_user_id_mode" {
  description = "What happens to a user_id that looks like an email or phone number: hash (HMAC-SHA256 with the PII hash secret) or drop (PII_USER_ID_MODE)."
  type        = string
  default     = "hash"

  validation {
    condition     = contains(["hash", "drop"], var.pii_user_id_mode)
    error_message = "pii_user_id_mode must be hash or drop."
  }
}

variable "pii_parameters" {
  description = "Event parameters removed before forwarding because they may hold personal data (PII_PARAMETERS)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for name in var.pii_parameters : length(trimspace(name)) > 0 && !strcontains(name, ",")])
    error_message = "pii_parameters values must be non-empty and contain no comma."
  }
}

variable "ip_mode" {
  description = "ip_override handling: pass (as received), truncate (zero the host part) or drop (IP_MODE). IPs are never stored."
  type        = string
  default     = "pass"

  validation {
    condition     = contains(["pass", "truncate", "drop"], var.ip_mode)
    error_message = "ip_mode must be pass, truncate or drop."
  }
}

variable "bot_mode" {
  description = "Bot traffic: flag (marked in the enriched event), drop (dead-lettered) or off (BOT_MODE)."
  type        = string
  default     = "flag"

  validation {
    condition     = contains(["flag", "drop", "off"], var.bot_mode)
    error_message = "bot_mode must be flag, drop or off."
  }
}

variable "link_token_ttl_seconds" {
  description = "Lifetime of a cross-domain link token (LINK_TOKEN_TTL_SECONDS)."
  type        = number
  default     = 300

  validation {
    condition     = var.link_token_ttl_seconds >= 10 && var.link_token_ttl_seconds <= 86400 && floor(var.link_token_ttl_seconds) == var.link_token_ttl_seconds
    error_message = "link_token_ttl_seconds must be a whole number between 10 and 86400."
  }
}

variable "link_token_parameter" {
  description = "Query parameter that carries a cross-domain link token (LINK_TOKEN_PARAMETER)."
  type        = string
  default     = "_gs_link"

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]{1,64}$", var.link_token_parameter))
    error_message = "link_token_parameter must be 1-64 letters, digits, '_', '.' or '-'."
  }
}

variable "linker_enabled" {
  description = "Honour GA4's own _gl linker parameter for cross-domain continuity (LINKER_ENABLED)."
  type        = bool
  default     = true
}

variable "partner_domains" {
  description = "Referrer domains from which probabilistic cross-domain bridging is allowed; empty disables it (PARTNER_DOMAINS). Non-empty creates and mounts the BRIDGING_SALT secret."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for domain in var.partner_domains : can(regex("^[A-Za-z0-9.-]+$", domain))])
    error_message = "partner_domains must hold bare domain names such as shop.example.com."
  }
}

variable "log_level" {
  description = "Lowest severity the functions log (LOG_LEVEL)."
  type        = string
  default     = "INFO"

  validation {
    condition     = contains(["DEBUG", "INFO", "WARNING", "ERROR"], var.log_level)
    error_message = "log_level must be DEBUG, INFO, WARNING or ERROR."
  }
}

# --- secrets ---------------------------------------------------------------------------

variable "secret_replica_locations" {
  description = "Regions in which Secret Manager stores the secrets; empty lets Google choose (automatic replication)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for location in var.secret_replica_locations : can(regex("^[a-z]+-[a-z]+[0-9]+$", location))])
    error_message = "secret_replica_locations must hold Cloud region names such as europe-west1."
  }
}

# --- BigQuery export -------------------------------------------------------------------

variable "enable_bigquery_export" {
  description = "Write enriched events and identity links to BigQuery through Pub/Sub BigQuery subscriptions."
  type        = bool
  default     = false
}

variable "bigquery_dataset_id" {
  description = "Dataset for the export tables."
  type        = string
  default     = "ga4_stitch"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]+$", var.bigquery_dataset_id)) && length(var.bigquery_dataset_id) <= 1024
    error_message = "bigquery_dataset_id must be 1-1024 letters, digits or '_'."
  }
}

variable "bigquery_location" {
  description = "Location of the export dataset (EU, US or a region); null means the region variable."
  type        = string
  default     = null

  validation {
    condition     = var.bigquery_location == null || can(regex("^(EU|US|[a-z]+-[a-z]+[0-9]+)$", var.bigquery_location))
    error_message = "bigquery_location must be EU, US or a region such as europe-west1."
  }
}

variable "bigquery_partition_expiration_days" {
  description = "Days a daily partition of the export tables is kept; null keeps them forever."
  type        = number
  default     = null

  validation {
    condition     = var.bigquery_partition_expiration_days == null || try(var.bigquery_partition_expiration_days >= 1 && floor(var.bigquery_partition_expiration_days) == var.bigquery_partition_expiration_days, false)
    error_message = "bigquery_partition_expiration_days must be null or a whole number of at least 1."
  }
}

variable "bigquery_deletion_protection" {
  description = "Refuse to destroy the export tables from Terraform."
  type        = bool
  default     = true
}

# --- monitoring ------------------------------------------------------------------------

variable "notification_channel_ids" {
  description = "Monitoring notification channels (projects/PROJECT/notificationChannels/ID) the alert policies notify."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for channel in var.notification_channel_ids : can(regex("^projects/[^/]+/notificationChannels/[^/]+$", channel))])
    error_message = "notification_channel_ids must be full channel names: projects/PROJECT/notificationChannels/ID."
  }
}

variable "dead_letter_alert_threshold" {
  description = "Dead-lettered events per alignment period (summed over reasons) above which the dead-letter alert opens."
  type        = number
  default     = 0

  validation {
    condition     = var.dead_letter_alert_threshold >= 0
    error_message = "dead_letter_alert_threshold must not be negative."
  }
}

variable "function_error_alert_threshold" {
  description = "Error log entries per alignment period and function above which the error alert opens."
  type        = number
  default     = 0

  validation {
    condition     = var.function_error_alert_threshold >= 0
    error_message = "function_error_alert_threshold must not be negative."
  }
}

variable "alert_alignment_period_seconds" {
  description = "Window over which the alert policies count events."
  type        = number
  default     = 300

  validation {
    condition     = var.alert_alignment_period_seconds >= 60 && var.alert_alignment_period_seconds <= 86400 && floor(var.alert_alignment_period_seconds) == var.alert_alignment_period_seconds
    error_message = "alert_alignment_period_seconds must be a whole number between 60 and 86400."
  }
}

# --- warehouse models ------------------------------------------------------------------

variable "enable_warehouse_dataset" {
  description = "Create the dataset the dbt warehouse models write to, and a service account that may only read the export and write there (needs enable_bigquery_export)."
  type        = bool
  default     = false
}

variable "warehouse_dataset_id" {
  description = "Dataset for the warehouse models (stitched_events, sessions, users, session_breakage)."
  type        = string
  default     = "ga4_stitch_warehouse"

  validation {
    condition     = can(regex("^[A-Za-z0-9_]+$", var.warehouse_dataset_id)) && length(var.warehouse_dataset_id) <= 1024
    error_message = "warehouse_dataset_id must be 1-1024 letters, digits or '_'."
  }
}

# --- Cloud Logging ---------------------------------------------------------------------

variable "exclude_pipeline_request_logs" {
  description = "Keep Cloud Run's request log entries of Pub/Sub pushes that resolve and forward acknowledged (2xx) out of Cloud Logging storage (logging.tf). On by default: each function logs every delivery's outcome itself, and these entries (one per push, two per event, about 1.2 KB each) are most of the pipeline's log volume, about $1.14 per million events beyond the free 50 GiB (docs/cost.md). Refused, failed and timed-out requests keep their entries; Cloud Run's request metrics are unaffected."
  type        = bool
  default     = true
}
