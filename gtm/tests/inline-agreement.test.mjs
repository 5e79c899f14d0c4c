// The Pub/Sub tag and the inline variable, run on the same event data, must name the
// event alike: the id the tag publishes is the event_id the variable sends to the
// endpoint, and the tag's timestamp_micros is the variable's event_timestamp times 1000.
// Otherwise the endpoint and the pipeline record one event twice (event indexes grow
// twice as fast) or at two times.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { TemplateStorage, fixtureEvents, loadTemplate, runTag, runVariable } from './sandbox.mjs';

const TAG = loadTemplate(new URL('../pubsub-publish-tag.tpl', import.meta.url).pathname);
const VARIABLE = loadTemplate(
  new URL('../resolve-identity-session-variable.tpl', import.meta.url).pathname,
);
const EVENTS = fixtureEvents();
const [PAGE_VIEW, LOGIN, PURCHASE] = EVENTS;
const LOGOUT = EVENTS[4];
const NOW_MS = 1763800000000;
// The tag runs after the variable has answered: a later clock.
const TAG_DELAY_MS = 40;
const RUN_URL = 'https://resolve-identity-session-abc123-ew.a.run.app/';
const ANSWER = JSON.stringify({
  resolved_user_id: null, resolved_ga_session_id: 1763800154, session_number: 1,
  identity_source: 'anonymous', client_id: '1.2', event_index: 1, is_new_session: true,
});

async function published(eventData, { clock = NOW_MS + TAG_DELAY_MS, customFields = [] } = {}) {
  const run = await runTag(TAG, {
    data: { projectId: 'p', topicId: 'ga4-stitch-raw-events', addEventTime: true, customFields },
    eventData,
    http: () => ({ statusCode: 200, body: '{"messageIds":["1"]}' }),
    clock: () => clock,
  });
  assert.equal(run.outcome, 'success');
  const [message] = JSON.parse(run.requests[0].body).messages;
  return JSON.parse(Buffer.from(message.data, 'base64').toString('utf8'));
}

async function inline(eventData, { clock = NOW_MS } = {}) {
  const run = await runVariable(VARIABLE, {
    data: { endpointUrl: RUN_URL, authMode: 'none', output: 'object' },
    eventData,
    http: () => ({ statusCode: 200, body: ANSWER }),
    storage: new TemplateStorage(),
    clock: () => clock,
  });
  assert.equal(run.requests.length, 1);
  return { sent: JSON.parse(run.requests[0].body), value: run.value };
}

async function assertSameEvent(eventData, expectedMs) {
  const message = await published(eventData);
  const { sent, value } = await inline(eventData);
  assert.equal(sent.event_id, message.event_id, 'event id');
  assert.equal(value.event_id, message.event_id, 'event id in the output');
  assert.equal(sent.event_timestamp, expectedMs, 'variable event time');
  assert.equal(Math.floor(message.timestamp_micros / 1000), expectedMs, 'tag event time');
  return { message, sent };
}

describe('one event id and one event time for both paths', () => {
  test('with an own time and no page id (login, custom_timestamp)', async () => {
    const { message, sent } = await assertSameEvent(LOGIN, 1763800611712);
    assert.equal(message.timestamp_micros, sent.event_timestamp * 1000);
    assert.match(sent.event_id, /^gs-[0-9a-f]{32}$/);
  });

  test('the derived id is the one documented in gtm/README.md for the login event', async () => {
    assert.equal((await published(LOGIN)).event_id, 'gs-72a5a276354c126f57014b435f96747c');
  });

  test('with an own time from event_timestamp (logout), and from a nested gtm > start', async () => {
    await assertSameEvent(LOGOUT, 1763801300456);
    await assertSameEvent({ client_id: '1.2', event_name: 'x', gtm: { start: 1763800987123 } }, 1763800987123);
  });

  test('with page id and request count and an own time', async () => {
    await assertSameEvent({ ...PAGE_VIEW, event_timestamp: 1763800154321 }, 1763800154321);
  });

  test('timestamp_micros: the same millisecond (the tag keeps the microseconds)', async () => {
    const event = { ...LOGIN, timestamp_micros: '1763800154123456' };
    const { message } = await assertSameEvent(event, 1763800154123);
    assert.equal(message.timestamp_micros, 1763800154123456);
  });

  test('a fractional millisecond time is cut alike by both', async () => {
    await assertSameEvent({ ...LOGIN, custom_timestamp: 1763800611712.8 }, 1763800611712);
  });

  test('the event own event_id is kept by both', async () => {
    for (const event of [{ ...PAGE_VIEW, event_id: 'evt-1' }, { ...LOGIN, event_id: 'evt-2' }]) {
      const message = await published(event);
      const { sent, value } = await inline(event);
      assert.equal(message.event_id, event.event_id);
      assert.equal(sent.event_id, event.event_id);
      assert.equal(value.event_id, event.event_id);
    }
  });

  test('page id without an own time: the same id although the two run at different times', async () => {
    const message = await published(PAGE_VIEW, { clock: NOW_MS + 900 });
    const { sent } = await inline(PAGE_VIEW, { clock: NOW_MS });
    assert.equal(sent.event_id, message.event_id);
    // The times are each template's clock; the pipeline finds the id recorded inline and
    // gives the inline answer, so the later time is never used.
    assert.equal(sent.event_timestamp, NOW_MS);
    assert.equal(message.timestamp_micros, (NOW_MS + 900) * 1000);
  });

  test('each fixture event with a time or a page id gets one id across the paths', async () => {
    for (const event of [PAGE_VIEW, LOGIN, LOGOUT]) {
      const message = await published(event);
      const { sent } = await inline(event);
      assert.equal(sent.event_id, message.event_id, event.event_name);
    }
  });

  test('different hits of one page get different ids on both paths', async () => {
    const next = { ...PAGE_VIEW, 'x-ga-request_count': 4 };
    const ids = [(await published(PAGE_VIEW)).event_id, (await published(next)).event_id,
      (await inline(PAGE_VIEW)).sent.event_id, (await inline(next)).sent.event_id];
    assert.equal(ids[0], ids[2]);
    assert.equal(ids[1], ids[3]);
    assert.notEqual(ids[0], ids[1]);
  });

  test('the stream is part of the id: one hit sent to two GA4 streams is two events', async () => {
    const other = { ...PAGE_VIEW, 'x-ga-measurement_id': 'G-OTHER00001' };
    assert.notEqual((await published(PAGE_VIEW)).event_id, (await published(other)).event_id);
    assert.notEqual((await inline(PAGE_VIEW)).sent.event_id, (await inline(other)).sent.event_id);
  });
});

describe('when the event data alone cannot decide', () => {
  const anonymous = { client_id: '1.2', event_name: 'x' };

  test('no time and no page id: each path uses its own clock, so they agree only in one millisecond', async () => {
    const same = await published(anonymous, { clock: NOW_MS });
    assert.equal((await inline(anonymous)).sent.event_id, same.event_id);
    const later = await published(anonymous, { clock: NOW_MS + TAG_DELAY_MS });
    assert.notEqual((await inline(anonymous)).sent.event_id, later.event_id);
  });

  test('publishing the variable event_id and event_timestamp as custom fields makes them agree', async () => {
    for (const event of [anonymous, PURCHASE]) {
      const { sent, value } = await inline(event);
      const message = await published(event, {
        customFields: [
          { name: 'event_id', value: value.event_id },
          { name: 'event_timestamp', value: String(value.event_timestamp) },
        ],
      });
      assert.equal(message.event_id, sent.event_id);
      assert.equal(message.timestamp_micros, sent.event_timestamp * 1000);
    }
  });

  test('a flat "gtm.start" key is read by the tag only (getEventData reads gtm > start)', async () => {
    const message = await published(PURCHASE);
    const { sent } = await inline(PURCHASE);
    assert.equal(message.timestamp_micros, 1763800987123000);
    assert.equal(sent.event_timestamp, NOW_MS);
    assert.notEqual(sent.event_id, message.event_id);
  });
});
