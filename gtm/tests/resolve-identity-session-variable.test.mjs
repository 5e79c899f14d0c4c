// The inline-resolution variable exactly as shipped in
// gtm/resolve-identity-session-variable.tpl.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  FAKE_ACCESS_TOKEN, TemplateStorage, fixtureEvents, loadTemplate, runVariable,
} from './sandbox.mjs';

const VARIABLE = loadTemplate(
  new URL('../resolve-identity-session-variable.tpl', import.meta.url).pathname,
);
const EVENTS = fixtureEvents();
const PAGE_VIEW = EVENTS[0];
const LOGIN = EVENTS[1];
const NOW_MS = 1763800000000;
const RUN_URL = 'https://resolve-identity-session-abc123-ew.a.run.app/resolve-identity-session';
const FUNCTION_URL = 'https://europe-west1-my-project.cloudfunctions.net/resolve-identity-session';
const ACCOUNT = 'sgtm-runtime@my-project.iam.gserviceaccount.com';
const ID_TOKEN = 'eyJhbGciOiJSUzI1NiJ9.stand-in-id-token.signature';
const IAM_URL = 'https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/'
  + 'sgtm-runtime%40my-project.iam.gserviceaccount.com:generateIdToken';
const BASE = { endpointUrl: RUN_URL, serviceAccountEmail: ACCOUNT, output: 'object' };

const ANSWER = {
  resolved_user_id: 'cust-000981',
  resolved_ga_session_id: 1763800154,
  session_number: 12,
  identity_source: 'stitched',
  client_id: '1768696203.1712345678',
  event_index: 4,
  is_new_session: false,
};

// A network with the IAM Credentials API and the endpoint; `endpoint` answers the
// endpoint's requests, `iam` the token requests.
function network({ endpoint = () => ({ statusCode: 200, body: JSON.stringify(ANSWER) }),
  iam = () => ({ statusCode: 200, body: JSON.stringify({ token: ID_TOKEN }) }) } = {}) {
  return (request) => (request.url.startsWith('https://iamcredentials.googleapis.com/')
    ? iam(request) : endpoint(request));
}

async function resolve(eventData, data = {}, options = {}) {
  const run = await runVariable(VARIABLE, {
    data: { ...BASE, ...data },
    eventData,
    http: network(),
    clock: () => NOW_MS,
    ...options,
  });
  assert.deepEqual(run.errors, [], 'no unhandled rejection');
  return run;
}

const endpointRequests = (run) => run.requests.filter((r) => !r.url.startsWith('https://iamcredentials'));
const iamRequests = (run) => run.requests.filter((r) => r.url.startsWith('https://iamcredentials'));

function onlyLog(run) {
  assert.equal(run.logs.length, 1, 'exactly one log line');
  return JSON.parse(run.logs[0]);
}

const sentBody = (run) => JSON.parse(endpointRequests(run)[0].body);

describe('the endpoint call', () => {
  test('posts the ids, the event time in milliseconds, the stream, consent and page fields', async () => {
    const run = await resolve(LOGIN);
    const [request] = endpointRequests(run);
    assert.equal(request.url, RUN_URL);
    assert.equal(request.method, 'POST');
    assert.equal(request.headers['Content-Type'], 'application/json');
    const { event_id: eventId, ...rest } = JSON.parse(request.body);
    assert.match(eventId, /^gs-[0-9a-f]{32}$/);
    assert.deepEqual(rest, {
      client_id: 'GA1.1.1768696203.1712345678',
      user_id: 'cust-000981',
      event_timestamp: 1763800611712,
      event_name: 'login',
      measurement_id: 'G-ABCDE12345',
      'x-ga-gcs': 'G111',
      page_location: 'https://shop.example.com/account',
      user_agent: LOGIN.user_agent,
    });
  });

  test('sends page_referrer, and the event own event_id unchanged', async () => {
    const body = sentBody(await resolve({ ...EVENTS[2], event_id: 'evt-77' }));
    assert.equal(body.event_id, 'evt-77');
    assert.equal(body.page_referrer, 'https://shop.example.com/cart');
    assert.equal(body.page_location, EVENTS[2].page_location);
    assert.equal(body.event_name, 'purchase');
  });

  test('sends only what the event has: an anonymous event without time sends no user_id and the current time', async () => {
    const body = sentBody(await resolve({ client_id: '1768696203.1712345678' }));
    assert.deepEqual(Object.keys(body).sort(), ['client_id', 'event_id', 'event_timestamp']);
    assert.equal(body.event_timestamp, NOW_MS);
  });

  test('consent: the consent object and x-ga-gcs are sent as the event has them', async () => {
    const consent = { analytics_storage: 'denied', ad_storage: 'granted', ad_user_data: false };
    const body = sentBody(await resolve({ ...EVENTS[3], consent }));
    assert.equal(body['x-ga-gcs'], 'G100');
    assert.deepEqual(body.consent, consent);
    const notAnObject = sentBody(await resolve({ ...EVENTS[3], consent: 'denied' }));
    assert.ok(!('consent' in notAnObject));
  });

  test('measurement_id comes from x-ga-measurement_id, else from measurement_id', async () => {
    assert.equal(sentBody(await resolve(PAGE_VIEW)).measurement_id, 'G-ABCDE12345');
    const plain = { client_id: '1.2', event_name: 'x', measurement_id: 'G-PLAIN00001' };
    assert.equal(sentBody(await resolve(plain)).measurement_id, 'G-PLAIN00001');
  });

  test('a link_token field is passed on; a logout event sends its name', async () => {
    const body = sentBody(await resolve({ ...EVENTS[4], link_token: '1.abc.1763800911.n.t' }));
    assert.equal(body.link_token, '1.abc.1763800911.n.t');
    assert.equal(body.event_name, 'logout');
  });

  test('fields outside the contract are not sent (no IP, no PII beyond user_id)', async () => {
    const body = sentBody(await resolve(EVENTS[2]));
    for (const field of ['ip_override', 'user_data', 'items', 'ga_session_id', 'transaction_id']) {
      assert.ok(!(field in body), field);
    }
  });

  test('event time comes from timestamp_micros, event_timestamp, custom_timestamp or gtm.start', async () => {
    const cases = [
      [{ timestamp_micros: 1763800154123456 }, 1763800154123],
      [{ timestamp_micros: '1763800154123456' }, 1763800154123],
      [{ event_timestamp: 1763801300456 }, 1763801300456],
      [{ custom_timestamp: '1763800611712' }, 1763800611712],
      [{ gtm: { start: 1763800987123 } }, 1763800987123],
      [{ event_timestamp: 'junk' }, NOW_MS],
    ];
    for (const [fields, expected] of cases) {
      const run = await resolve({ client_id: '1.2', event_name: 'x', ...fields });
      assert.equal(JSON.parse(endpointRequests(run)[0].body).event_timestamp, expected, JSON.stringify(fields));
    }
  });

  test('answers with the resolved ids, marked source resolved, through a Promise', async () => {
    const run = await resolve(PAGE_VIEW);
    assert.equal(run.async, true);
    const { event_id: eventId, event_timestamp: eventTimestamp, ...rest } = run.value;
    assert.deepEqual(rest, { source: 'resolved', ...ANSWER });
    assert.equal(eventId, sentBody(run).event_id);
    assert.equal(eventTimestamp, NOW_MS);
  });

  test('each output option returns that field', async () => {
    const expected = {
      resolved_user_id: 'cust-000981',
      resolved_ga_session_id: 1763800154,
      session_number: 12,
      source: 'resolved',
      identity_source: 'stitched',
      client_id: '1768696203.1712345678',
      event_index: 4,
      is_new_session: false,
      reason: null,
      event_timestamp: NOW_MS,
    };
    for (const [output, value] of Object.entries(expected)) {
      assert.equal((await resolve(PAGE_VIEW, { output })).value, value, output);
    }
    const run = await resolve(PAGE_VIEW, { output: 'event_id' });
    assert.equal(run.value, sentBody(run).event_id);
  });

  test('the output choices offered are exactly the fields of the result', async () => {
    const select = VARIABLE.parameters.find((parameter) => parameter.name === 'output');
    const offered = select.selectItems.map((item) => item.value).filter((value) => value !== 'object');
    const run = await resolve(PAGE_VIEW, {}, { http: network({ endpoint: () => 'fail' }) });
    assert.deepEqual(offered.sort(), Object.keys(run.value).sort());
  });

  test('a null session from the endpoint (consent denied) is a valid answer', async () => {
    const body = JSON.stringify({ ...ANSWER, resolved_user_id: null, resolved_ga_session_id: null,
      session_number: null, identity_source: 'anonymous' });
    const run = await resolve(PAGE_VIEW, {}, { http: network({ endpoint: () => ({ statusCode: 200, body }) }) });
    assert.equal(run.value.source, 'resolved');
    assert.equal(run.value.resolved_ga_session_id, null);
  });
});

describe('ID token authentication', () => {
  test('mints an ID token through the IAM Credentials API with the iam scope', async () => {
    const run = await resolve(PAGE_VIEW);
    const [mint] = iamRequests(run);
    assert.equal(mint.url, IAM_URL);
    assert.equal(mint.method, 'POST');
    assert.deepEqual(mint.authorizationScopes, ['https://www.googleapis.com/auth/iam']);
    assert.deepEqual(JSON.parse(mint.body), {
      audience: 'https://resolve-identity-session-abc123-ew.a.run.app',
      includeEmail: true,
    });
    assert.equal(endpointRequests(run)[0].headers.Authorization, 'Bearer ' + ID_TOKEN);
  });

  test('the audience is the function URL for cloudfunctions.net, or the configured one', async () => {
    const fn = await resolve(PAGE_VIEW, { endpointUrl: FUNCTION_URL + '?x=1' });
    assert.equal(JSON.parse(iamRequests(fn)[0].body).audience, FUNCTION_URL);
    const custom = await resolve(PAGE_VIEW, { audience: 'https://stitch.example.com' });
    assert.equal(JSON.parse(iamRequests(custom)[0].body).audience, 'https://stitch.example.com');
  });

  test('the token is reused until shortly before it expires', async () => {
    const storage = new TemplateStorage();
    let now = NOW_MS;
    const run = (event) => resolve(event, {}, { storage, clock: () => now });
    assert.equal(iamRequests(await run(PAGE_VIEW)).length, 1);
    now += 10 * 60 * 1000;
    const second = await run(LOGIN);
    assert.equal(iamRequests(second).length, 0);
    assert.equal(endpointRequests(second)[0].headers.Authorization, 'Bearer ' + ID_TOKEN);
    now += 45 * 60 * 1000;
    assert.equal(iamRequests(await run(EVENTS[4])).length, 1);
  });

  test('a 401 or 403 from the endpoint drops the cached token', async () => {
    const storage = new TemplateStorage();
    const refused = network({ endpoint: () => ({ statusCode: 403, body: 'Forbidden' }) });
    const first = await resolve(PAGE_VIEW, {}, { storage, http: refused });
    assert.equal(first.value.reason, 'http_403');
    const second = await resolve(LOGIN, {}, { storage });
    assert.equal(iamRequests(second).length, 1);
    assert.equal(second.value.source, 'resolved');
  });

  test('a refused token request falls back without calling the endpoint', async () => {
    const iam = () => ({ statusCode: 403, body: JSON.stringify({ error: {
      code: 403, status: 'PERMISSION_DENIED', message: "Permission 'iam.serviceAccounts.getOpenIdToken' denied" } }) });
    const run = await resolve(LOGIN, {}, { http: network({ iam }) });
    assert.equal(endpointRequests(run).length, 0);
    assert.equal(run.value.source, 'fallback');
    assert.equal(run.value.reason, 'id_token_http_403');
    const log = onlyLog(run);
    assert.equal(log.status_code, 403);
    assert.match(log.error, /^PERMISSION_DENIED /);
  });

  test('a token request that times out falls back with reason id_token_timed_out', async () => {
    const run = await resolve(LOGIN, { timeoutMs: '10' }, { http: network({ iam: () => 'hang' }) });
    assert.equal(run.value.reason, 'id_token_timed_out');
  });

  test('without a service account it falls back and asks for none', async () => {
    const run = await resolve(LOGIN, { serviceAccountEmail: '' });
    assert.equal(run.requests.length, 0);
    assert.equal(run.value.reason, 'missing_service_account');
  });

  test('the token request and the endpoint call share one timeout budget', async () => {
    let now = NOW_MS;
    const iam = () => {
      now += 400;
      return { statusCode: 200, body: JSON.stringify({ token: ID_TOKEN }) };
    };
    const run = await resolve(PAGE_VIEW, { timeoutMs: '1000' }, { clock: () => now, http: network({ iam }) });
    assert.equal(iamRequests(run)[0].timeout, 1000);
    assert.equal(endpointRequests(run)[0].timeout, 600);
  });
});

describe('other authentication modes', () => {
  test('shared secret: sends the secret in the configured header and mints no token', async () => {
    const run = await resolve(LOGIN, {
      authMode: 'shared_secret', secretHeaderName: 'X-Custom-Key', secretValue: 's3cr3t-value',
    });
    assert.equal(iamRequests(run).length, 0);
    assert.equal(run.googleAuthCalls.length, 0);
    const [request] = endpointRequests(run);
    assert.equal(request.headers['X-Custom-Key'], 's3cr3t-value');
    assert.equal(request.headers.Authorization, undefined);
  });

  test('shared secret: the default header is X-Ga4-Stitch-Key', async () => {
    const run = await resolve(LOGIN, { authMode: 'shared_secret', secretValue: 'v' });
    assert.equal(endpointRequests(run)[0].headers['X-Ga4-Stitch-Key'], 'v');
  });

  test('none: no credentials at all', async () => {
    const run = await resolve(LOGIN, { authMode: 'none' });
    assert.equal(run.requests.length, 1);
    assert.deepEqual(Object.keys(run.requests[0].headers), ['Content-Type']);
  });
});

describe('fallback', () => {
  const fallbackFor = (reason, run) => ({
    source: 'fallback',
    reason,
    resolved_user_id: 'cust-000981',
    resolved_ga_session_id: 1763800154,
    session_number: 12,
    identity_source: 'incoming',
    client_id: 'GA1.1.1768696203.1712345678',
    event_index: null,
    is_new_session: null,
    event_id: sentBody(run).event_id,
    event_timestamp: 1763800611712,
  });

  test('a 400 falls back to the incoming ids and logs the reason the endpoint gave', async () => {
    const endpoint = () => ({ statusCode: 400, body: JSON.stringify({ reason: 'event_timestamp too old' }) });
    const run = await resolve(LOGIN, {}, { http: network({ endpoint }) });
    assert.deepEqual(run.value, fallbackFor('http_400', run));
    const log = onlyLog(run);
    assert.equal(log.severity, 'WARNING');
    assert.equal(log.status_code, 400);
    assert.equal(log.error, 'event_timestamp too old');
    assert.equal(log.endpoint, RUN_URL);
  });

  test('a 5xx falls back', async () => {
    for (const statusCode of [500, 503]) {
      const run = await resolve(LOGIN, {}, { http: network({ endpoint: () => ({ statusCode, body: '' }) }) });
      assert.deepEqual(run.value, fallbackFor('http_' + statusCode, run));
    }
  });

  test('a timeout falls back with reason timed_out, within the configured time', async () => {
    const started = Date.now();
    const run = await resolve(LOGIN, { timeoutMs: '30', authMode: 'none' },
      { http: network({ endpoint: () => 'hang' }) });
    assert.deepEqual(run.value, fallbackFor('timed_out', run));
    assert.equal(run.requests[0].timeout, 30);
    assert.ok(Date.now() - started < 1000);
  });

  test('a network failure falls back with reason request_failed', async () => {
    const run = await resolve(LOGIN, {}, { http: network({ endpoint: () => 'fail' }) });
    assert.deepEqual(run.value, fallbackFor('request_failed', run));
  });

  test('an answer that is not the contract falls back with reason bad_response', async () => {
    for (const body of ['not json', '[]', JSON.stringify({ session_number: 1 }),
      JSON.stringify({ resolved_ga_session_id: '1763800154' })]) {
      const run = await resolve(LOGIN, {}, { http: network({ endpoint: () => ({ statusCode: 200, body }) }) });
      assert.equal(run.value.reason, 'bad_response', body);
    }
  });

  test('an anonymous event falls back to anonymous ids', async () => {
    const run = await resolve(PAGE_VIEW, {}, { http: network({ endpoint: () => 'fail' }) });
    assert.equal(run.value.resolved_user_id, null);
    assert.equal(run.value.identity_source, 'anonymous');
    assert.equal(run.value.resolved_ga_session_id, 1763800154);
  });

  test('a missing client_id falls back at once, without any request', async () => {
    for (const event of [EVENTS[5], { event_name: 'x' }]) {
      const run = await resolve(event);
      assert.equal(run.requests.length, 0);
      assert.equal(run.async, false);
      assert.equal(run.value.reason, 'missing_client_id');
      assert.equal(run.value.client_id, null);
      assert.equal(run.value.event_id, null);
    }
  });

  test('an endpoint outside the declared hosts falls back with a hint instead of throwing', async () => {
    const run = await resolve(LOGIN, { endpointUrl: 'https://stitch.example.com/resolve' });
    assert.equal(run.requests.length, 0);
    assert.equal(run.value.reason, 'endpoint_not_permitted');
    assert.match(run.value.event_id, /^gs-[0-9a-f]{32}$/, 'the event id is there for the tag even so');
    assert.match(onlyLog(run).hint, /Sends HTTP requests/);
  });

  test('a non-HTTPS endpoint falls back', async () => {
    const run = await resolve(LOGIN, { endpointUrl: 'http://localhost:8080/' });
    assert.equal(run.value.reason, 'invalid_endpoint');
  });

  test('logs hold no token, no secret, no user id and no full client id', async () => {
    const endpoint = () => ({ statusCode: 500, body: '' });
    const runs = [
      await resolve(EVENTS[2], {}, { http: network({ endpoint }) }),
      await resolve(EVENTS[2], { authMode: 'shared_secret', secretValue: 's3cr3t' }, { http: network({ endpoint }) }),
    ];
    const lines = runs.flatMap((run) => run.logs).join('\n');
    for (const secret of [FAKE_ACCESS_TOKEN, ID_TOKEN, 's3cr3t', EVENTS[2].user_id, EVENTS[2].client_id]) {
      assert.ok(!lines.includes(secret), 'log must not contain ' + secret);
    }
    assert.equal(JSON.parse(runs[0].logs[0]).client_id, 'ZDoa...(55)');
  });
});

describe('one call per event', () => {
  test('later reads for the same event reuse the result, for any output field', async () => {
    const storage = new TemplateStorage();
    const first = await resolve(LOGIN, { output: 'resolved_user_id' }, { storage });
    const second = await resolve(LOGIN, { output: 'resolved_ga_session_id' }, { storage });
    const third = await resolve(LOGIN, { output: 'session_number' }, { storage });
    assert.equal(endpointRequests(first).length, 1);
    assert.equal(second.requests.length + third.requests.length, 0);
    assert.equal(second.async, false);
    assert.deepEqual([first.value, second.value, third.value], ['cust-000981', 1763800154, 12]);
  });

  test('a fallback is reused as well, so a slow endpoint delays the event only once', async () => {
    const storage = new TemplateStorage();
    const http = network({ endpoint: () => 'hang' });
    const first = await resolve(LOGIN, { timeoutMs: '10' }, { storage, http });
    const second = await resolve(LOGIN, { timeoutMs: '10' }, { storage, http });
    assert.equal(first.value.reason, 'timed_out');
    assert.equal(second.requests.length, 0);
    assert.deepEqual(second.value, first.value);
  });

  test('another event, or the same one after 15 seconds, calls again', async () => {
    const storage = new TemplateStorage();
    let now = NOW_MS;
    assert.equal(endpointRequests(await resolve(LOGIN, {}, { storage, clock: () => now })).length, 1);
    assert.equal(endpointRequests(await resolve(EVENTS[4], {}, { storage, clock: () => now })).length, 1);
    now += 15001;
    assert.equal(endpointRequests(await resolve(LOGIN, {}, { storage, clock: () => now })).length, 1);
  });

  test('reads running at the same time send one event time for an event without its own', async () => {
    const storage = new TemplateStorage();
    let now = NOW_MS;
    const pending = [];
    const endpoint = () => new Promise((answer) => pending.push(answer));
    const http = network({ endpoint });
    const first = resolve(PAGE_VIEW, {}, { storage, http, clock: () => now });
    now += 7;
    const second = resolve(PAGE_VIEW, {}, { storage, http, clock: () => now });
    while (pending.length < 2) await new Promise((r) => setImmediate(r));
    pending.forEach((answer) => answer({ statusCode: 200, body: JSON.stringify(ANSWER) }));
    const runs = await Promise.all([first, second]);
    const times = runs.map((run) => JSON.parse(endpointRequests(run)[0].body).event_timestamp);
    assert.deepEqual(times, [NOW_MS, NOW_MS]);
    const ids = runs.map((run) => JSON.parse(endpointRequests(run)[0].body).event_id);
    assert.equal(ids[0], ids[1]);
  });
});

describe('permissions', () => {
  test('runs with access to the declared event data keys only', async () => {
    assert.equal(VARIABLE.permissions.read_event_data.eventDataAccess, 'specific');
    const run = await resolve({ ...EVENTS[2], event_id: 'e', timestamp_micros: 1, gtm: { start: 1 } });
    assert.equal(run.value.source, 'resolved');
  });

  test('every event data key read is declared, and every declared key is read', async () => {
    // Without x-ga-measurement_id and without an own time, every key is read.
    const { 'x-ga-measurement_id': stream, ...eventData } = PAGE_VIEW;
    assert.ok(stream);
    const run = await resolve(eventData);
    assert.equal(run.value.source, 'resolved');
    const declared = VARIABLE.permissions.read_event_data.keyPatterns;
    assert.deepEqual([...new Set(run.eventDataReads)].sort(), [...declared].sort());
    for (const key of declared) {
      const permissions = structuredClone(VARIABLE.permissions);
      permissions.read_event_data.keyPatterns = declared.filter((k) => k !== key);
      await assert.rejects(
        runVariable({ ...VARIABLE, permissions }, { data: BASE, eventData, http: network() }),
        /Permission denied: read_event_data/, key,
      );
    }
  });

  test('each declared permission is needed: without any one of them it cannot work', async () => {
    const scenarios = [
      network(),
      network({ endpoint: () => ({ statusCode: 500, body: '' }) }),
    ];
    const outcomes = async (permissions) => {
      const results = [];
      for (const http of scenarios) {
        results.push(await runVariable({ ...VARIABLE, permissions }, {
          data: BASE, eventData: LOGIN, http, storage: new TemplateStorage(), clock: () => NOW_MS,
        }).then(
          (run) => (run.errors.length ? String(run.errors[0]) : run.value.source + ':' + run.logs.length),
          (error) => String(error),
        ));
      }
      return results;
    };
    assert.deepEqual(await outcomes(VARIABLE.permissions), ['resolved:0', 'fallback:1']);
    for (const name of Object.keys(VARIABLE.permissions)) {
      const permissions = structuredClone(VARIABLE.permissions);
      delete permissions[name];
      const [success, failure] = await outcomes(permissions);
      assert.ok(success !== 'resolved:0' || /Permission denied/.test(failure), name + ': ' + success + ', ' + failure);
    }
  });
});
