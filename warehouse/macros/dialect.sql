{#- The few expressions BigQuery and DuckDB spell differently, as dispatched macros.
    Everything else in the models is SQL both dialects read, or a dbt cross-database macro. -#}

{#- A JSON scalar at `path` (a JSONPath such as '$.resolved.client_id') as text. -#}
{% macro json_text(column, path) -%}
  {{ return(adapter.dispatch('json_text', 'ga4_stitch')(column, path)) }}
{%- endmacro %}

{% macro bigquery__json_text(column, path) -%}
  json_value({{ column }}, '{{ path }}')
{%- endmacro %}

{% macro default__json_text(column, path) -%}
  json_extract_string({{ column }}, '{{ path }}')
{%- endmacro %}

{#- Text to a 64-bit integer; null when it is not one. -#}
{% macro safe_bigint(expression) -%}
  {{ return(adapter.dispatch('safe_bigint', 'ga4_stitch')(expression)) }}
{%- endmacro %}

{% macro bigquery__safe_bigint(expression) -%}
  safe_cast({{ expression }} as int64)
{%- endmacro %}

{% macro default__safe_bigint(expression) -%}
  try_cast({{ expression }} as bigint)
{%- endmacro %}

{% macro json_bigint(column, path) -%}
  {{ ga4_stitch.safe_bigint(ga4_stitch.json_text(column, path)) }}
{%- endmacro %}

{% macro json_bool(column, path) -%}
  ({{ ga4_stitch.json_text(column, path) }} = 'true')
{%- endmacro %}

{#- Unix microseconds (integer) to a UTC timestamp, and back. -#}
{% macro micros_to_timestamp(expression) -%}
  {{ return(adapter.dispatch('micros_to_timestamp', 'ga4_stitch')(expression)) }}
{%- endmacro %}

{% macro bigquery__micros_to_timestamp(expression) -%}
  timestamp_micros({{ expression }})
{%- endmacro %}

{% macro default__micros_to_timestamp(expression) -%}
  make_timestamp({{ expression }})
{%- endmacro %}

{% macro timestamp_to_micros(expression) -%}
  {{ return(adapter.dispatch('timestamp_to_micros', 'ga4_stitch')(expression)) }}
{%- endmacro %}

{% macro bigquery__timestamp_to_micros(expression) -%}
  unix_micros({{ expression }})
{%- endmacro %}

{% macro default__timestamp_to_micros(expression) -%}
  epoch_us({{ expression }})
{%- endmacro %}

{#- The host of an absolute URL, lower case, without a port; null for anything else. -#}
{% macro url_host(expression) -%}
  {{ return(adapter.dispatch('url_host', 'ga4_stitch')(expression)) }}
{%- endmacro %}

{% macro bigquery__url_host(expression) -%}
  lower(regexp_extract({{ expression }}, r'^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]+)'))
{%- endmacro %}

{% macro default__url_host(expression) -%}
  nullif(lower(regexp_extract({{ expression }}, '^[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#@]*@)?([^/?#:]+)', 1)), '')
{%- endmacro %}

{#- A list of strings from a dbt variable as a SQL list of literals. -#}
{% macro string_list(values) -%}
  {%- for value in values -%}
    {{ dbt.string_literal(value | lower) }}{{ ", " if not loop.last }}
  {%- endfor -%}
{%- endmacro %}

{#- A client id in the resolver's canonical form: the cookie's `GA1.n.` prefix dropped. -#}
{% macro canonical_client(expression) -%}
  regexp_replace({{ expression }}, '^GA[0-9]+[.][0-9]+[.]', '')
{%- endmacro %}

{#- The browser family of a user agent: a simple case expression, most specific first. -#}
{% macro browser_family(user_agent) -%}
  case
    when {{ user_agent }} is null then '(not set)'
    when {{ user_agent }} like '%Edg/%' or {{ user_agent }} like '%EdgA/%' or {{ user_agent }} like '%EdgiOS/%' then 'Edge'
    when {{ user_agent }} like '%OPR/%' or {{ user_agent }} like '%Opera%' then 'Opera'
    when {{ user_agent }} like '%SamsungBrowser/%' then 'Samsung Internet'
    when {{ user_agent }} like '%Firefox/%' or {{ user_agent }} like '%FxiOS/%' then 'Firefox'
    when {{ user_agent }} like '%; wv)%' then 'Android Webview'
    when {{ user_agent }} like '%CriOS/%' or {{ user_agent }} like '%Chrome/%' then 'Chrome'
    when {{ user_agent }} like '%Safari/%' then 'Safari'
    when {{ user_agent }} like '%AppleWebKit/%' and ({{ user_agent }} like '%iPhone%' or {{ user_agent }} like '%iPad%') then 'Safari (in-app)'
    else 'Other'
  end
{%- endmacro %}
