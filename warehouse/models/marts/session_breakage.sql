{#- How often the browser's own session (ga_session_id, `resolved.client_session_id`)
    disagrees with the server's, by day, browser and domain:

    - split: a server session whose events carry several browser session ids (the cookie
      was lost or reset mid-session: ITP, consent banners, cookie cleaners);
    - merged: a browser session id spread over several server sessions (a tab kept open
      past the timeout, a restored cookie);
    - broken: a server session that is split or holds a merged browser session.

    Server sessions count on the day, browser and landing domain of their first event;
    browser sessions on those of theirs. Events without a browser session id are left out.
    An incremental run rebuilds whole days from the earliest one stitched_events changed. -#}
{{
  config(
    materialized='incremental',
    unique_key='breakage_date',
    incremental_strategy=('insert_overwrite' if target.type == 'bigquery' else 'delete+insert'),
    partition_by=ga4_stitch.day_partition('breakage_date'),
    cluster_by=['browser', 'domain'],
    on_schema_change='append_new_columns',
  )
}}

{%- set events = ref('stitched_events') %}
{%- set since = ga4_stitch.newest_micros(this, 'processed_at') if is_incremental() else none %}
{%- set earliest = ga4_stitch.earliest_changed_date(events, since, 0) if since is not none else none %}
{%- set read_from = ga4_stitch.earliest_changed_date(events, since, 1) if since is not none else none %}

with events as (
    select
        session_key,
        {{ dbt.concat(['client_id', "'|'", "coalesce(stream_id, '')", "'|'", 'cast(client_session_id as ' ~ dbt.type_string() ~ ')']) }} as browser_session_key,
        event_id,
        event_micros,
        event_date,
        browser,
        coalesce(page_host, '(not set)') as domain
    from {{ events }}
    where session_key is not null and client_session_id is not null
    {%- if since is not none %}
    {%- if earliest is none %}
        and false
    {%- else %}
        and event_date >= cast('{{ read_from }}' as date)
    {%- endif %}
    {%- endif %}
),

browser_sessions as (
    select
        browser_session_key,
        count(distinct session_key) as server_sessions
    from events
    group by browser_session_key
),

firsts as (
    select
        *,
        row_number() over (partition by session_key order by event_micros, event_id) as server_position,
        row_number() over (partition by browser_session_key order by event_micros, event_id) as browser_position
    from events
),

server_sessions as (
    select
        e.session_key,
        count(distinct e.browser_session_key) as browser_sessions,
        max(case when b.server_sessions > 1 then 1 else 0 end) as holds_merged
    from events as e
    inner join browser_sessions as b on b.browser_session_key = e.browser_session_key
    group by e.session_key
),

server_counts as (
    select
        f.event_date as breakage_date,
        f.browser,
        f.domain,
        count(*) as server_sessions,
        sum(case when s.browser_sessions > 1 then 1 else 0 end) as split_sessions,
        sum(case when s.browser_sessions > 1 or s.holds_merged = 1 then 1 else 0 end) as broken_sessions
    from firsts as f
    inner join server_sessions as s on s.session_key = f.session_key
    where f.server_position = 1
    group by f.event_date, f.browser, f.domain
),

browser_counts as (
    select
        f.event_date as breakage_date,
        f.browser,
        f.domain,
        count(*) as browser_sessions,
        sum(case when b.server_sessions > 1 then 1 else 0 end) as merged_browser_sessions
    from firsts as f
    inner join browser_sessions as b on b.browser_session_key = f.browser_session_key
    where f.browser_position = 1
    group by f.event_date, f.browser, f.domain
),

combined as (
    select
        coalesce(s.breakage_date, b.breakage_date) as breakage_date,
        coalesce(s.browser, b.browser) as browser,
        coalesce(s.domain, b.domain) as domain,
        coalesce(s.server_sessions, 0) as server_sessions,
        coalesce(s.split_sessions, 0) as split_sessions,
        coalesce(s.broken_sessions, 0) as broken_sessions,
        coalesce(b.browser_sessions, 0) as browser_sessions,
        coalesce(b.merged_browser_sessions, 0) as merged_browser_sessions
    from server_counts as s
    full outer join browser_counts as b
        on b.breakage_date = s.breakage_date and b.browser = s.browser and b.domain = s.domain
)

select
    {{ dbt.concat(['cast(breakage_date as ' ~ dbt.type_string() ~ ')', "'|'", 'browser', "'|'", 'domain']) }} as breakage_key,
    breakage_date,
    browser,
    domain,
    server_sessions,
    split_sessions,
    broken_sessions,
    browser_sessions,
    merged_browser_sessions,
    cast(split_sessions as {{ dbt.type_float() }}) / nullif(server_sessions, 0) as split_rate,
    cast(merged_browser_sessions as {{ dbt.type_float() }}) / nullif(browser_sessions, 0) as merge_rate,
    cast(broken_sessions as {{ dbt.type_float() }}) / nullif(server_sessions, 0) as breakage_rate,
    {{ ga4_stitch.run_started_timestamp() }} as processed_at
from combined
{%- if earliest is not none %}
where breakage_date >= cast('{{ earliest }}' as date)
{%- endif %}
