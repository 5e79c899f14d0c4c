# The functions' settings, as environment variables read once per instance by
# shared.settings.Settings.from_env. Every variable that object reads is either here or
# mounted from Secret Manager (secrets.tf); tests/terraform/test_structure.py fails if
# one is missing. Values are strings: lists are comma-separated, maps are JSON.

locals {
  settings_environment = {
    GOOGLE_CLOUD_PROJECT = var.project_id
    FIRESTORE_DATABASE   = var.firestore_database
    COLLECTION_PREFIX    = var.collection_prefix
    STATE_TTL_DAYS       = tostring(var.state_ttl_days)
    LOG_LEVEL            = var.log_level

    RAW_EVENTS_TOPIC          = google_pubsub_topic.pipeline["RAW_EVENTS_TOPIC"].name
    ENRICHED_TOPIC            = google_pubsub_topic.pipeline["ENRICHED_TOPIC"].name
    IDENTITY_LINKS_TOPIC      = google_pubsub_topic.pipeline["IDENTITY_LINKS_TOPIC"].name
    RESOLVE_DEAD_LETTER_TOPIC = google_pubsub_topic.pipeline["RESOLVE_DEAD_LETTER_TOPIC"].name
    FORWARD_DEAD_LETTER_TOPIC = google_pubsub_topic.pipeline["FORWARD_DEAD_LETTER_TOPIC"].name

    SESSION_TIMEOUT_MINUTES = tostring(var.session_timeout_minutes)
    ALLOWED_LATENESS_HOURS  = tostring(var.allowed_lateness_hours)
    SPLIT_ON_CAMPAIGN       = tostring(var.split_on_campaign)
    SPLIT_ON_USER_CHANGE    = tostring(var.split_on_user_change)
    MAX_SESSION_MINUTES     = tostring(var.max_session_minutes)
    MAX_SESSION_EVENTS      = tostring(var.max_session_events)
    SESSION_WINDOWS_KEPT    = tostring(var.session_windows_kept)
    DEDUP_EVENTS_KEPT       = tostring(var.dedup_events_kept)

    LOGOUT_EVENTS    = join(",", var.logout_events)
    BLOCKED_USER_IDS = join(",", var.blocked_user_ids)

    GA4_MEASUREMENT_ID               = var.ga4_measurement_id
    GA4_ENDPOINT                     = var.ga4_endpoint
    GA4_VALIDATE_FIRST               = tostring(var.ga4_validate_first)
    GA4_UNKNOWN_OUTCOME              = var.ga4_unknown_outcome
    FORWARD_LEDGER                   = var.forward_ledger
    GA4_TIMEOUT_SECONDS              = tostring(var.ga4_timeout_seconds)
    GA4_RETRY_ATTEMPTS               = tostring(var.ga4_retry_attempts)
    GA4_RETRY_BUDGET_SECONDS         = tostring(var.ga4_retry_budget_seconds)
    GA4_STREAM_ROUTES                = jsonencode(var.ga4_stream_routes)
    GA4_DEFAULT_ENGAGEMENT_TIME_MSEC = tostring(var.ga4_default_engagement_time_msec)
    GA4_PARAM_ALLOW                  = join(",", var.ga4_param_allow)
    GA4_PARAM_DENY                   = join(",", var.ga4_param_deny)
    GA4_PARAM_RENAMES                = jsonencode(var.ga4_param_renames)

    GA4_DESTINATION               = var.ga4_destination
    GA4_STREAM_DESTINATIONS       = jsonencode(var.ga4_stream_destinations)
    GA4_PROPERTY_ID               = var.ga4_property_id
    GA4_STREAM_PROPERTIES         = jsonencode(var.ga4_stream_properties)
    DATA_MANAGER_ENDPOINT         = var.data_manager_endpoint
    DATA_MANAGER_ADS_CONVERSIONS  = jsonencode(var.data_manager_ads_conversions)
    DATA_MANAGER_BATCH_WINDOW_MS  = tostring(var.data_manager_batch_window_ms)
    DATA_MANAGER_BATCH_MAX_EVENTS = tostring(var.data_manager_batch_max_events)

    PII_USER_ID_MODE       = var.pii_user_id_mode
    PII_PARAMETERS         = join(",", var.pii_parameters)
    IP_MODE                = var.ip_mode
    BOT_MODE               = var.bot_mode
    LINK_TOKEN_TTL_SECONDS = tostring(var.link_token_ttl_seconds)
    LINK_TOKEN_PARAMETER   = var.link_token_parameter
    LINKER_ENABLED         = tostring(var.linker_enabled)
    PARTNER_DOMAINS        = join(",", var.partner_domains)
  }
}
