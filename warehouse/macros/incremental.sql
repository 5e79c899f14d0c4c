{#- Incremental windows, decided when the model compiles so that the filters are constants
    (BigQuery prunes partitions only on constant filters, not on subqueries). -#}

{#- The lower bound (Unix micros) of the export rows an incremental run reads: the newest
    publish time `relation` already holds, less `lookback_hours`. None on a full build. -#}
{% macro export_window_start_micros(relation, column='published_at') -%}
  {%- if not execute or not is_incremental() -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set query -%}
    select {{ ga4_stitch.timestamp_to_micros('max(' ~ column ~ ')') }} from {{ relation }}
  {%- endset -%}
  {%- set newest = run_query(query).columns[0].values()[0] -%}
  {%- if newest is none -%}
    {{ return(none) }}
  {%- endif -%}
  {{ return((newest | int) - (var('lookback_hours') | int) * 3600 * 1000000) }}
{%- endmacro %}

{#- The newest value of `column` in `relation` as Unix micros (0 when empty), for models that
    pick up what their upstream changed since their own last run. -#}
{% macro newest_micros(relation, column) -%}
  {%- if not execute -%}
    {{ return(0) }}
  {%- endif -%}
  {%- set query -%}
    select {{ ga4_stitch.timestamp_to_micros('max(' ~ column ~ ')') }} from {{ relation }}
  {%- endset -%}
  {%- set newest = run_query(query).columns[0].values()[0] -%}
  {{ return(0 if newest is none else newest | int) }}
{%- endmacro %}

{#- The earliest event date among rows of `relation` processed after `after_micros`, as a
    'YYYY-MM-DD' string less `margin_days`; None when nothing is newer. -#}
{% macro earliest_changed_date(relation, after_micros, margin_days=1) -%}
  {%- if not execute -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set query -%}
    select cast(min(event_date) as {{ dbt.type_string() }}) from {{ relation }}
    where processed_at > {{ ga4_stitch.micros_to_timestamp(after_micros) }}
  {%- endset -%}
  {%- set earliest = run_query(query).columns[0].values()[0] -%}
  {%- if earliest is none -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set day = modules.datetime.date.fromisoformat(earliest[:10]) - modules.datetime.timedelta(days=margin_days) -%}
  {{ return(day.isoformat()) }}
{%- endmacro %}

{#- The run's start as a timestamp literal: every row a run writes carries it. -#}
{% macro run_started_timestamp() -%}
  {{ ga4_stitch.micros_to_timestamp((run_started_at.timestamp() * 1000000) | int) }}
{%- endmacro %}

{#- Incremental strategy and partition/cluster settings per adapter: BigQuery merges on the
    unique key into date-partitioned, clustered tables; DuckDB deletes and inserts. -#}
{% macro merge_strategy() -%}
  {{ return('merge' if target.type == 'bigquery' else 'delete+insert') }}
{%- endmacro %}

{% macro day_partition(field) -%}
  {{ return({'field': field, 'data_type': 'date', 'granularity': 'day'} if target.type == 'bigquery' else none) }}
{%- endmacro %}
