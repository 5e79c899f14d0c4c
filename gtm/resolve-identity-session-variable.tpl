___TERMS_OF_SERVICE___

By creating or modifying this file you agree to Google Tag Manager's Community
Template Gallery Developer Terms of Service available at
https://developers.google.com/tag-manager/gallery-tos (or such other URL as
Google may provide), as modified from time to time.


___INFO___

{
  "type": "MACRO",
  "id": "cvt_temp_public_id",
  "version": 1,
  "securityGroups": [],
  "displayName": "ga4-stitch: resolved identity and session",
  "categories": [
    "ANALYTICS",
    "UTILITY"
  ],
  "brand": {
    "id": "brand_dummy",
    "displayName": "ga4-stitch"
  },
  "description": "Asks the ga4-stitch resolve-identity-session endpoint for the stitched user id, GA4 session id and session number of this event. Falls back to the event's own ids, marked source \"fallback\", when the call fails or times out.",
  "containerContexts": [
    "SERVER"
  ]
}


___TEMPLATE_PARAMETERS___

[
  {
    "type": "TEXT",
    "name": "endpointUrl",
    "displayName": "resolve-identity-session URL",
    "simpleValueType": true,
    "valueHint": "https://europe-west1-my-project.cloudfunctions.net/resolve-identity-session",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      },
      {
        "type": "REGEX",
        "args": [
          "^https://.+"
        ]
      }
    ],
    "help": "The HTTPS URL of the deployed resolve-identity-session function. Hosts on *.run.app and *.cloudfunctions.net are allowed by the template's permissions; for a custom domain, add it to the 'Sends HTTP requests' permission."
  },
  {
    "type": "SELECT",
    "name": "output",
    "displayName": "Value to return",
    "macrosInSelect": false,
    "selectItems": [
      {
        "value": "object",
        "displayValue": "The whole result (object)"
      },
      {
        "value": "resolved_user_id",
        "displayValue": "resolved_user_id"
      },
      {
        "value": "resolved_ga_session_id",
        "displayValue": "resolved_ga_session_id"
      },
      {
        "value": "session_number",
        "displayValue": "session_number"
      },
      {
        "value": "source",
        "displayValue": "source (resolved or fallback)"
      },
      {
        "value": "identity_source",
        "displayValue": "identity_source"
      },
      {
        "value": "client_id",
        "displayValue": "client_id (canonical)"
      },
      {
        "value": "event_index",
        "displayValue": "event_index"
      },
      {
        "value": "is_new_session",
        "displayValue": "is_new_session"
      },
      {
        "value": "reason",
        "displayValue": "reason (why the fallback was used)"
      },
      {
        "value": "event_id",
        "displayValue": "event_id (as the Pub/Sub tag publishes it)"
      },
      {
        "value": "event_timestamp",
        "displayValue": "event_timestamp (milliseconds, as sent to the endpoint)"
      }
    ],
    "simpleValueType": true,
    "defaultValue": "object"
  },
  {
    "type": "GROUP",
    "name": "authGroup",
    "displayName": "Authentication",
    "groupStyle": "ZIPPY_OPEN",
    "subParams": [
      {
        "type": "RADIO",
        "name": "authMode",
        "displayName": "How the container proves who it is",
        "radioItems": [
          {
            "value": "id_token",
            "displayValue": "Google ID token (the endpoint requires an authenticated invoker)",
            "help": "The container's service account mints an ID token through the IAM Credentials API and sends it as a Bearer token."
          },
          {
            "value": "shared_secret",
            "displayValue": "Shared secret header"
          },
          {
            "value": "none",
            "displayValue": "None (local emulator or a private network only)"
          }
        ],
        "simpleValueType": true,
        "defaultValue": "id_token"
      },
      {
        "type": "TEXT",
        "name": "serviceAccountEmail",
        "displayName": "Service account that mints the ID token",
        "simpleValueType": true,
        "valueHint": "sgtm@my-project.iam.gserviceaccount.com",
        "help": "Usually the server container's own runtime service account. It needs roles/iam.serviceAccountOpenIdTokenCreator on this account (on itself, when it is the runtime account), and the endpoint must grant this account the invoker role.",
        "valueValidators": [
          {
            "type": "NON_EMPTY"
          }
        ],
        "enablingConditions": [
          {
            "paramName": "authMode",
            "paramValue": "id_token",
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "audience",
        "displayName": "ID token audience (optional)",
        "simpleValueType": true,
        "help": "Defaults to https://HOST for *.run.app URLs and to the URL itself otherwise. Set it when the service uses a custom audience.",
        "enablingConditions": [
          {
            "paramName": "authMode",
            "paramValue": "id_token",
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "secretHeaderName",
        "displayName": "Header name",
        "simpleValueType": true,
        "defaultValue": "X-Ga4-Stitch-Key",
        "enablingConditions": [
          {
            "paramName": "authMode",
            "paramValue": "shared_secret",
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "secretValue",
        "displayName": "Secret",
        "simpleValueType": true,
        "help": "Anyone who can read this container can read this value. Prefer the ID token.",
        "valueValidators": [
          {
            "type": "NON_EMPTY"
          }
        ],
        "enablingConditions": [
          {
            "paramName": "authMode",
            "paramValue": "shared_secret",
            "type": "EQUALS"
          }
        ]
      }
    ]
  },
  {
    "type": "TEXT",
    "name": "timeoutMs",
    "displayName": "Timeout (milliseconds, for the whole resolution)",
    "simpleValueType": true,
    "defaultValue": "1000",
    "valueValidators": [
      {
        "type": "POSITIVE_NUMBER"
      }
    ],
    "help": "Tags that read this variable wait for it. After this time the variable answers with the incoming ids (source fallback, reason timed_out)."
  }
]


___SANDBOXED_JS_FOR_SERVER___

// ga4-stitch: resolve identity and session inline, from the resolve-identity-session
// endpoint, while the event is still in the container.
// Request:  POST {client_id, event_id, event_timestamp (ms), and when the event has them
//            user_id, event_name, measurement_id, x-ga-gcs, consent, page_location,
//            page_referrer, user_agent, link_token}
// Answer:   {resolved_user_id, resolved_ga_session_id, session_number, identity_source,
//            client_id, event_index, is_new_session}; 400 with a reason on bad input.
// event_id and event_timestamp are those the Pub/Sub tag publishes for the same event,
// so the endpoint and the pipeline record the event once, at one time, in one stream.
// The value never fails: when the call fails, times out or answers badly, it is the
// event's own (incoming) ids with source "fallback" and the reason. Results are kept for
// a few seconds per event, so later reads of this variable (or of another variable from
// this template) for the same event reuse them instead of calling again.
const JSON = require('JSON');
const Math = require('Math');
const Promise = require('Promise');
const encodeUriComponent = require('encodeUriComponent');
const getEventData = require('getEventData');
const getGoogleAuth = require('getGoogleAuth');
const getTimestampMillis = require('getTimestampMillis');
const getType = require('getType');
const logToConsole = require('logToConsole');
const makeNumber = require('makeNumber');
const makeString = require('makeString');
const queryPermission = require('queryPermission');
const sendHttpRequest = require('sendHttpRequest');
const sha256Sync = require('sha256Sync');
const templateDataStorage = require('templateDataStorage');

const IAM_SCOPE = 'https://www.googleapis.com/auth/iam';
const ID_TOKEN_URL = 'https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/';
const DEFAULT_TIMEOUT_MS = 1000;
const DEFAULT_SECRET_HEADER = 'X-Ga4-Stitch-Key';
const RESULTS_KEY = 'resolved_events';
const RESULTS_TTL_MS = 15000;
const RESULTS_MAX = 100;
const TOKENS_KEY = 'id_tokens';
// ID tokens from the IAM Credentials API are valid for one hour; renew well before.
const TOKEN_TTL_MS = 50 * 60 * 1000;
const MAX_TIME_VALUE = 1e16;
const OUTPUT_FIELDS = ['resolved_user_id', 'resolved_ga_session_id', 'session_number',
  'source', 'identity_source', 'client_id', 'event_index', 'is_new_session', 'reason',
  'event_id', 'event_timestamp'];
// Sent to the endpoint as they are when the event has them (text values).
const PASSED_TEXT_FIELDS = ['user_id', 'event_name', 'measurement_id', 'x-ga-gcs',
  'page_location', 'page_referrer', 'user_agent', 'link_token'];

const startedAt = getTimestampMillis();
const endpoint = textOf(data.endpointUrl);
const incoming = readIncoming();
// The event's id and time as the Pub/Sub tag publishes them; set once the time is known.
const ids = { event_id: incoming.event_id || null, event_timestamp: incoming.event_timestamp || null };

return resolve();

function resolve() {
  if (!incoming.client_id) return output(fallback('missing_client_id'));
  const key = eventKey();
  const known = findResult(key);
  if (known && known.value) return output(known.value);
  ids.event_timestamp = known ? known.ts : incoming.event_timestamp || startedAt;
  ids.event_id = incoming.event_id || derivedEventId(ids.event_timestamp);
  if (endpoint.indexOf('https://') !== 0) return output(failure('invalid_endpoint', {}));
  if (!queryPermission('send_http', endpoint)) {
    return output(failure('endpoint_not_permitted', {
      hint: 'add the endpoint to the template permission "Sends HTTP requests"',
    }));
  }
  if (!known) remember(key, ids.event_timestamp, null);
  return callWithAuth(JSON.stringify(requestBody())).then((result) => {
    remember(key, ids.event_timestamp, result);
    return output(result);
  });
}

function requestBody() {
  const body = {
    client_id: incoming.client_id,
    event_id: ids.event_id,
    event_timestamp: ids.event_timestamp,
  };
  PASSED_TEXT_FIELDS.forEach((field) => {
    if (incoming[field]) body[field] = incoming[field];
  });
  if (getType(incoming.consent) === 'object') body.consent = incoming.consent;
  return body;
}

// The id the Pub/Sub tag derives for an event without its own event_id, from the same
// fields: "gs-" + 32 hex digits of the SHA-256 of client id, stream, GA4 page id, request
// count, event name and the event's own time in ms. Without an own time, the time is
// left out when the page id identifies the hit, else the time of the first read stands in.
function derivedEventId(eventTimestamp) {
  let time = '';
  if (incoming.event_timestamp) time = makeString(incoming.event_timestamp);
  else if (!incoming.page_id) time = makeString(eventTimestamp);
  const parts = [incoming.client_id, incoming.measurement_id, incoming.page_id,
    incoming.request_count, incoming.event_name, time];
  return 'gs-' + sha256Sync(JSON.stringify(parts), { outputEncoding: 'hex' }).substring(0, 32);
}

function callWithAuth(body) {
  const mode = data.authMode || 'id_token';
  const headers = { 'Content-Type': 'application/json' };
  if (mode === 'shared_secret') {
    headers[textOf(data.secretHeaderName) || DEFAULT_SECRET_HEADER] = textOf(data.secretValue);
    return callEndpoint(headers, body, false);
  }
  if (mode !== 'id_token') return callEndpoint(headers, body, false);
  const cached = cachedToken();
  if (cached) {
    headers.Authorization = 'Bearer ' + cached;
    return callEndpoint(headers, body, true);
  }
  return mintIdToken().then((minted) => {
    if (!minted.token) return failure(minted.reason, minted.context);
    headers.Authorization = 'Bearer ' + minted.token;
    return callEndpoint(headers, body, true);
  });
}

function callEndpoint(headers, body, usesIdToken) {
  const options = { method: 'POST', headers: headers, timeout: remainingMs() };
  return sendHttpRequest(endpoint, options, body).then((response) => {
    const status = response.statusCode;
    if (status >= 200 && status < 300) return fromAnswer(response.body, status);
    if (usesIdToken && (status === 401 || status === 403)) forgetToken();
    return failure('http_' + status, { status_code: status, error: errorSummary(response.body) });
  }, (error) => failure(requestFailure(error), {}));
}

function fromAnswer(body, status) {
  const answer = JSON.parse(body || '');
  if (getType(answer) !== 'object' || !isSessionId(answer.resolved_ga_session_id)) {
    return failure('bad_response', { status_code: status });
  }
  return {
    source: 'resolved',
    resolved_user_id: textOf(answer.resolved_user_id) || null,
    resolved_ga_session_id: answer.resolved_ga_session_id,
    session_number: numberOrNull(answer.session_number),
    identity_source: textOf(answer.identity_source) || null,
    client_id: textOf(answer.client_id) || incoming.client_id,
    event_index: numberOrNull(answer.event_index),
    is_new_session: getType(answer.is_new_session) === 'boolean' ? answer.is_new_session : null,
    event_id: ids.event_id,
    event_timestamp: ids.event_timestamp,
  };
}

function isSessionId(value) {
  return getType(value) === 'null' || (getType(value) === 'number' && value > 0);
}

// The event's own ids, marked as such: what GA4 would have used without ga4-stitch.
function fallback(reason) {
  return {
    source: 'fallback',
    reason: reason,
    resolved_user_id: incoming.user_id || null,
    resolved_ga_session_id: integerOrNull(incoming.ga_session_id),
    session_number: integerOrNull(incoming.ga_session_number),
    identity_source: incoming.user_id ? 'incoming' : 'anonymous',
    client_id: incoming.client_id || null,
    event_index: null,
    is_new_session: null,
    event_id: ids.event_id,
    event_timestamp: ids.event_timestamp,
  };
}

function failure(reason, context) {
  const entry = {
    severity: 'WARNING',
    message: 'ga4-stitch resolve variable: using incoming ids',
    reason: reason,
    endpoint: endpointForLog(),
    client_id: masked(incoming.client_id),
  };
  if (context.status_code) entry.status_code = context.status_code;
  if (context.error) entry.error = context.error;
  if (context.hint) entry.hint = context.hint;
  logToConsole(JSON.stringify(entry));
  return fallback(reason);
}

function output(result) {
  const field = data.output || 'object';
  if (OUTPUT_FIELDS.indexOf(field) === -1) return result;
  return getType(result[field]) === 'undefined' ? null : result[field];
}

function mintIdToken() {
  const account = textOf(data.serviceAccountEmail);
  if (!account) return promiseOf({ token: '', reason: 'missing_service_account', context: {} });
  const auth = getGoogleAuth({ scopes: [IAM_SCOPE] });
  const request = { audience: audience(), includeEmail: true };
  const options = {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    authorization: auth,
    timeout: remainingMs(),
  };
  const url = ID_TOKEN_URL + encodeUriComponent(account) + ':generateIdToken';
  return sendHttpRequest(url, options, JSON.stringify(request)).then((response) => {
    const answer = JSON.parse(response.body || '');
    if (response.statusCode >= 200 && response.statusCode < 300 && answer
        && getType(answer.token) === 'string' && answer.token) {
      storeToken(answer.token);
      return { token: answer.token };
    }
    return {
      token: '',
      reason: 'id_token_http_' + response.statusCode,
      context: { status_code: response.statusCode, error: errorSummary(response.body) },
    };
  }, (error) => ({ token: '', reason: 'id_token_' + requestFailure(error), context: {} }));
}

// Cloud Run checks the token's audience against the service URL; a function URL
// (cloudfunctions.net or a custom domain) is its own audience.
function audience() {
  const configured = textOf(data.audience);
  if (configured) return configured;
  const base = withoutQuery(endpoint);
  const hostEnd = base.indexOf('/', 8);
  const host = hostEnd === -1 ? base.substring(8) : base.substring(8, hostEnd);
  if (endsWith(host, '.run.app')) return 'https://' + host;
  return base;
}

function tokenKey() {
  return textOf(data.serviceAccountEmail) + ' ' + audience();
}

function cachedToken() {
  const tokens = templateDataStorage.getItemCopy(TOKENS_KEY);
  const entry = getType(tokens) === 'object' ? tokens[tokenKey()] : null;
  return entry && entry.expires_at > getTimestampMillis() ? entry.token : '';
}

function storeToken(token) {
  const tokens = {};
  tokens[tokenKey()] = { token: token, expires_at: getTimestampMillis() + TOKEN_TTL_MS };
  templateDataStorage.setItemCopy(TOKENS_KEY, tokens);
}

function forgetToken() {
  templateDataStorage.removeItem(TOKENS_KEY);
}

// Identifies the event for the per-event result cache: the same fields give the same
// event, also when it carries no time of its own.
function eventKey() {
  return JSON.stringify([endpoint, data.authMode || 'id_token', incoming.client_id,
    incoming.user_id, incoming.event_name, incoming.event_id, incoming.event_timestamp,
    incoming.measurement_id, incoming.page_id, incoming.request_count]);
}

function findResult(key) {
  const now = getTimestampMillis();
  const found = freshResults(now).filter((entry) => entry.key === key);
  return found.length ? found[0] : null;
}

function remember(key, eventTimestamp, value) {
  const now = getTimestampMillis();
  const entries = freshResults(now).filter((entry) => entry.key !== key);
  entries.push({ key: key, at: now, ts: eventTimestamp, value: value });
  const start = entries.length > RESULTS_MAX ? entries.length - RESULTS_MAX : 0;
  templateDataStorage.setItemCopy(RESULTS_KEY, entries.slice(start));
}

function freshResults(now) {
  const entries = templateDataStorage.getItemCopy(RESULTS_KEY);
  if (getType(entries) !== 'array') return [];
  return entries.filter((entry) => getType(entry) === 'object' && now - entry.at < RESULTS_TTL_MS);
}

function readIncoming() {
  return {
    client_id: textOf(getEventData('client_id')),
    user_id: textOf(getEventData('user_id')),
    event_name: textOf(getEventData('event_name')),
    event_id: textOf(getEventData('event_id')),
    event_timestamp: eventTimeMillis(),
    ga_session_id: getEventData('ga_session_id'),
    ga_session_number: getEventData('ga_session_number'),
    page_id: textOf(getEventData('x-ga-page_id')),
    request_count: textOf(getEventData('x-ga-request_count')),
    measurement_id: textOf(getEventData('x-ga-measurement_id'))
      || textOf(getEventData('measurement_id')),
    'x-ga-gcs': textOf(getEventData('x-ga-gcs')),
    consent: getEventData('consent'),
    page_location: textOf(getEventData('page_location')),
    page_referrer: textOf(getEventData('page_referrer')),
    user_agent: textOf(getEventData('user_agent')),
    link_token: textOf(getEventData('link_token')),
  };
}

// The event's own time in whole milliseconds, or 0 when it has none: the tag's
// timestamp_micros divided by 1000, from the same fields in the same order.
function eventTimeMillis() {
  const micros = positiveNumber(getEventData('timestamp_micros'));
  if (micros) return Math.floor(micros / 1000);
  const millis = positiveNumber(getEventData('event_timestamp'))
    || positiveNumber(getEventData('custom_timestamp'))
    || positiveNumber(getEventData('gtm.start'));
  return millis ? Math.floor(millis) : 0;
}

function remainingMs() {
  const configured = makeNumber(data.timeoutMs);
  const budget = configured > 0 ? Math.floor(configured) : DEFAULT_TIMEOUT_MS;
  const left = budget - (getTimestampMillis() - startedAt);
  return left > 1 ? left : 1;
}

function requestFailure(error) {
  return error && error.reason === 'timed_out' ? 'timed_out' : 'request_failed';
}

function errorSummary(body) {
  const answer = JSON.parse(body || '');
  let text = textOf(body);
  if (getType(answer) === 'object') {
    const error = answer.error;
    text = getType(error) === 'object'
      ? textOf(error.status) + ' ' + textOf(error.message)
      : textOf(answer.reason) || textOf(error);
  }
  return text.length > 300 ? text.substring(0, 300) + '...' : text;
}

function endpointForLog() {
  return withoutQuery(endpoint);
}

function withoutQuery(url) {
  const cut = url.indexOf('?') === -1 ? url.indexOf('#') : url.indexOf('?');
  return cut === -1 ? url : url.substring(0, cut);
}

function masked(value) {
  return value.length > 6 ? value.substring(0, 4) + '...(' + value.length + ')' : '***';
}

function promiseOf(value) {
  return Promise.create((resolvePromise) => resolvePromise(value));
}

function integerOrNull(value) {
  const number = positiveNumber(value);
  return number ? Math.floor(number) : null;
}

function numberOrNull(value) {
  return getType(value) === 'number' ? value : null;
}

function positiveNumber(value) {
  const type = getType(value);
  if (type !== 'number' && !(type === 'string' && value !== '')) return 0;
  const number = makeNumber(value);
  return number > 0 && number < MAX_TIME_VALUE ? number : 0;
}

function endsWith(text, suffix) {
  return text.length >= suffix.length && text.substring(text.length - suffix.length) === suffix;
}

function textOf(value) {
  const type = getType(value);
  if (type === 'string') return value;
  if (type === 'number' || type === 'boolean') return makeString(value);
  return '';
}


___SERVER_PERMISSIONS___

[
  {
    "instance": {
      "key": {
        "publicId": "read_event_data",
        "versionId": "1"
      },
      "param": [
        {
          "key": "keyPatterns",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 1,
                "string": "client_id"
              },
              {
                "type": 1,
                "string": "user_id"
              },
              {
                "type": 1,
                "string": "event_name"
              },
              {
                "type": 1,
                "string": "event_id"
              },
              {
                "type": 1,
                "string": "timestamp_micros"
              },
              {
                "type": 1,
                "string": "event_timestamp"
              },
              {
                "type": 1,
                "string": "custom_timestamp"
              },
              {
                "type": 1,
                "string": "gtm.start"
              },
              {
                "type": 1,
                "string": "ga_session_id"
              },
              {
                "type": 1,
                "string": "ga_session_number"
              },
              {
                "type": 1,
                "string": "x-ga-page_id"
              },
              {
                "type": 1,
                "string": "x-ga-request_count"
              },
              {
                "type": 1,
                "string": "x-ga-measurement_id"
              },
              {
                "type": 1,
                "string": "measurement_id"
              },
              {
                "type": 1,
                "string": "x-ga-gcs"
              },
              {
                "type": 1,
                "string": "consent"
              },
              {
                "type": 1,
                "string": "page_location"
              },
              {
                "type": 1,
                "string": "page_referrer"
              },
              {
                "type": 1,
                "string": "user_agent"
              },
              {
                "type": 1,
                "string": "link_token"
              }
            ]
          }
        },
        {
          "key": "eventDataAccess",
          "value": {
            "type": 1,
            "string": "specific"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "send_http",
        "versionId": "1"
      },
      "param": [
        {
          "key": "allowedUrls",
          "value": {
            "type": 1,
            "string": "specific"
          }
        },
        {
          "key": "urls",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 1,
                "string": "https://*.run.app/*"
              },
              {
                "type": 1,
                "string": "https://*.cloudfunctions.net/*"
              },
              {
                "type": 1,
                "string": "https://iamcredentials.googleapis.com/*"
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "use_google_credentials",
        "versionId": "1"
      },
      "param": [
        {
          "key": "allowedScopes",
          "value": {
            "type": 2,
            "listItem": [
              {
                "type": 1,
                "string": "https://www.googleapis.com/auth/iam"
              }
            ]
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "access_template_storage",
        "versionId": "1"
      },
      "param": []
    },
    "isRequired": true
  },
  {
    "instance": {
      "key": {
        "publicId": "logging",
        "versionId": "1"
      },
      "param": [
        {
          "key": "environments",
          "value": {
            "type": 1,
            "string": "all"
          }
        }
      ]
    },
    "clientAnnotations": {
      "isEditedByUser": true
    },
    "isRequired": true
  }
]


___TESTS___

scenarios:
- name: Returns the endpoint's answer on a 200
  code: |-
    const value = valueOf(runCode(mockData));

    assertThat(value).isEqualTo({
      source: 'resolved',
      resolved_user_id: 'cust-000981',
      resolved_ga_session_id: 1763800154,
      session_number: 12,
      identity_source: 'incoming',
      client_id: '1768696203.1712345678',
      event_index: 3,
      is_new_session: false,
      event_id: 'evt-0001',
      event_timestamp: 1763800611712,
    });
    assertThat(requests).hasLength(1);
    assertThat(requests[0].url).isEqualTo(ENDPOINT);
    assertThat(requests[0].options.method).isEqualTo('POST');
    assertThat(requests[0].options.headers['X-Ga4-Stitch-Key']).isEqualTo(SECRET);
    assertThat(requests[0].options.timeout).isEqualTo(1000);
    const sent = JSON.parse(requests[0].body);
    assertThat(sent.client_id).isEqualTo(CLIENT_ID);
    assertThat(sent.event_id).isEqualTo('evt-0001');
    assertThat(sent.event_timestamp).isEqualTo(1763800611712);
    assertThat(sent.user_id).isEqualTo('cust-000981');
    assertThat(sent.event_name).isEqualTo('login');
    assertThat(sent.measurement_id).isEqualTo('G-ABCDE12345');
    assertThat(sent.ga_session_id).isUndefined();
    assertApi('logToConsole').wasNotCalled();
- name: Returns one field when Value to return names it
  code: |-
    mockData.output = 'resolved_ga_session_id';

    assertThat(valueOf(runCode(mockData))).isEqualTo(1763800154);
- name: A second read for the same event reuses the answer without a call
  code: |-
    const first = valueOf(runCode(mockData));
    const second = valueOf(runCode(mockData));

    assertThat(requests).hasLength(1);
    assertThat(second).isEqualTo(first);
- name: Mints an ID token for the endpoint in ID token mode
  code: |-
    mockData.authMode = 'id_token';
    mockData.serviceAccountEmail = 'gtm-sc@my-project.iam.gserviceaccount.com';
    mock('sendHttpRequest', (url, options, body) => {
      requests.push({url: url, options: options, body: body});
      if (url.indexOf('https://iamcredentials.googleapis.com/') === 0) {
        return settled(true, {statusCode: 200, headers: {}, body: '{"token":"eyJ.scenario-id-token"}'});
      }
      return httpAnswer;
    });

    const value = valueOf(runCode(mockData));

    assertThat(value.source).isEqualTo('resolved');
    assertApi('getGoogleAuth').wasCalledWith({scopes: ['https://www.googleapis.com/auth/iam']});
    assertThat(requests).hasLength(2);
    assertThat(requests[0].url).isEqualTo('https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/gtm-sc%40my-project.iam.gserviceaccount.com:generateIdToken');
    assertThat(JSON.parse(requests[0].body)).isEqualTo({
      audience: 'https://ga4-stitch-resolve-identity-session-abc123-ew.a.run.app',
      includeEmail: true,
    });
    assertThat(requests[1].url).isEqualTo(ENDPOINT);
    assertThat(requests[1].options.headers.Authorization).isEqualTo('Bearer eyJ.scenario-id-token');
- name: Falls back to the incoming ids on a 4xx
  code: |-
    httpAnswer = settled(true, {statusCode: 400, headers: {}, body: '{"reason":"client_id is not a GA4 client id"}'});

    const value = valueOf(runCode(mockData));

    assertThat(value).isEqualTo({
      source: 'fallback',
      reason: 'http_400',
      resolved_user_id: 'cust-000981',
      resolved_ga_session_id: 1763800154,
      session_number: 12,
      identity_source: 'incoming',
      client_id: CLIENT_ID,
      event_index: null,
      is_new_session: null,
      event_id: 'evt-0001',
      event_timestamp: 1763800611712,
    });
    assertThat(logged).hasLength(1);
    const entry = JSON.parse(logged[0]);
    assertThat(entry.severity).isEqualTo('WARNING');
    assertThat(entry.reason).isEqualTo('http_400');
    assertThat(entry.status_code).isEqualTo(400);
    assertThat(entry.error).isEqualTo('client_id is not a GA4 client id');
    assertThat(logged[0]).doesNotContain(SECRET, 'cust-000981', '1768696203.1712345678');
- name: Falls back to the incoming ids on a 5xx
  code: |-
    httpAnswer = settled(true, {statusCode: 503, headers: {}, body: 'Service Unavailable'});

    const value = valueOf(runCode(mockData));

    assertThat(value.source).isEqualTo('fallback');
    assertThat(value.reason).isEqualTo('http_503');
    assertThat(value.resolved_ga_session_id).isEqualTo(1763800154);
    assertThat(value.session_number).isEqualTo(12);
    assertThat(value.resolved_user_id).isEqualTo('cust-000981');
    assertThat(JSON.parse(logged[0]).status_code).isEqualTo(503);
- name: Falls back to the incoming ids when the request fails
  code: |-
    httpAnswer = settled(false, {reason: 'failed'});

    const value = valueOf(runCode(mockData));

    assertThat(value.source).isEqualTo('fallback');
    assertThat(value.reason).isEqualTo('request_failed');
    assertThat(value.resolved_ga_session_id).isEqualTo(1763800154);
    assertThat(value.event_id).isEqualTo('evt-0001');
    assertThat(JSON.parse(logged[0]).reason).isEqualTo('request_failed');
- name: Falls back to the incoming ids when the request times out
  code: |-
    httpAnswer = settled(false, {reason: 'timed_out'});

    const value = valueOf(runCode(mockData));

    assertThat(value.source).isEqualTo('fallback');
    assertThat(value.reason).isEqualTo('timed_out');
    assertThat(value.session_number).isEqualTo(12);
- name: Falls back without a call when the event has no client_id
  code: |-
    eventData = {event_name: 'login', ga_session_id: '1763800154', ga_session_number: 12};

    const value = valueOf(runCode(mockData));

    assertApi('sendHttpRequest').wasNotCalled();
    assertThat(value.source).isEqualTo('fallback');
    assertThat(value.reason).isEqualTo('missing_client_id');
    assertThat(value.client_id).isNull();
    assertThat(value.resolved_ga_session_id).isEqualTo(1763800154);
    assertThat(value.identity_source).isEqualTo('anonymous');
    assertApi('logToConsole').wasNotCalled();
setup: |-
  const JSON = require('JSON');
  const getType = require('getType');

  const ENDPOINT = 'https://ga4-stitch-resolve-identity-session-abc123-ew.a.run.app/';
  const CLIENT_ID = 'GA1.1.1768696203.1712345678';
  const SECRET = 'scenario-shared-secret';
  const NOW_MS = 1763800612000;

  const mockData = {
    endpointUrl: ENDPOINT,
    output: 'object',
    authMode: 'shared_secret',
    secretHeaderName: 'X-Ga4-Stitch-Key',
    secretValue: SECRET,
    timeoutMs: '1000',
  };

  let eventData = {
    client_id: CLIENT_ID,
    user_id: 'cust-000981',
    event_name: 'login',
    event_id: 'evt-0001',
    event_timestamp: 1763800611712,
    ga_session_id: '1763800154',
    ga_session_number: 12,
    'x-ga-measurement_id': 'G-ABCDE12345',
    page_location: 'https://shop.example.com/account',
  };
  mock('getEventData', (key) => eventData[key]);
  mock('getTimestampMillis', () => NOW_MS);
  mock('getGoogleAuth', {scopes: ['https://www.googleapis.com/auth/iam']});

  const logged = [];
  mock('logToConsole', (line) => {
    logged.push(line);
  });

  // Template storage, empty at the start of each scenario.
  const stored = {};
  mockObject('templateDataStorage', {
    getItemCopy: (key) => getType(stored[key]) === 'string' ? JSON.parse(stored[key]) : null,
    setItemCopy: (key, value) => {
      stored[key] = JSON.stringify(value);
    },
    removeItem: (key) => {
      stored[key] = null;
    },
  });

  // A promise that is already settled and runs its callbacks at once, as Google's own
  // mockObject example does: the template's callbacks run inside runCode, before the
  // assertions that follow it.
  function settled(ok, value) {
    return {
      then: (onSuccess, onFailure) => {
        const next = ok ? onSuccess : onFailure;
        if (!next) return settled(ok, value);
        const result = next(value);
        if (getType(result) === 'object' && getType(result.then) === 'function') return result;
        return settled(true, result);
      },
    };
  }

  // The variable's value: a promise when it calls the endpoint, settled by the time
  // runCode returns because the mocked network answers at once.
  function valueOf(returned) {
    if (getType(returned) !== 'object' || getType(returned.then) !== 'function') return returned;
    let value;
    returned.then((result) => {
      value = result;
    });
    assertThat(value, 'the variable settled inside runCode').isDefined();
    return value;
  }

  // sendHttpRequest resolves with any HTTP status and rejects only on a network
  // failure ({reason: 'failed'}) or a timeout ({reason: 'timed_out'}).
  let httpAnswer = settled(true, {statusCode: 200, headers: {}, body: JSON.stringify({
    resolved_user_id: 'cust-000981',
    resolved_ga_session_id: 1763800154,
    session_number: 12,
    identity_source: 'incoming',
    client_id: '1768696203.1712345678',
    event_index: 3,
    is_new_session: false,
  })});
  const requests = [];
  mock('sendHttpRequest', (url, options, body) => {
    requests.push({url: url, options: options, body: body});
    return httpAnswer;
  });


___NOTES___

ga4-stitch inline resolution variable. Documentation, permissions, the endpoint contract and the test suite: gtm/README.md in the ga4-stitch repository.


