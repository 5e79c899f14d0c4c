{#- Every enriched event once: deduplicated by event_id, the newest delivery wins. An
    incremental run reads the export from `lookback_hours` before the newest publish time
    it holds, so redeliveries and late events within GA4's 72 hours are merged in. -#}
{{
  config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy=ga4_stitch.merge_strategy(),
    partition_by=ga4_stitch.day_partition('event_date'),
    cluster_by=['stitch_client_id', 'event_name'],
    on_schema_change='append_new_columns',
  )
}}

{%- set window_start = ga4_stitch.export_window_start_micros(this) %}

with delivered as (
    select
        *,
        row_number() over (
            partition by event_id order by published_at desc, message_id desc
        ) as delivery_rank
    from {{ ref('stg_enriched_events') }}
    {%- if window_start is not none %}
    where published_at >= {{ ga4_stitch.micros_to_timestamp(window_start) }}
    {%- endif %}
),

probabilistic_aliases as (
    select distinct client_id
    from {{ ref('stg_identity_links') }}
    where is_probabilistic
)

select
    d.event_id,
    d.message_id,
    d.published_at,
    d.event_name,
    d.event_micros,
    {{ ga4_stitch.micros_to_timestamp('d.event_micros') }} as event_at,
    cast({{ ga4_stitch.micros_to_timestamp('d.event_micros') }} as date) as event_date,
    d.stream_id,
    d.client_id,
    d.incoming_client_id,
    {{ ga4_stitch.canonical_client('d.incoming_client_id') }} as incoming_client_key,
    {#- The client whose logins name this event's user: the canonical one, except for a
        client aliased to it only probabilistically (unless the variable allows it). #}
    case
        when {{ 'false' if var('stitch_probabilistic_links') else 'true' }}
            and p.client_id is not null
            then p.client_id
        else d.client_id
    end as stitch_client_id,
    d.user_id,
    d.identity_source,
    case when d.identity_source = 'incoming' then d.user_id end as own_user_id,
    d.event_name in ({{ ga4_stitch.string_list(var('logout_events')) }}) as is_logout,
    d.session_id,
    d.session_number,
    case
        when d.session_id is not null
            then {{ dbt.concat(['d.client_id', "'|'", "coalesce(d.stream_id, '')", "'|'", 'cast(d.session_id as ' ~ dbt.type_string() ~ ')']) }}
    end as session_key,
    d.event_index,
    d.is_new_session,
    d.is_late,
    d.is_duplicate,
    d.is_bot,
    d.analytics_storage,
    d.client_session_id,
    d.client_session_number,
    d.link_kind,
    d.link_from_client_id,
    d.traffic_source,
    d.traffic_medium,
    d.traffic_campaign,
    d.traffic_term,
    d.traffic_content,
    d.traffic_click_id,
    d.earliest_in_session,
    d.page_location,
    d.page_referrer,
    {{ ga4_stitch.url_host('d.page_location') }} as page_host,
    d.user_agent,
    {{ ga4_stitch.browser_family('d.user_agent') }} as browser,
    d.engagement_time_msec,
    {{ ga4_stitch.run_started_timestamp() }} as processed_at
from delivered as d
left join probabilistic_aliases as p
    on p.client_id = {{ ga4_stitch.canonical_client('d.incoming_client_id') }}
    and p.client_id <> d.client_id
where d.delivery_rank = 1 and d.event_micros is not null and d.client_id is not null
