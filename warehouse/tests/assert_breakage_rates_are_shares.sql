select breakage_key
from {{ ref('session_breakage') }}
where split_rate < 0 or split_rate > 1 or merge_rate < 0 or merge_rate > 1
    or breakage_rate < 0 or breakage_rate > 1 or split_sessions > broken_sessions
