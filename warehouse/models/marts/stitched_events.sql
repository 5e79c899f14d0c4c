{#- Every enriched event once, with stitched_user_id: the user its client is known by,
    decided on event time over the client's whole history:

    1. the event's own user id (as the site sent it);
    2. else the user of the latest login (an event carrying a user id) before it, unless a
       logout came in between: a shared device switches user at the login;
    3. else, when no login or logout came before it at all, the user of the client's first
       login: its anonymous events before that login are restitched. A logout first, or a
       logout before the event, means no user.

    The client is the canonical one, except that a client aliased by a probabilistic
    cross-domain link keeps its own identity unless `stitch_probabilistic_links` is true.
    Events without analytics consent are never given a user.

    An incremental run recomputes the clients whose events changed in this run, from
    `restitch_days` before the earliest changed event; older logins and logouts of those
    clients still count (read from the earlier events, marks only). -#}
{{
  config(
    materialized='incremental',
    unique_key='event_id',
    incremental_strategy=ga4_stitch.merge_strategy(),
    partition_by=ga4_stitch.day_partition('event_date'),
    cluster_by=['stitch_client_id', 'session_key'],
    on_schema_change='append_new_columns',
  )
}}

{%- set events = ref('int_enriched_events') %}
{%- set since = ga4_stitch.newest_micros(this, 'processed_at') if is_incremental() else none %}
{%- set horizon = ga4_stitch.earliest_changed_date(events, since, var('restitch_days') | int) if since is not none else none %}

with

{%- if since is not none %}
changed_clients as (
    select distinct stitch_client_id
    from {{ events }}
    where processed_at > {{ ga4_stitch.micros_to_timestamp(since) }}
),
{%- endif %}

in_scope as (
    select *
    from {{ events }}
    {%- if since is not none %}
    {%- if horizon is none %}
    where false
    {%- else %}
    where stitch_client_id in (select stitch_client_id from changed_clients)
        and event_date >= cast('{{ horizon }}' as date)
    {%- endif %}
    {%- endif %}
),

timeline as (
    select
        event_id,
        stitch_client_id,
        event_micros,
        case
            when analytics_storage = 'denied' then null
            when is_logout then 'L'
            when own_user_id is not null then {{ dbt.concat(["'U'", 'own_user_id']) }}
        end as mark,
        true as in_scope
    from in_scope
    {%- if horizon is not none %}
    union all
    select
        event_id,
        stitch_client_id,
        event_micros,
        case when is_logout then 'L' else {{ dbt.concat(["'U'", 'own_user_id']) }} end as mark,
        false as in_scope
    from {{ events }}
    where stitch_client_id in (select stitch_client_id from changed_clients)
        and event_date < cast('{{ horizon }}' as date)
        and (is_logout or own_user_id is not null)
        and coalesce(analytics_storage, '') <> 'denied'
    {%- endif %}
),

marked as (
    select
        event_id,
        in_scope,
        mark,
        last_value(mark ignore nulls) over (
            partition by stitch_client_id order by event_micros, event_id
            rows between unbounded preceding and 1 preceding
        ) as previous_mark,
        first_value(mark ignore nulls) over (
            partition by stitch_client_id order by event_micros, event_id
            rows between unbounded preceding and unbounded following
        ) as first_mark
    from timeline
),

attributed as (
    select
        event_id,
        case
            when mark is not null then null
            when previous_mark is null and first_mark like 'U%' then 'backward'
            when previous_mark like 'U%' then 'forward'
        end as stitch_rule,
        substr(previous_mark, 2) as previous_user_id,
        substr(first_mark, 2) as first_user_id
    from marked
    where in_scope
)

select
    e.event_id,
    e.event_date,
    e.event_at,
    e.event_micros,
    e.event_name,
    e.stream_id,
    e.client_id,
    e.incoming_client_id,
    e.stitch_client_id,
    e.user_id,
    e.identity_source,
    case
        when e.analytics_storage = 'denied' then null
        when e.own_user_id is not null then e.own_user_id
        when a.stitch_rule = 'backward' then a.first_user_id
        when a.stitch_rule = 'forward' then a.previous_user_id
    end as stitched_user_id,
    case
        when e.analytics_storage = 'denied' then null
        when e.own_user_id is not null then 'incoming'
        else a.stitch_rule
    end as stitched_user_source,
    e.is_logout,
    e.session_key,
    e.session_id,
    e.session_number,
    e.event_index,
    e.is_new_session,
    e.is_late,
    e.is_duplicate,
    e.is_bot,
    e.analytics_storage,
    e.client_session_id,
    e.client_session_number,
    e.link_kind,
    e.traffic_source,
    e.traffic_medium,
    e.traffic_campaign,
    e.traffic_term,
    e.traffic_content,
    e.traffic_click_id,
    e.page_location,
    e.page_host,
    e.browser,
    e.engagement_time_msec,
    e.published_at,
    {{ ga4_stitch.run_started_timestamp() }} as processed_at
from in_scope as e
inner join attributed as a on a.event_id = e.event_id
