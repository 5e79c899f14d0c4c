___TERMS_OF_SERVICE___

By creating or modifying this file you agree to Google Tag Manager's Community
Template Gallery Developer Terms of Service available at
https://developers.google.com/tag-manager/gallery-tos (or such other URL as
Google may provide), as modified from time to time.


___INFO___

{
  "type": "TAG",
  "id": "cvt_temp_public_id",
  "version": 1,
  "securityGroups": [],
  "displayName": "ga4-stitch: Pub/Sub raw-events publisher",
  "categories": [
    "ANALYTICS",
    "UTILITY"
  ],
  "brand": {
    "id": "brand_dummy",
    "displayName": "ga4-stitch"
  },
  "description": "Publishes the event data to the ga4-stitch raw-events Pub/Sub topic with ordering key and attributes client_id and event_name, an event_id and the event time in microseconds. Succeeds only on a 2xx answer from Pub/Sub.",
  "containerContexts": [
    "SERVER"
  ]
}


___TEMPLATE_PARAMETERS___

[
  {
    "type": "TEXT",
    "name": "projectId",
    "displayName": "Google Cloud project ID",
    "simpleValueType": true,
    "help": "The project that holds the raw-events topic. Leave empty only when the topic below is a full path (projects/PROJECT/topics/TOPIC).",
    "valueHint": "my-analytics-project"
  },
  {
    "type": "TEXT",
    "name": "topicId",
    "displayName": "Topic ID",
    "simpleValueType": true,
    "defaultValue": "ga4-stitch-raw-events",
    "valueValidators": [
      {
        "type": "NON_EMPTY"
      }
    ],
    "help": "The raw-events topic (default ga4-stitch-raw-events), or its full path projects/PROJECT/topics/TOPIC."
  },
  {
    "type": "GROUP",
    "name": "fieldsGroup",
    "displayName": "Message data",
    "groupStyle": "ZIPPY_OPEN",
    "subParams": [
      {
        "type": "RADIO",
        "name": "fieldMode",
        "displayName": "Event data to publish",
        "radioItems": [
          {
            "value": "all",
            "displayValue": "All event data"
          },
          {
            "value": "include",
            "displayValue": "Only the listed fields"
          },
          {
            "value": "exclude",
            "displayValue": "All event data except the listed fields"
          }
        ],
        "simpleValueType": true,
        "defaultValue": "all",
        "help": "client_id, event_name, event_id and timestamp_micros are always published: the resolver needs them."
      },
      {
        "type": "SIMPLE_TABLE",
        "name": "includeFields",
        "displayName": "Fields to publish",
        "simpleTableColumns": [
          {
            "defaultValue": "",
            "displayName": "Event data key (dots reach nested keys)",
            "name": "key",
            "type": "TEXT",
            "isUnique": true,
            "valueValidators": [
              {
                "type": "NON_EMPTY"
              }
            ]
          }
        ],
        "newRowButtonText": "Add field",
        "enablingConditions": [
          {
            "paramName": "fieldMode",
            "paramValue": "include",
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "SIMPLE_TABLE",
        "name": "excludeFields",
        "displayName": "Fields to leave out",
        "simpleTableColumns": [
          {
            "defaultValue": "",
            "displayName": "Event data key (dots reach nested keys, e.g. user_data.email_address)",
            "name": "key",
            "type": "TEXT",
            "isUnique": true,
            "valueValidators": [
              {
                "type": "NON_EMPTY"
              }
            ]
          }
        ],
        "newRowButtonText": "Add field",
        "enablingConditions": [
          {
            "paramName": "fieldMode",
            "paramValue": "exclude",
            "type": "EQUALS"
          }
        ]
      },
      {
        "type": "SIMPLE_TABLE",
        "name": "customFields",
        "displayName": "Custom fields (added after the lists; null and undefined values are skipped)",
        "simpleTableColumns": [
          {
            "defaultValue": "",
            "displayName": "Name (dots create nested keys)",
            "name": "name",
            "type": "TEXT",
            "isUnique": true,
            "valueValidators": [
              {
                "type": "NON_EMPTY"
              }
            ]
          },
          {
            "defaultValue": "",
            "displayName": "Value",
            "name": "value",
            "type": "TEXT"
          }
        ],
        "newRowButtonText": "Add custom field"
      },
      {
        "type": "CHECKBOX",
        "name": "addEventTime",
        "checkboxText": "Add the event time as timestamp_micros",
        "simpleValueType": true,
        "defaultValue": true,
        "help": "Keeps an existing timestamp_micros; otherwise derives it from event_timestamp, custom_timestamp or gtm.start (milliseconds), else the current time."
      }
    ]
  },
  {
    "type": "GROUP",
    "name": "advancedGroup",
    "displayName": "Advanced",
    "groupStyle": "ZIPPY_CLOSED",
    "subParams": [
      {
        "type": "TEXT",
        "name": "timeoutMs",
        "displayName": "Publish timeout (milliseconds)",
        "simpleValueType": true,
        "defaultValue": "5000",
        "valueValidators": [
          {
            "type": "POSITIVE_NUMBER"
          }
        ]
      },
      {
        "type": "TEXT",
        "name": "endpointRegion",
        "displayName": "Locational endpoint region (optional)",
        "simpleValueType": true,
        "valueHint": "europe-west1",
        "help": "Publish through REGION-pubsub.googleapis.com instead of the global endpoint. Pub/Sub keeps the order of an ordering key only among messages published in one region: set this when the server container runs in several regions. Add https://REGION-pubsub.googleapis.com/* to the template's 'Sends HTTP requests' permission as well."
      },
      {
        "type": "CHECKBOX",
        "name": "logSuccess",
        "checkboxText": "Also log successful publishes (with the Pub/Sub message id)",
        "simpleValueType": true,
        "defaultValue": false
      }
    ]
  }
]


___SANDBOXED_JS_FOR_SERVER___

// ga4-stitch: publish the event to the raw-events Pub/Sub topic.
// Contract (docs/contracts.md): message data = the event data as JSON, attributes
// client_id and event_name, ordering key = client_id. The tag succeeds only on a 2xx
// answer from Pub/Sub; every failure calls gtmOnFailure and writes one log line that
// names the topic and the status, never a token and never a full identifier.
const JSON = require('JSON');
const Math = require('Math');
const Object = require('Object');
const encodeUriComponent = require('encodeUriComponent');
const getAllEventData = require('getAllEventData');
const getGoogleAuth = require('getGoogleAuth');
const getTimestampMillis = require('getTimestampMillis');
const getType = require('getType');
const logToConsole = require('logToConsole');
const makeNumber = require('makeNumber');
const makeString = require('makeString');
const queryPermission = require('queryPermission');
const sendHttpRequest = require('sendHttpRequest');
const sha256Sync = require('sha256Sync');
const toBase64 = require('toBase64');

const PUBSUB_SCOPE = 'https://www.googleapis.com/auth/pubsub';
const DEFAULT_TOPIC = 'ga4-stitch-raw-events';
const DEFAULT_TIMEOUT_MS = 5000;
// The raw-event contract needs these; lists and custom fields never drop them.
const KEPT_FIELDS = ['client_id', 'event_name', 'event_id', 'timestamp_micros'];
const MS_TIME_FIELDS = ['event_timestamp', 'custom_timestamp', 'gtm.start'];
const MAX_TIME_VALUE = 1e16;
const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789-';

const eventData = getAllEventData();
const topic = topicPath();
const host = pubsubHost();

if (!topic || !host) {
  fail('invalid_configuration', {});
} else {
  const message = buildMessage(eventData);
  const clientId = textOf(message.client_id);
  if (!clientId) {
    fail('missing_client_id', { event_name: textOf(message.event_name) });
  } else {
    publish(message, clientId);
  }
}

// The resolver's canonical client id: a cookie-prefixed id (GA1.1.X.Y) and its bare form
// (X.Y) are one browser, so they share an ordering key and can never overtake each other.
function orderingKeyOf(clientId) {
  const parts = clientId.split('.');
  if (parts.length === 4 && parts[0].indexOf('GA') === 0 && isDigits(parts[1]) &&
      isDigits(parts[2]) && isDigits(parts[3])) {
    return parts[2] + '.' + parts[3];
  }
  return clientId;
}

function isDigits(text) {
  if (!text) return false;
  for (let i = 0; i < text.length; i++) {
    if ('0123456789'.indexOf(text.charAt(i)) < 0) return false;
  }
  return true;
}

function publish(message, clientId) {
  const attributes = { client_id: clientId };
  const eventName = textOf(message.event_name);
  if (eventName) attributes.event_name = eventName;
  const body = {
    messages: [{
      data: toBase64(JSON.stringify(message)),
      attributes: attributes,
      orderingKey: orderingKeyOf(clientId),
    }],
  };
  const context = { event_name: eventName, client_id: masked(clientId) };
  const url = 'https://' + host + '/v1/' + topic + ':publish';
  if (!queryPermission('send_http', url)) {
    context.host = host;
    context.hint = 'add https://' + host + '/* to the template permission "Sends HTTP requests"';
    fail('host_not_permitted', context);
    return;
  }
  const options = {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    timeout: timeoutMs(),
    authorization: getGoogleAuth({ scopes: [PUBSUB_SCOPE] }),
  };
  sendHttpRequest(url, options, JSON.stringify(body))
    .then((response) => {
      if (response.statusCode >= 200 && response.statusCode < 300) {
        if (data.logSuccess) {
          context.message_id = firstMessageId(response.body);
          log('INFO', 'published', context);
        }
        data.gtmOnSuccess();
        return;
      }
      context.status_code = response.statusCode;
      context.error = errorSummary(response.body);
      fail('http_error', context);
    }, (error) => {
      fail(error && error.reason === 'timed_out' ? 'timed_out' : 'request_failed', context);
    });
}

function fail(reason, context) {
  context.reason = reason;
  log('ERROR', 'publish failed', context);
  data.gtmOnFailure();
}

function log(severity, text, context) {
  const entry = {
    severity: severity,
    message: 'ga4-stitch pubsub tag: ' + text,
    topic: topic || textOf(data.topicId),
  };
  Object.keys(context).forEach((key) => {
    if (context[key] !== '' && getType(context[key]) !== 'undefined') entry[key] = context[key];
  });
  logToConsole(JSON.stringify(entry));
}

function buildMessage(all) {
  const mode = data.fieldMode || 'all';
  let message = mode === 'include' ? {} : withoutNulls(all);
  if (mode === 'include') {
    rowValues(data.includeFields, 'key').concat(KEPT_FIELDS)
      .forEach((path) => copyPath(all, message, path));
  } else if (mode === 'exclude') {
    rowValues(data.excludeFields, 'key').forEach((path) => {
      if (KEPT_FIELDS.indexOf(path) === -1) removePath(message, path);
    });
  }
  rowsOf(data.customFields).forEach((row) => {
    const name = textOf(row.name);
    if (name && !isNil(row.value)) setPath(message, name, row.value);
  });
  message = withoutNulls(message);
  const ownMicros = ownTimeMicros(message, all);
  const nowMs = getTimestampMillis();
  if (!textOf(message.event_id)) message.event_id = derivedEventId(all, ownMicros, nowMs);
  if (data.addEventTime !== false) message.timestamp_micros = ownMicros || nowMs * 1000;
  return message;
}

// The event's own time in microseconds, or 0: timestamp_micros, else the first
// millisecond field, in whole milliseconds. The inline variable computes the same value
// (its event_timestamp is this divided by 1000), so both paths see one event time.
function ownTimeMicros(message, all) {
  const micros = positiveNumber(message.timestamp_micros);
  if (micros) return Math.floor(micros);
  for (let i = 0; i < MS_TIME_FIELDS.length; i++) {
    const field = MS_TIME_FIELDS[i];
    const millis = timeField(message, field) || timeField(all, field);
    if (millis) return Math.floor(millis) * 1000;
  }
  return 0;
}

// A time field: a nested path first (gtm > start, as getEventData reads "gtm.start"),
// then a key of that name as a whole.
function timeField(object, name) {
  const dot = name.indexOf('.');
  if (dot !== -1) {
    const head = object[name.substring(0, dot)];
    const nested = getType(head) === 'object' ? positiveNumber(head[name.substring(dot + 1)]) : 0;
    if (nested) return nested;
  }
  return positiveNumber(object[name]);
}

// The same id the inline variable derives for this event, with no random part:
// "gs-" + 32 hex digits of the SHA-256 of client id, stream, GA4 page id, request count,
// event name and the event's own time in ms. Without an own time, the time is left out
// when the page id identifies the hit, else the current time stands in.
function derivedEventId(all, ownMicros, nowMs) {
  const pageId = textOf(all['x-ga-page_id']);
  let time = '';
  if (ownMicros) time = makeString(Math.floor(ownMicros / 1000));
  else if (!pageId) time = makeString(nowMs);
  const stream = textOf(all['x-ga-measurement_id']) || textOf(all.measurement_id);
  const parts = [textOf(all.client_id), stream, pageId, textOf(all['x-ga-request_count']),
    textOf(all.event_name), time];
  return 'gs-' + sha256Sync(JSON.stringify(parts), { outputEncoding: 'hex' }).substring(0, 32);
}

function topicPath() {
  const topicId = textOf(data.topicId) || DEFAULT_TOPIC;
  if (topicId.indexOf('projects/') === 0) {
    const parts = topicId.split('/');
    if (parts.length !== 4 || parts[2] !== 'topics' || !parts[1] || !parts[3]) return '';
    return 'projects/' + encodeUriComponent(parts[1]) + '/topics/' + encodeUriComponent(parts[3]);
  }
  const projectId = textOf(data.projectId);
  if (!projectId) return '';
  return 'projects/' + encodeUriComponent(projectId) + '/topics/' + encodeUriComponent(topicId);
}

// The global endpoint, or a locational one: Pub/Sub keeps an ordering key's order only
// among messages published in the same region.
function pubsubHost() {
  const region = textOf(data.endpointRegion).toLowerCase();
  if (!region) return 'pubsub.googleapis.com';
  for (let i = 0; i < region.length; i++) {
    if (NAME_CHARS.indexOf(region.charAt(i)) === -1) return '';
  }
  return region + '-pubsub.googleapis.com';
}

function timeoutMs() {
  const value = makeNumber(data.timeoutMs);
  return value > 0 ? Math.floor(value) : DEFAULT_TIMEOUT_MS;
}

function firstMessageId(body) {
  const parsed = JSON.parse(body || '');
  const ids = parsed && parsed.messageIds;
  return getType(ids) === 'array' && ids.length ? ids[0] : '';
}

function errorSummary(body) {
  const parsed = JSON.parse(body || '');
  if (parsed && getType(parsed.error) === 'object') {
    return truncated(textOf(parsed.error.status) + ' ' + textOf(parsed.error.message));
  }
  return truncated(textOf(body));
}

function truncated(text) {
  return text.length > 300 ? text.substring(0, 300) + '...' : text;
}

function masked(value) {
  return value.length > 6 ? value.substring(0, 4) + '...(' + value.length + ')' : '***';
}

function rowsOf(table) {
  return getType(table) === 'array' ? table.filter((row) => getType(row) === 'object') : [];
}

function rowValues(table, column) {
  return rowsOf(table).map((row) => textOf(row[column])).filter((value) => value !== '');
}

// Field paths: a name that is a key of the object as a whole (such as "gtm.start") means
// that key; otherwise dots separate nested keys ("user_data.email_address").
function copyPath(source, target, path) {
  if (getType(source) !== 'object') return;
  if (!isNil(source[path])) {
    target[path] = source[path];
    return;
  }
  const dot = path.indexOf('.');
  if (dot === -1) return;
  const head = path.substring(0, dot);
  if (getType(source[head]) !== 'object') return;
  if (getType(target[head]) !== 'object') target[head] = {};
  copyPath(source[head], target[head], path.substring(dot + 1));
}

function removePath(object, path) {
  if (getType(object) !== 'object') return;
  if (getType(object[path]) !== 'undefined') {
    Object.delete(object, path);
    return;
  }
  const dot = path.indexOf('.');
  if (dot !== -1) removePath(object[path.substring(0, dot)], path.substring(dot + 1));
}

function setPath(object, path, value) {
  const dot = path.indexOf('.');
  if (dot === -1 || getType(object[path]) !== 'undefined') {
    object[path] = value;
    return;
  }
  const head = path.substring(0, dot);
  if (getType(object[head]) !== 'object') object[head] = {};
  setPath(object[head], path.substring(dot + 1), value);
}

function withoutNulls(value) {
  const type = getType(value);
  if (type === 'array') return value.map(withoutNulls);
  if (type !== 'object') return value;
  const result = {};
  Object.keys(value).forEach((key) => {
    if (!isNil(value[key])) result[key] = withoutNulls(value[key]);
  });
  return result;
}

// A positive time value (number or numeric string); NaN, Infinity and junk give 0.
function positiveNumber(value) {
  const type = getType(value);
  if (type !== 'number' && !(type === 'string' && value !== '')) return 0;
  const number = makeNumber(value);
  return number > 0 && number < MAX_TIME_VALUE ? number : 0;
}

function textOf(value) {
  const type = getType(value);
  if (type === 'string') return value;
  if (type === 'number' || type === 'boolean') return makeString(value);
  return '';
}

function isNil(value) {
  const type = getType(value);
  return type === 'null' || type === 'undefined';
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
          "key": "eventDataAccess",
          "value": {
            "type": 1,
            "string": "any"
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
                "string": "https://pubsub.googleapis.com/*"
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
                "string": "https://www.googleapis.com/auth/pubsub"
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
- name: Publishes the event and succeeds on a 2xx answer
  code: |-
    runCode(mockData);

    assertApi('gtmOnSuccess').wasCalled();
    assertApi('gtmOnFailure').wasNotCalled();
    assertApi('getGoogleAuth').wasCalledWith({scopes: [PUBSUB_SCOPE]});
    assertThat(requests).hasLength(1);
    assertThat(requests[0].url).isEqualTo(PUBLISH_URL);
    assertThat(requests[0].options.method).isEqualTo('POST');
    assertThat(requests[0].options.headers).isEqualTo({'Content-Type': 'application/json'});
    assertThat(requests[0].options.timeout).isEqualTo(5000);
    assertThat(requests[0].options.authorization).isEqualTo(AUTH);

    const body = JSON.parse(requests[0].body);
    assertThat(body.messages).hasLength(1);
    const message = body.messages[0];
    assertThat(message.attributes).isEqualTo({client_id: CLIENT_ID, event_name: 'login'});
    // The canonical client id: GA1.1.X.Y and X.Y are one browser.
    assertThat(message.orderingKey).isEqualTo('1768696203.1712345678');

    const published = JSON.parse(fromBase64(message.data));
    assertThat(published.client_id).isEqualTo(CLIENT_ID);
    assertThat(published.event_name).isEqualTo('login');
    assertThat(published.user_id).isEqualTo('cust-000981');
    assertThat(published.ga_session_id).isEqualTo('1763800154');
    assertThat(published.timestamp_micros).isEqualTo(NOW_MS * 1000);
    assertThat(published.event_id).hasLength(35);
    assertThat(published.event_id.substring(0, 3)).isEqualTo('gs-');
    assertApi('logToConsole').wasNotCalled();
- name: Keeps the event's own event_id and time, and succeeds on a 204
  code: |-
    eventData.event_id = 'evt-0001';
    eventData.timestamp_micros = 1763800611712345;
    httpAnswer = settled(true, {statusCode: 204, headers: {}, body: ''});

    runCode(mockData);

    assertApi('gtmOnSuccess').wasCalled();
    assertApi('gtmOnFailure').wasNotCalled();
    const published = JSON.parse(fromBase64(JSON.parse(requests[0].body).messages[0].data));
    assertThat(published.event_id).isEqualTo('evt-0001');
    assertThat(published.timestamp_micros).isEqualTo(1763800611712345);
- name: Fails on a 4xx answer and logs the status, never the token
  code: |-
    httpAnswer = settled(true, {
      statusCode: 403,
      headers: {},
      body: '{"error":{"code":403,"status":"PERMISSION_DENIED","message":"User not authorized to perform this action."}}',
    });

    runCode(mockData);

    assertApi('gtmOnFailure').wasCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
    assertThat(logged).hasLength(1);
    const entry = JSON.parse(logged[0]);
    assertThat(entry.severity).isEqualTo('ERROR');
    assertThat(entry.reason).isEqualTo('http_error');
    assertThat(entry.status_code).isEqualTo(403);
    assertThat(entry.error).isEqualTo('PERMISSION_DENIED User not authorized to perform this action.');
    assertThat(entry.topic).isEqualTo('projects/my-project/topics/ga4-stitch-raw-events');
    assertThat(entry.client_id).isEqualTo('GA1....(27)');
    assertThat(logged[0]).doesNotContain(ACCESS_TOKEN, 'Bearer', '1768696203.1712345678', 'cust-000981');
- name: Fails on a 5xx answer
  code: |-
    httpAnswer = settled(true, {statusCode: 503, headers: {}, body: 'Service Unavailable'});

    runCode(mockData);

    assertApi('gtmOnFailure').wasCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
    const entry = JSON.parse(logged[0]);
    assertThat(entry.reason).isEqualTo('http_error');
    assertThat(entry.status_code).isEqualTo(503);
    assertThat(entry.error).isEqualTo('Service Unavailable');
- name: Fails when the request fails on the network
  code: |-
    httpAnswer = settled(false, {reason: 'failed'});

    runCode(mockData);

    assertApi('gtmOnFailure').wasCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
    assertThat(logged).hasLength(1);
    const entry = JSON.parse(logged[0]);
    assertThat(entry.reason).isEqualTo('request_failed');
    assertThat(entry.status_code).isUndefined();
    assertThat(logged[0]).doesNotContain(ACCESS_TOKEN, '1768696203.1712345678');
- name: Fails when the request times out
  code: |-
    mockData.timeoutMs = '2500';
    httpAnswer = settled(false, {reason: 'timed_out'});

    runCode(mockData);

    assertThat(requests[0].options.timeout).isEqualTo(2500);
    assertApi('gtmOnFailure').wasCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
    assertThat(JSON.parse(logged[0]).reason).isEqualTo('timed_out');
- name: Fails without a request when the event has no client_id
  code: |-
    eventData = {event_name: 'page_view', 'x-ga-page_id': 1940542384};

    runCode(mockData);

    assertApi('sendHttpRequest').wasNotCalled();
    assertApi('getGoogleAuth').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
    assertApi('gtmOnSuccess').wasNotCalled();
    assertThat(logged).hasLength(1);
    const entry = JSON.parse(logged[0]);
    assertThat(entry.reason).isEqualTo('missing_client_id');
    assertThat(entry.event_name).isEqualTo('page_view');
- name: Fails without a request when no project id is set
  code: |-
    mockData.projectId = '';

    runCode(mockData);

    assertApi('sendHttpRequest').wasNotCalled();
    assertApi('gtmOnFailure').wasCalled();
    assertThat(JSON.parse(logged[0]).reason).isEqualTo('invalid_configuration');
setup: |-
  const JSON = require('JSON');
  const fromBase64 = require('fromBase64');
  const getType = require('getType');

  const PUBSUB_SCOPE = 'https://www.googleapis.com/auth/pubsub';
  const PUBLISH_URL = 'https://pubsub.googleapis.com/v1/projects/my-project/topics/ga4-stitch-raw-events:publish';
  const CLIENT_ID = 'GA1.1.1768696203.1712345678';
  const NOW_MS = 1763800611712;
  // The auth object carries a recognisable token, so a scenario can prove that no log
  // line ever holds it (the real one is opaque to the template).
  const ACCESS_TOKEN = 'ya29.scenario-access-token';
  const AUTH = {scopes: [PUBSUB_SCOPE], token: ACCESS_TOKEN};

  const mockData = {
    projectId: 'my-project',
    topicId: 'ga4-stitch-raw-events',
    fieldMode: 'all',
    addEventTime: true,
    timeoutMs: '5000',
    logSuccess: false,
  };

  let eventData = {
    client_id: CLIENT_ID,
    event_name: 'login',
    user_id: 'cust-000981',
    ga_session_id: '1763800154',
    ga_session_number: 12,
    'x-ga-measurement_id': 'G-ABCDE12345',
    'x-ga-page_id': 1940542384,
    'x-ga-request_count': 4,
    page_location: 'https://shop.example.com/account',
  };
  mock('getAllEventData', () => eventData);
  mock('getTimestampMillis', () => NOW_MS);
  mock('getGoogleAuth', AUTH);

  const logged = [];
  mock('logToConsole', (line) => {
    logged.push(line);
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

  // sendHttpRequest resolves with any HTTP status and rejects only on a network
  // failure ({reason: 'failed'}) or a timeout ({reason: 'timed_out'}).
  let httpAnswer = settled(true, {statusCode: 200, headers: {}, body: '{"messageIds":["4242"]}'});
  const requests = [];
  mock('sendHttpRequest', (url, options, body) => {
    requests.push({url: url, options: options, body: body});
    return httpAnswer;
  });


___NOTES___

ga4-stitch raw-events publisher. Documentation, permissions and the test suite: gtm/README.md in the ga4-stitch repository.


