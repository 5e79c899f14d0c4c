{#- One row per delivered enriched-event message, its JSON read into columns. Redeliveries
    are still here (deduplicated in int_enriched_events). A view: filters on published_at
    reach the export table's publish_time partitions. -#}
{%- set d = 'data' -%}
select
    message_id,
    publish_time as published_at,
    {{ ga4_stitch.json_text(d, '$.resolved.event_id') }} as event_id,
    lower({{ ga4_stitch.json_text(d, '$.resolved.event_name') }}) as event_name,
    {{ ga4_stitch.json_bigint(d, '$.resolved.timestamp_micros') }} as event_micros,
    {{ ga4_stitch.json_text(d, '$.resolved.stream_id') }} as stream_id,
    {{ ga4_stitch.json_text(d, '$.resolved.client_id') }} as client_id,
    {{ ga4_stitch.json_text(d, '$.resolved.incoming_client_id') }} as incoming_client_id,
    {{ ga4_stitch.json_text(d, '$.resolved.user_id') }} as user_id,
    {{ ga4_stitch.json_text(d, '$.resolved.identity_source') }} as identity_source,
    {{ ga4_stitch.json_bigint(d, '$.resolved.session_id') }} as session_id,
    {{ ga4_stitch.json_bigint(d, '$.resolved.session_number') }} as session_number,
    {{ ga4_stitch.json_bigint(d, '$.resolved.event_index') }} as event_index,
    {{ ga4_stitch.json_bool(d, '$.resolved.is_new_session') }} as is_new_session,
    {{ ga4_stitch.json_bool(d, '$.resolved.late') }} as is_late,
    {{ ga4_stitch.json_bool(d, '$.resolved.duplicate') }} as is_duplicate,
    {{ ga4_stitch.json_bool(d, '$.resolved.bot') }} as is_bot,
    {{ ga4_stitch.json_text(d, '$.resolved.consent.analytics_storage') }} as analytics_storage,
    {{ ga4_stitch.json_bigint(d, '$.resolved.client_session_id') }} as client_session_id,
    {{ ga4_stitch.json_bigint(d, '$.resolved.client_session_number') }} as client_session_number,
    {{ ga4_stitch.json_text(d, '$.resolved.link.kind') }} as link_kind,
    {{ ga4_stitch.json_text(d, '$.resolved.link.from_client_id') }} as link_from_client_id,
    {{ ga4_stitch.json_text(d, '$.resolved.traffic_source.source') }} as traffic_source,
    {{ ga4_stitch.json_text(d, '$.resolved.traffic_source.medium') }} as traffic_medium,
    {{ ga4_stitch.json_text(d, '$.resolved.traffic_source.campaign') }} as traffic_campaign,
    {{ ga4_stitch.json_text(d, '$.resolved.traffic_source.term') }} as traffic_term,
    {{ ga4_stitch.json_text(d, '$.resolved.traffic_source.content') }} as traffic_content,
    {{ ga4_stitch.json_text(d, '$.resolved.traffic_source.click_id') }} as traffic_click_id,
    {{ ga4_stitch.json_bool(d, '$.resolved.earliest_in_session') }} as earliest_in_session,
    {{ ga4_stitch.json_text(d, '$.page_location') }} as page_location,
    {{ ga4_stitch.json_text(d, '$.page_referrer') }} as page_referrer,
    {{ ga4_stitch.json_text(d, '$.user_agent') }} as user_agent,
    coalesce({{ ga4_stitch.json_bigint(d, '$.engagement_time_msec') }}, 0) as engagement_time_msec
from {{ source('export', 'enriched_events') }}
where {{ ga4_stitch.json_text(d, '$.resolved.event_id') }} is not null
