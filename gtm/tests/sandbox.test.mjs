// The stand-in itself: each API behaves as GTM documents it, and permissions bind.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import {
  FAKE_ACCESS_TOKEN,
  TemplateStorage,
  runTag,
  runVariable,
  sandboxSyntaxViolations,
  urlMatchesPattern,
} from './sandbox.mjs';

function permission(publicId, params = {}) {
  const param = Object.entries(params).map(([key, value]) => {
    if (Array.isArray(value)) {
      return { key, value: { type: 2, listItem: value.map((s) => ({ type: 1, string: s })) } };
    }
    if (typeof value === 'boolean') return { key, value: { type: 8, boolean: value } };
    return { key, value: { type: 1, string: value } };
  });
  return { instance: { key: { publicId, versionId: '1' }, param } };
}

function template(code, permissionList) {
  const permissions = {};
  for (const entry of permissionList) {
    const params = {};
    for (const p of entry.instance.param) {
      params[p.key] = p.value.type === 2 ? p.value.listItem.map((i) => i.string)
        : p.value.type === 8 ? p.value.boolean : p.value.string;
    }
    permissions[entry.instance.key.publicId] = params;
  }
  return { path: 'inline.tpl', code, permissions };
}

const HTTP_ANY_GOOGLE = permission('send_http', {
  allowedUrls: 'specific',
  urls: ['https://pubsub.googleapis.com/*'],
});

describe('sendHttpRequest', () => {
  const code = `
    const sendHttpRequest = require('sendHttpRequest');
    return sendHttpRequest(data.url, {method: 'POST', timeout: data.timeout}, 'x')
      .then((r) => ({ok: r.statusCode, body: r.body}), (e) => ({rejected: e.reason}));`;
  const tpl = template(code, [HTTP_ANY_GOOGLE]);
  const url = 'https://pubsub.googleapis.com/v1/projects/p/topics/t:publish';

  test('resolves for an HTTP error status instead of rejecting', async () => {
    for (const statusCode of [302, 400, 403, 404, 500, 503]) {
      const run = await runVariable(tpl, { data: { url }, http: () => ({ statusCode, body: 'e' }) });
      assert.deepEqual(run.value, { ok: statusCode, body: 'e' });
    }
  });

  test('rejects with reason failed on a network failure', async () => {
    const run = await runVariable(tpl, { data: { url }, http: () => 'fail' });
    assert.deepEqual(run.value, { rejected: 'failed' });
  });

  test('rejects with reason timed_out when no answer comes within the timeout', async () => {
    const run = await runVariable(tpl, { data: { url, timeout: 5 }, http: () => 'hang' });
    assert.deepEqual(run.value, { rejected: 'timed_out' });
    assert.equal(run.requests[0].timeout, 5);
  });

  test('uses the documented 15000 ms default timeout', async () => {
    const run = await runVariable(tpl, { data: { url }, http: () => ({ statusCode: 200 }) });
    assert.equal(run.requests[0].timeout, 15000);
  });

  test('throws Permission denied for a URL outside the declared patterns', async () => {
    await assert.rejects(
      runVariable(tpl, { data: { url: 'https://evil.example.com/x' } }),
      /Permission denied: send_http/,
    );
  });

  test('accepts authorization only from getGoogleAuth and never exposes the token', async () => {
    const authCode = `
      const sendHttpRequest = require('sendHttpRequest');
      const getGoogleAuth = require('getGoogleAuth');
      const auth = getGoogleAuth({scopes: ['https://www.googleapis.com/auth/pubsub']});
      return sendHttpRequest(data.url, {authorization: auth}).then((r) => r.statusCode);`;
    const withAuth = template(authCode, [
      HTTP_ANY_GOOGLE,
      permission('use_google_credentials', { allowedScopes: ['https://www.googleapis.com/auth/pubsub'] }),
    ]);
    const run = await runVariable(withAuth, { data: { url }, http: () => ({ statusCode: 200 }) });
    assert.equal(run.value, 200);
    assert.equal(run.requests[0].headers.Authorization, 'Bearer ' + FAKE_ACCESS_TOKEN);
    assert.deepEqual(run.requests[0].authorizationScopes, ['https://www.googleapis.com/auth/pubsub']);
  });
});

describe('permissions', () => {
  test('getGoogleAuth refuses a scope that is not declared', async () => {
    const tpl = template(
      "return require('getGoogleAuth')({scopes: ['https://www.googleapis.com/auth/cloud-platform']});",
      [permission('use_google_credentials', { allowedScopes: ['https://www.googleapis.com/auth/pubsub'] })],
    );
    await assert.rejects(runVariable(tpl), /Permission denied: use_google_credentials/);
  });

  test('getAllEventData needs access to any key; getEventData to the key read', async () => {
    const specific = permission('read_event_data', { eventDataAccess: 'specific', keyPatterns: ['client_id'] });
    const all = template("return require('getAllEventData')();", [specific]);
    await assert.rejects(runVariable(all, { eventData: { client_id: 'a' } }), /read_event_data/);
    const one = template("return require('getEventData')(data.key);", [specific]);
    assert.equal((await runVariable(one, { data: { key: 'client_id' }, eventData: { client_id: 'a' } })).value, 'a');
    await assert.rejects(
      runVariable(one, { data: { key: 'user_id' }, eventData: { user_id: 'u' } }),
      /Permission denied: read_event_data \(user_id\)/,
    );
  });

  test('an API whose permission is not declared throws when called', async () => {
    const tpl = template("require('logToConsole')('x'); return 1;", []);
    await assert.rejects(runVariable(tpl), /Permission denied: logging/);
  });

  test('logging limited to debug writes nothing in production and logs in preview', async () => {
    const tpl = template("require('logToConsole')('hello'); return 1;", [
      permission('logging', { environments: 'debug' }),
    ]);
    assert.deepEqual((await runVariable(tpl)).logs, []);
    const preview = await runVariable(tpl, { containerVersion: { previewMode: true } });
    assert.deepEqual(preview.logs, ['hello']);
  });

  test('queryPermission answers without throwing', async () => {
    const tpl = template(
      "const q = require('queryPermission'); return [q('send_http', data.ok), q('send_http', data.no), q('logging')];",
      [HTTP_ANY_GOOGLE],
    );
    const run = await runVariable(tpl, {
      data: { ok: 'https://pubsub.googleapis.com/v1/x', no: 'https://example.com/' },
    });
    assert.deepEqual(run.value, [true, false, false]);
  });
});

describe('data and storage', () => {
  test('getAllEventData and getEventData return copies', async () => {
    const tpl = template(`
      const getAllEventData = require('getAllEventData');
      const getEventData = require('getEventData');
      getAllEventData().client_id = 'changed';
      getEventData('items')[0].id = 'changed';
      return [getAllEventData().client_id, getEventData('items.0.id')];`,
    [permission('read_event_data', { eventDataAccess: 'any' })]);
    const run = await runVariable(tpl, { eventData: { client_id: 'a', items: [{ id: 'x' }] } });
    assert.deepEqual(run.value, ['a', 'x']);
  });

  test('templateDataStorage stores copies and answers null for a missing key', async () => {
    const storage = new TemplateStorage();
    const tpl = template(`
      const s = require('templateDataStorage');
      const value = {n: 1};
      s.setItemCopy('k', value);
      value.n = 2;
      return [s.getItemCopy('k').n, s.getItemCopy('missing')];`,
    [permission('access_template_storage')]);
    assert.deepEqual((await runVariable(tpl, { storage })).value, [1, null]);
    assert.deepEqual(storage.getItemCopy('k'), { n: 1 });
  });

  test('JSON.parse answers undefined for bad input instead of throwing', async () => {
    const tpl = template("const JSON = require('JSON'); return [JSON.parse('{bad'), JSON.parse('[1]')];", []);
    const run = await runVariable(tpl);
    assert.equal(run.value[0], undefined);
    assert.deepEqual(run.value[1], [1]);
  });
});

describe('the sandboxed dialect', () => {
  test('JavaScript globals are absent: they come only through require', async () => {
    await assert.rejects(runVariable(template('return Math.floor(1.5);', [])), /Math is not defined/);
    await assert.rejects(runVariable(template("return JSON.parse('1');", [])), /JSON is not defined/);
    const ok = template("const Math = require('Math'); return Math.floor(1.5);", []);
    assert.equal((await runVariable(ok)).value, 1);
  });

  test('require knows only the sandbox APIs', async () => {
    await assert.rejects(runVariable(template("require('fs');", [])), /Unknown API: fs/);
  });

  test('unsupported syntax is detected', () => {
    assert.deepEqual(sandboxSyntaxViolations('const a = `x${b}`;'), ['template literal']);
    assert.deepEqual(sandboxSyntaxViolations('const d = new Date();'), ['new']);
    assert.deepEqual(sandboxSyntaxViolations("if (typeof x === 'string') {}"), ['typeof (use getType)']);
    assert.deepEqual(sandboxSyntaxViolations('const b = {...a};'), ['spread / rest']);
    assert.deepEqual(sandboxSyntaxViolations('try { a(); } catch (e) {}'), ['try', 'catch clause']);
    assert.deepEqual(sandboxSyntaxViolations('for (const k in o) {}'), ['for...in / for...of']);
    assert.deepEqual(sandboxSyntaxViolations("p.then(a).catch(b); const s = 'new Date `';"), []);
  });

  test('a tag that throws is reported as an exception, not a success', async () => {
    const tpl = template("require('nope'); data.gtmOnSuccess();", []);
    const run = await runTag(tpl);
    assert.equal(run.outcome, 'exception');
  });
});

describe('URL match patterns', () => {
  test('a host wildcard matches subdomains only, a path wildcard any path', () => {
    assert.ok(urlMatchesPattern('https://pubsub.googleapis.com/v1/p:publish', 'https://pubsub.googleapis.com/*'));
    assert.ok(urlMatchesPattern('https://svc-abc-ew.a.run.app/resolve', 'https://*.run.app/*'));
    assert.ok(!urlMatchesPattern('https://run.app/x', 'https://*.run.app/*'));
    assert.ok(!urlMatchesPattern('https://evilrun.app/x', 'https://*.run.app/*'));
    assert.ok(!urlMatchesPattern('http://pubsub.googleapis.com/v1', 'https://pubsub.googleapis.com/*'));
    assert.ok(!urlMatchesPattern('https://pubsub.googleapis.com.evil.com/v1', 'https://pubsub.googleapis.com/*'));
    assert.ok(!urlMatchesPattern('https://europe-west1-pubsub.googleapis.com/v1', 'https://pubsub.googleapis.com/*'));
  });
});
