// The Pub/Sub tag exactly as shipped in gtm/pubsub-publish-tag.tpl.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { FAKE_ACCESS_TOKEN, fixtureEvents, loadTemplate, runTag } from './sandbox.mjs';

const TAG = loadTemplate(new URL('../pubsub-publish-tag.tpl', import.meta.url).pathname);
const EVENTS = fixtureEvents();
const PAGE_VIEW = EVENTS[0];
const PURCHASE = EVENTS[2];
const NOW_MS = 1763800000000;
const PUBLISH_URL = 'https://pubsub.googleapis.com/v1/projects/my-project/topics/ga4-stitch-raw-events:publish';
const BASE = { projectId: 'my-project', topicId: 'ga4-stitch-raw-events', addEventTime: true };

const accepted = () => ({ statusCode: 200, body: JSON.stringify({ messageIds: ['4242'] }) });

async function publish(eventData, data = {}, options = {}) {
  const run = await runTag(TAG, {
    data: { ...BASE, ...data },
    eventData,
    http: accepted,
    clock: () => NOW_MS,
    ...options,
  });
  assert.deepEqual(run.errors, [], 'no unhandled rejection');
  assert.ok(run.calls.length <= 1, 'gtmOnSuccess / gtmOnFailure called at most once');
  return run;
}

function sentMessage(run) {
  const body = JSON.parse(run.requests[0].body);
  assert.equal(body.messages.length, 1);
  const [message] = body.messages;
  return { ...message, data: JSON.parse(Buffer.from(message.data, 'base64').toString('utf8')) };
}

function failureLog(run) {
  assert.equal(run.logs.length, 1, 'exactly one log line');
  return JSON.parse(run.logs[0]);
}

describe('publishing', () => {
  test('posts to the topic through the Pub/Sub REST API with the pubsub scope', async () => {
    const run = await publish(PAGE_VIEW);
    assert.equal(run.outcome, 'success');
    const [request] = run.requests;
    assert.equal(request.url, PUBLISH_URL);
    assert.equal(request.method, 'POST');
    assert.equal(request.headers['Content-Type'], 'application/json');
    assert.deepEqual(request.authorizationScopes, ['https://www.googleapis.com/auth/pubsub']);
    assert.equal(request.timeout, 5000);
  });

  test('message data is all the event data plus event_id and timestamp_micros', async () => {
    const message = sentMessage(await publish(PAGE_VIEW));
    const { event_id: eventId, timestamp_micros: micros, ...rest } = message.data;
    assert.deepEqual(rest, PAGE_VIEW);
    assert.match(eventId, /^gs-[0-9a-f]{32}$/);
    assert.equal(micros, NOW_MS * 1000);
  });

  test('attributes carry client_id as received; the ordering key is the canonical client id', async () => {
    const message = sentMessage(await publish(EVENTS[1]));
    assert.deepEqual(message.attributes, {
      client_id: 'GA1.1.1768696203.1712345678',
      event_name: 'login',
    });
    assert.equal(message.orderingKey, '1768696203.1712345678');
  });

  test('a server-managed client id is published as received', async () => {
    const message = sentMessage(await publish(PURCHASE));
    assert.equal(message.orderingKey, 'ZDoa3Sn32zo3RN66kguVogdtbQB1xZr/EBDR9gylXKA=.1647778941');
    assert.equal(message.data.items.length, 2);
  });

  test('a numeric client id becomes a string attribute and ordering key', async () => {
    const message = sentMessage(await publish({ client_id: 123.456, event_name: 'page_view' }));
    assert.equal(message.attributes.client_id, '123.456');
    assert.equal(message.orderingKey, '123.456');
  });

  test('an event without event_name is still published, without that attribute', async () => {
    const run = await publish(EVENTS[6]);
    assert.equal(run.outcome, 'success');
    assert.deepEqual(sentMessage(run).attributes, { client_id: '1768696203.1712345678' });
  });

  test('a full topic path is accepted in the topic field', async () => {
    const run = await publish(PAGE_VIEW, {
      projectId: '',
      topicId: 'projects/other-project/topics/custom-raw',
    });
    assert.equal(run.requests[0].url,
      'https://pubsub.googleapis.com/v1/projects/other-project/topics/custom-raw:publish');
  });

  test('every valid fixture event is published; the malformed one without client_id fails', async () => {
    const outcomes = [];
    for (const event of EVENTS) outcomes.push((await publish(event)).outcome);
    assert.deepEqual(outcomes, ['success', 'success', 'success', 'success', 'success', 'failure', 'success']);
  });
});

describe('success and failure', () => {
  test('calls gtmOnSuccess for every 2xx answer and logs nothing', async () => {
    for (const statusCode of [200, 201, 204]) {
      const run = await publish(PAGE_VIEW, {}, { http: () => ({ statusCode, body: '' }) });
      assert.deepEqual(run.calls, ['success']);
      assert.deepEqual(run.logs, []);
    }
  });

  test('a 3xx answer is a failure', async () => {
    const run = await publish(PAGE_VIEW, {}, { http: () => ({ statusCode: 302, body: '' }) });
    assert.deepEqual(run.calls, ['failure']);
    assert.equal(failureLog(run).status_code, 302);
  });

  test('a 4xx answer calls gtmOnFailure with the status, topic and Pub/Sub error', async () => {
    const body = JSON.stringify({
      error: { code: 403, status: 'PERMISSION_DENIED', message: 'User not authorized to perform this action.' },
    });
    const run = await publish(PAGE_VIEW, {}, { http: () => ({ statusCode: 403, body }) });
    assert.deepEqual(run.calls, ['failure']);
    const log = failureLog(run);
    assert.equal(log.severity, 'ERROR');
    assert.equal(log.reason, 'http_error');
    assert.equal(log.status_code, 403);
    assert.equal(log.topic, 'projects/my-project/topics/ga4-stitch-raw-events');
    assert.equal(log.error, 'PERMISSION_DENIED User not authorized to perform this action.');
    assert.equal(log.event_name, 'page_view');
  });

  test('a 5xx answer calls gtmOnFailure', async () => {
    for (const statusCode of [500, 503]) {
      const run = await publish(PAGE_VIEW, {}, { http: () => ({ statusCode, body: '<html>oops</html>' }) });
      assert.deepEqual(run.calls, ['failure']);
      assert.equal(failureLog(run).status_code, statusCode);
    }
  });

  test('a network failure calls gtmOnFailure with reason request_failed', async () => {
    const run = await publish(PAGE_VIEW, {}, { http: () => 'fail' });
    assert.deepEqual(run.calls, ['failure']);
    assert.equal(failureLog(run).reason, 'request_failed');
  });

  test('the configured timeout applies and a timeout calls gtmOnFailure', async () => {
    const run = await publish(PAGE_VIEW, { timeoutMs: '20' }, { http: () => 'hang' });
    assert.equal(run.requests[0].timeout, 20);
    assert.deepEqual(run.calls, ['failure']);
    assert.equal(failureLog(run).reason, 'timed_out');
  });

  test('a missing or empty client_id fails without publishing', async () => {
    for (const event of [EVENTS[5], { event_name: 'page_view' }, { client_id: null, event_name: 'x' }]) {
      const run = await publish(event);
      assert.deepEqual(run.calls, ['failure']);
      assert.equal(run.requests.length, 0);
      assert.equal(failureLog(run).reason, 'missing_client_id');
    }
  });

  test('a missing project id fails without publishing', async () => {
    const run = await publish(PAGE_VIEW, { projectId: '' });
    assert.deepEqual(run.calls, ['failure']);
    assert.equal(run.requests.length, 0);
    assert.equal(failureLog(run).reason, 'invalid_configuration');
  });

  test('failure logs hold no token, no full client id, no user id, email or IP', async () => {
    const run = await publish(PURCHASE, {}, { http: () => ({ statusCode: 500, body: '{}' }) });
    const line = run.logs.join('\n');
    for (const secret of [FAKE_ACCESS_TOKEN, PURCHASE.client_id, PURCHASE.user_id,
      PURCHASE.user_data.phone_number, PURCHASE.ip_override]) {
      assert.ok(!line.includes(secret), 'log must not contain ' + secret);
    }
    assert.equal(failureLog(run).client_id, 'ZDoa...(55)');
  });

  test('successful publishes can be logged with the message id', async () => {
    const run = await publish(PAGE_VIEW, { logSuccess: true });
    const log = failureLog(run);
    assert.equal(log.severity, 'INFO');
    assert.equal(log.message_id, '4242');
  });
});

describe('field selection', () => {
  test('include mode publishes only the listed fields plus the contract fields', async () => {
    const message = sentMessage(await publish(PAGE_VIEW, {
      fieldMode: 'include',
      includeFields: [{ key: 'page_location' }, { key: 'x-ga-system_properties.dbg' }, { key: 'absent' }],
    }));
    assert.deepEqual(Object.keys(message.data).sort(), [
      'client_id', 'event_id', 'event_name', 'page_location', 'timestamp_micros', 'x-ga-system_properties',
    ]);
    assert.deepEqual(message.data['x-ga-system_properties'], { dbg: '1' });
  });

  test('include mode keeps the event own event_id and timestamp_micros', async () => {
    const event = { ...PAGE_VIEW, event_id: 'e-1', timestamp_micros: 1763800154000001 };
    const message = sentMessage(await publish(event, { fieldMode: 'include', includeFields: [] }));
    assert.equal(message.data.event_id, 'e-1');
    assert.equal(message.data.timestamp_micros, 1763800154000001);
  });

  test('exclude mode drops listed top-level and nested fields but never the contract fields', async () => {
    const message = sentMessage(await publish(PURCHASE, {
      fieldMode: 'exclude',
      excludeFields: [{ key: 'ip_override' }, { key: 'user_data.email_address' }, { key: 'client_id' },
        { key: 'event_name' }],
    }));
    assert.equal(message.data.ip_override, undefined);
    assert.deepEqual(message.data.user_data, { phone_number: '+15551234567' });
    assert.equal(message.data.client_id, PURCHASE.client_id);
    assert.equal(message.data.event_name, 'purchase');
    assert.equal(message.data.transaction_id, 'T-100045');
  });

  test('exclude mode still uses an excluded time field for timestamp_micros', async () => {
    const message = sentMessage(await publish(EVENTS[4], {
      fieldMode: 'exclude', excludeFields: [{ key: 'event_timestamp' }],
    }));
    assert.equal(message.data.event_timestamp, undefined);
    assert.equal(message.data.timestamp_micros, 1763801300456000);
  });

  test('custom fields are added, dots nest them, and empty values are skipped', async () => {
    const message = sentMessage(await publish(PAGE_VIEW, {
      customFields: [
        { name: 'stream', value: 'web' },
        { name: 'context.site', value: 'shop' },
        { name: 'dropped', value: null },
        { name: 'also_dropped', value: undefined },
        { name: 'page_title', value: 'Overridden' },
      ],
    }));
    assert.equal(message.data.stream, 'web');
    assert.deepEqual(message.data.context, { site: 'shop' });
    assert.ok(!('dropped' in message.data));
    assert.ok(!('also_dropped' in message.data));
    assert.equal(message.data.page_title, 'Overridden');
  });

  test('null values in the event data are skipped, also nested ones', async () => {
    const message = sentMessage(await publish({
      client_id: '1.2', event_name: 'x', user_id: null, nested: { a: null, b: 1 }, list: [null, 1],
    }));
    assert.ok(!('user_id' in message.data));
    assert.deepEqual(message.data.nested, { b: 1 });
    assert.deepEqual(message.data.list, [null, 1]);
  });
});

describe('event id and event time', () => {
  test('the event own event_id is kept', async () => {
    const message = sentMessage(await publish({ ...PAGE_VIEW, event_id: 'evt-77' }));
    assert.equal(message.data.event_id, 'evt-77');
  });

  test('a derived event_id has no random part: the same event data gives the same id', async () => {
    const first = sentMessage(await publish(PAGE_VIEW)).data.event_id;
    const again = sentMessage(await publish(PAGE_VIEW, {}, { clock: () => NOW_MS + 250 })).data.event_id;
    assert.match(first, /^gs-[0-9a-f]{32}$/);
    assert.equal(again, first, 'page id + request count identify the hit; the time of publishing does not count');
  });

  test('a derived event_id differs when any identifying field differs', async () => {
    const variants = [
      PAGE_VIEW,
      { ...PAGE_VIEW, client_id: '1768696203.1712345679' },
      { ...PAGE_VIEW, 'x-ga-measurement_id': 'G-OTHER00001' },
      { ...PAGE_VIEW, 'x-ga-page_id': 1940542385 },
      { ...PAGE_VIEW, 'x-ga-request_count': 4 },
      { ...PAGE_VIEW, event_name: 'scroll' },
      { ...PAGE_VIEW, event_timestamp: 1763800000001 },
    ];
    const ids = new Set();
    for (const event of variants) ids.add(sentMessage(await publish(event)).data.event_id);
    assert.equal(ids.size, variants.length);
  });

  test('without page id, the time decides: identical events in one millisecond are one event', async () => {
    const event = { client_id: '1.2', event_name: 'x' };
    const id = async (clock) => sentMessage(await publish(event, {}, { clock })).data.event_id;
    assert.equal(await id(() => NOW_MS), await id(() => NOW_MS));
    assert.notEqual(await id(() => NOW_MS), await id(() => NOW_MS + 1));
    const timed = { ...event, event_timestamp: 1763801300456 };
    const ownTime = async (clock) => sentMessage(await publish(timed, {}, { clock })).data.event_id;
    assert.equal(await ownTime(() => NOW_MS), await ownTime(() => NOW_MS + 1), 'an own time is used, not the clock');
  });

  test('an event_id set as a custom field is published as it is', async () => {
    const message = sentMessage(await publish(PAGE_VIEW, {
      customFields: [{ name: 'event_id', value: 'gs-from-inline' }],
    }));
    assert.equal(message.data.event_id, 'gs-from-inline');
  });

  test('an existing timestamp_micros is kept, also when it arrives as a string', async () => {
    const message = sentMessage(await publish({ ...PAGE_VIEW, timestamp_micros: '1763800154000123' }));
    assert.equal(message.data.timestamp_micros, 1763800154000123);
  });

  test('millisecond fields give timestamp_micros: event_timestamp, custom_timestamp, gtm.start', async () => {
    assert.equal(sentMessage(await publish(EVENTS[4])).data.timestamp_micros, 1763801300456000);
    assert.equal(sentMessage(await publish(EVENTS[1])).data.timestamp_micros, 1763800611712000);
    assert.equal(sentMessage(await publish(PURCHASE)).data.timestamp_micros, 1763800987123000);
    const asString = { client_id: '1.2', event_name: 'x', event_timestamp: '1763801300456' };
    assert.equal(sentMessage(await publish(asString)).data.timestamp_micros, 1763801300456000);
  });

  test('a nested gtm > start counts as gtm.start, and fractions of a millisecond are cut', async () => {
    const nested = { client_id: '1.2', event_name: 'x', gtm: { start: 1763800987123 } };
    assert.equal(sentMessage(await publish(nested)).data.timestamp_micros, 1763800987123000);
    const fraction = { client_id: '1.2', event_name: 'x', event_timestamp: 1763801300456.9 };
    assert.equal(sentMessage(await publish(fraction)).data.timestamp_micros, 1763801300456000);
  });

  test('without an event time, the current time is used', async () => {
    const message = sentMessage(await publish({ client_id: '1.2', event_name: 'x', event_timestamp: 'junk' }));
    assert.equal(message.data.timestamp_micros, NOW_MS * 1000);
  });

  test('adding the event time can be turned off', async () => {
    const message = sentMessage(await publish(EVENTS[4], { addEventTime: false }));
    assert.ok(!('timestamp_micros' in message.data));
    assert.equal(message.data.event_timestamp, 1763801300456);
  });
});

describe('locational endpoint and permissions', () => {
  function withUrls(urls) {
    const permissions = structuredClone(TAG.permissions);
    permissions.send_http.urls = urls;
    return { ...TAG, permissions };
  }

  test('a region publishes through REGION-pubsub.googleapis.com once the permission allows it', async () => {
    const tag = withUrls(['https://pubsub.googleapis.com/*', 'https://europe-west1-pubsub.googleapis.com/*']);
    const run = await runTag(tag, { data: { ...BASE, endpointRegion: 'europe-west1' }, eventData: PAGE_VIEW,
      http: accepted });
    assert.equal(run.outcome, 'success');
    assert.equal(run.requests[0].url,
      'https://europe-west1-pubsub.googleapis.com/v1/projects/my-project/topics/ga4-stitch-raw-events:publish');
  });

  test('a region whose host the permission does not allow fails with a hint, without a request', async () => {
    const run = await publish(PAGE_VIEW, { endpointRegion: 'europe-west1' });
    assert.deepEqual(run.calls, ['failure']);
    assert.equal(run.requests.length, 0);
    const log = failureLog(run);
    assert.equal(log.reason, 'host_not_permitted');
    assert.match(log.hint, /https:\/\/europe-west1-pubsub\.googleapis\.com\/\*/);
  });

  test('a region with characters outside a-z, 0-9 and - is refused', async () => {
    const run = await publish(PAGE_VIEW, { endpointRegion: 'evil.com/x#' });
    assert.equal(failureLog(run).reason, 'invalid_configuration');
    assert.equal(run.requests.length, 0);
  });

  test('each declared permission is needed: without any one of them the tag cannot succeed', async () => {
    const data = { ...BASE, logSuccess: true };
    assert.equal((await runTag(TAG, { data, eventData: PAGE_VIEW, http: accepted })).outcome, 'success');
    for (const name of Object.keys(TAG.permissions)) {
      const permissions = structuredClone(TAG.permissions);
      delete permissions[name];
      const run = await runTag({ ...TAG, permissions }, {
        data, eventData: PAGE_VIEW, http: accepted, settleMs: 200,
      });
      assert.notEqual(run.outcome, 'success', name);
    }
  });
});
