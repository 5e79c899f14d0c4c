{#- One row per server session: (canonical client, stream, session_id). Start, end and
    duration on event time; engaged by GA4's rule (engagement time of at least
    `engaged_msec`, a key event, or two page views); landing page and traffic source of
    its earliest event; the last user id sent in it and the last stitched user.
    An incremental run rebuilds the sessions that stitched_events changed since the last. -#}
{{
  config(
    materialized='incremental',
    unique_key='session_key',
    incremental_strategy=ga4_stitch.merge_strategy(),
    partition_by=ga4_stitch.day_partition('session_date'),
    cluster_by=['client_id', 'stitched_user_id'],
    on_schema_change='append_new_columns',
  )
}}

{%- set events = ref('stitched_events') %}
{%- set since = ga4_stitch.newest_micros(this, 'processed_at') if is_incremental() else none %}
{%- set earliest = ga4_stitch.earliest_changed_date(events, since, 1) if since is not none else none %}

with

{%- if since is not none %}
changed as (
    select distinct session_key
    from {{ events }}
    where processed_at > {{ ga4_stitch.micros_to_timestamp(since) }} and session_key is not null
),
{%- endif %}

session_events as (
    select
        *,
        row_number() over (
            partition by session_key order by event_micros, event_id
        ) as position,
        last_value(user_id ignore nulls) over (
            partition by session_key order by event_micros, event_id
            rows between unbounded preceding and unbounded following
        ) as last_user_id,
        last_value(stitched_user_id ignore nulls) over (
            partition by session_key order by event_micros, event_id
            rows between unbounded preceding and unbounded following
        ) as last_stitched_user_id
    from {{ events }}
    where session_key is not null
    {%- if since is not none %}
    {%- if earliest is none %}
        and false
    {%- else %}
        and session_key in (select session_key from changed)
        and event_date >= cast('{{ earliest }}' as date)
    {%- endif %}
    {%- endif %}
),

aggregated as (
    select
        session_key,
        min(event_micros) as start_micros,
        max(event_micros) as end_micros,
        count(*) as events,
        sum(case when event_name = 'page_view' then 1 else 0 end) as page_views,
        sum(case when event_name in ({{ ga4_stitch.string_list(var('key_events')) }}) then 1 else 0 end) as key_events,
        sum(engagement_time_msec) as engagement_time_msec,
        count(distinct client_session_id) as client_session_ids,
        sum(case when is_late then 1 else 0 end) as late_events,
        max(processed_at) as processed_at
    from session_events
    group by session_key
)

select
    a.session_key,
    f.client_id,
    f.stream_id,
    f.session_id,
    f.session_number,
    cast({{ ga4_stitch.micros_to_timestamp('a.start_micros') }} as date) as session_date,
    {{ ga4_stitch.micros_to_timestamp('a.start_micros') }} as session_start_at,
    {{ ga4_stitch.micros_to_timestamp('a.end_micros') }} as session_end_at,
    (a.end_micros - a.start_micros) / 1000000.0 as duration_seconds,
    a.events,
    a.page_views,
    a.key_events,
    a.engagement_time_msec,
    (
        a.engagement_time_msec >= {{ var('engaged_msec') | int }}
        or a.key_events > 0
        or a.page_views >= 2
    ) as engaged,
    f.page_location as landing_page,
    f.page_host as landing_host,
    f.browser,
    f.traffic_source as source,
    f.traffic_medium as medium,
    f.traffic_campaign as campaign,
    f.traffic_term as term,
    f.traffic_content as content,
    f.traffic_click_id as click_id,
    f.last_user_id as user_id,
    f.last_stitched_user_id as stitched_user_id,
    a.client_session_ids,
    a.late_events,
    a.processed_at
from aggregated as a
inner join session_events as f on f.session_key = a.session_key and f.position = 1
