{#- One row per stitched user: first and last seen, how many clients (browsers, devices),
    sessions and events. Built from sessions (a session counts for the last user stitched in
    it), so a run reads one row per session, not every event. -#}
{{ config(materialized='table', cluster_by=['stitched_user_id']) }}

select
    stitched_user_id,
    min(session_start_at) as first_seen_at,
    max(session_end_at) as last_seen_at,
    count(distinct client_id) as clients,
    count(*) as sessions,
    sum(case when engaged then 1 else 0 end) as engaged_sessions,
    sum(events) as events
from {{ ref('sessions') }}
where stitched_user_id is not null
group by stitched_user_id
