{#- Identity links, one row per (event_id, link_kind): a redelivered event publishes its link
    again, the newest delivery is kept. -#}
{%- set d = 'data' -%}
with delivered as (
    select
        message_id,
        publish_time as published_at,
        {{ ga4_stitch.json_text(d, '$.event_id') }} as event_id,
        {{ ga4_stitch.json_text(d, '$.link_kind') }} as link_kind,
        {{ ga4_stitch.json_text(d, '$.client_id') }} as client_id,
        {{ ga4_stitch.json_text(d, '$.canonical_client_id') }} as canonical_client_id,
        {{ ga4_stitch.json_text(d, '$.user_id') }} as user_id,
        {{ ga4_stitch.json_bigint(d, '$.linked_at_micros') }} as linked_at_micros,
        {{ ga4_stitch.json_bigint(d, '$.first_seen_micros') }} as first_seen_micros,
        {{ ga4_stitch.json_bool(d, '$.probabilistic') }} as is_probabilistic,
        {{ ga4_stitch.json_text(d, '$.stream_id') }} as stream_id,
        row_number() over (
            partition by {{ ga4_stitch.json_text(d, '$.event_id') }}, {{ ga4_stitch.json_text(d, '$.link_kind') }}
            order by publish_time desc, message_id desc
        ) as delivery_rank
    from {{ source('export', 'identity_links') }}
)

select
    {{ dbt.concat(['event_id', "'|'", 'link_kind']) }} as link_key,
    event_id,
    link_kind,
    client_id,
    canonical_client_id,
    user_id,
    {{ ga4_stitch.micros_to_timestamp('linked_at_micros') }} as linked_at,
    {{ ga4_stitch.micros_to_timestamp('first_seen_micros') }} as first_seen_at,
    is_probabilistic or link_kind = 'probabilistic' as is_probabilistic,
    stream_id,
    published_at
from delivered
where delivery_rank = 1 and event_id is not null and link_kind is not null
