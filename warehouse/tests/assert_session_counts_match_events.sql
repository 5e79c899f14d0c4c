-- Every session counts exactly the stitched events that carry its key.
select s.session_key, s.events, count(e.event_id) as counted
from {{ ref('sessions') }} as s
left join {{ ref('stitched_events') }} as e on e.session_key = s.session_key
group by s.session_key, s.events
having count(e.event_id) <> s.events
