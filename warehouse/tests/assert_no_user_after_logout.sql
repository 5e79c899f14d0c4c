-- An anonymous event after a logout, with no login in between, has no stitched user.
with marks as (
    select stitch_client_id, event_micros, event_id, is_logout
    from {{ ref('stitched_events') }}
    where is_logout or stitched_user_source = 'incoming'
),

latest as (
    select
        e.event_id,
        e.stitched_user_id,
        m.is_logout,
        row_number() over (
            partition by e.event_id order by m.event_micros desc, m.event_id desc
        ) as position
    from {{ ref('stitched_events') }} as e
    inner join marks as m
        on m.stitch_client_id = e.stitch_client_id
        and (m.event_micros < e.event_micros or (m.event_micros = e.event_micros and m.event_id < e.event_id))
    where e.stitched_user_source is distinct from 'incoming'
)

select event_id, stitched_user_id
from latest
where position = 1 and is_logout and stitched_user_id is not null
