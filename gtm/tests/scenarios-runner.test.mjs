// The scenario runner itself (scenarios.mjs): the ___TESTS___ parser, the matchers, and
// that every way a scenario can go wrong fails it.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { loadTemplate } from './sandbox.mjs';
import { MATCHER_NAMES, deepEqual, makeAssertThat, parseTestsSection, runScenario } from './scenarios.mjs';

const TAG = loadTemplate(new URL('../pubsub-publish-tag.tpl', import.meta.url).pathname);
const VARIABLE = loadTemplate(new URL('../resolve-identity-session-variable.tpl', import.meta.url).pathname);

// A small tag template with the permissions given.
function tinyTag(code, permissions = {}) {
  return { path: '/tmp/tiny-tag.tpl', info: { type: 'TAG' }, code, permissions };
}

const scenario = (code, name = 'a scenario') => ({ name, code });

describe('parseTestsSection', () => {
  test('an empty Tests tab', () => {
    assert.deepEqual(parseTestsSection('scenarios: []'), { scenarios: [], setup: '' });
  });

  test('scenarios and setup as the editor exports them', () => {
    const text = [
      'scenarios:',
      '- name: First one',
      '  code: |-',
      '    const a = 1;',
      '',
      '    runCode({});',
      "- name: 'It''s quoted: with a colon'",
      '  code: |-',
      '    fail();',
      'setup: |-',
      '  const mockData = {};',
      '',
    ].join('\n');
    assert.deepEqual(parseTestsSection(text), {
      scenarios: [
        { name: 'First one', code: 'const a = 1;\n\nrunCode({});' },
        { name: "It's quoted: with a colon", code: 'fail();' },
      ],
      setup: 'const mockData = {};',
    });
  });

  test('list items indented under the key, code before name, and a clipped block', () => {
    const text = [
      'scenarios:',
      '  - code: |',
      '      let x = "- not an item";',
      '    name: "Double \\"quoted\\""',
      'setup: |-',
      '  let y;',
    ].join('\n');
    assert.deepEqual(parseTestsSection(text).scenarios, [
      { name: 'Double "quoted"', code: 'let x = "- not an item";\n' },
    ]);
  });

  test('refuses what is not this shape', () => {
    for (const text of [
      'tests: []',
      'scenarios: {}',
      'scenarios:\n- name: x\n  code: "runCode({});\n    fail();"',
      'scenarios:\n- name: x\n  code: >-\n    folded',
      'scenarios:\n- name: x\n  code: |-\n    a\n  other: 1',
      'scenarios:\n- name: x',
      'setup: |-\n  a\nsetup: |-\n  b',
    ]) {
      assert.throws(() => parseTestsSection(text), undefined, text);
    }
  });
});

describe('assertThat', () => {
  const assertThat = makeAssertThat();
  const cases = [
    ['isUndefined', undefined, [], null],
    ['isDefined', null, [], undefined],
    ['isNull', null, [], 0],
    ['isNotNull', 0, [], null],
    ['isTrue', true, [], 1],
    ['isFalse', false, [], 0],
    ['isTruthy', 'x', [], ''],
    ['isFalsy', '', [], 'x'],
    ['isNaN', NaN, [], 1],
    ['isNotNaN', 1, [], NaN],
    ['isInfinity', -Infinity, [], 1e308],
    ['isNotInfinity', 1e308, [], Infinity],
    ['isEqualTo', { a: [1, { b: null }] }, [{ a: [1, { b: null }] }], { a: [1, { b: undefined }] }],
    ['isNotEqualTo', { a: 1 }, [{ a: 2 }], { a: 2 }],
    ['isStrictlyEqualTo', 'a', ['a'], { a: 1 }],
    ['isNotStrictlyEqualTo', 1, ['1'], '1'],
    ['isAnyOf', 2, [1, 2], 3],
    ['isNoneOf', 3, [1, 2], 2],
    ['isGreaterThan', 2, [1], 1],
    ['isGreaterThanOrEqualTo', 1, [1], 0],
    ['isLessThan', 1, [2], 2],
    ['isAtMost', 2, [2], 3],
    ['contains', 'a log line', ['log', 'line'], 'a token'],
    ['contains', [1, { a: 2 }], [{ a: 2 }], [1]],
    ['doesNotContain', 'a log line', ['token', 'secret'], 'a secret'],
    ['containsExactly', [2, 1], [1, 2], [1, 2, 2]],
    ['doesNotContainExactly', [1], [1, 2], [2, 1]],
    ['hasLength', [1, 2], [2], 'abc'],
    ['isEmpty', [], [], {}],
    ['isNotEmpty', 'a', [], ''],
    ['isArray', [], [], {}],
    ['isBoolean', false, [], 0],
    ['isFunction', () => 1, [], {}],
    ['isNumber', 0, [], '0'],
    ['isObject', {}, [], []],
    ['isString', '', [], 1],
  ];

  test('every matcher is covered here', () => {
    assert.deepEqual(new Set(cases.map(([name]) => name)), new Set(MATCHER_NAMES));
  });

  for (const [name, passing, args, failing] of cases) {
    test(name, () => {
      assertThat(passing)[name](...args);
      if (name === 'isEmpty') {
        // {} has no keys: empty. A failing value for isEmpty:
        assert.throws(() => assertThat([1])[name](...args), /expected \[1\] to be empty/);
        return;
      }
      assert.throws(() => assertThat(failing, 'the subject')[name](...args), /^ScenarioAssertionError: the subject: expected/);
    });
  }

  test('matchers chain', () => {
    assertThat('abc').isString().hasLength(3).contains('b');
  });

  test('deepEqual holds across V8 contexts and tells arrays from objects', () => {
    assert.ok(deepEqual(JSON.parse('{"a":[1]}'), { a: [1] }));
    assert.ok(!deepEqual([], {}));
    assert.ok(!deepEqual({ a: undefined }, {}));
  });
});

describe('runScenario', () => {
  const tag = tinyTag("const send = require('sendHttpRequest');\n"
    + "send(data.url, {method: 'POST'}).then((r) => r.statusCode === 200 ? data.gtmOnSuccess() : data.gtmOnFailure());",
  { send_http: { allowedUrls: 'specific', urls: ['https://ok.example.com/*'] } });
  const setup = [
    'const answers = [];',
    "mock('sendHttpRequest', (url) => ({then: (ok) => ok({statusCode: url.indexOf('/200') > 0 ? 200 : 500})}));",
  ].join('\n');

  test('a scenario whose assertions hold passes', async () => {
    await runScenario(tag, scenario([
      "runCode({url: 'https://ok.example.com/200'});",
      "assertApi('gtmOnSuccess').wasCalled();",
      "assertApi('gtmOnFailure').wasNotCalled();",
      "assertApi('sendHttpRequest').wasCalledWith('https://ok.example.com/200', {method: 'POST'});",
      "assertApi('sendHttpRequest').wasNotCalledWith('https://ok.example.com/500', {method: 'POST'});",
    ].join('\n')), setup);
  });

  test('a failing assertion fails the scenario, naming it', async () => {
    await assert.rejects(
      runScenario(tag, scenario("runCode({url: 'https://ok.example.com/500'});\nassertApi('gtmOnSuccess').wasCalled();", 'named'), setup),
      /scenario "named": expected gtmOnSuccess to have been called/,
    );
  });

  test('fail() fails the scenario', async () => {
    await assert.rejects(runScenario(tag, scenario("fail('on purpose');"), setup), /fail\(\): on purpose/);
  });

  test('an exception fails the scenario', async () => {
    await assert.rejects(runScenario(tag, scenario('const x = null; x.y = 1;'), setup), /Cannot set properties of null/);
  });

  test('setup runs afresh before each scenario', async () => {
    const code = "answers.push(1);\nassertThat(answers).hasLength(1);";
    await runScenario(tag, scenario(code), setup);
    await runScenario(tag, scenario(code), setup);
  });

  test('an assertion failing in a callback after the scenario returned fails it', async () => {
    const late = [
      "const Promise = require('Promise');",
      "mock('sendHttpRequest', () => Promise.create((resolve) => resolve({statusCode: 200})));",
      "mock('getType', () => { assertThat('late').isEqualTo('on time'); });",
      "runCode({url: 'https://ok.example.com/200'});",
    ].join('\n');
    const probe = tinyTag("const send = require('sendHttpRequest');\nconst getType = require('getType');\n"
      + "send(data.url, {}).then(() => { getType(1); data.gtmOnSuccess(); });",
    tag.permissions);
    await assert.rejects(runScenario(probe, scenario(late)), /expected "late" to be equal to "on time"/);
  });

  test('a mocked API is still held to the declared permissions', async () => {
    await assert.rejects(
      runScenario(tag, scenario("runCode({url: 'https://elsewhere.example.com/200'});"), setup),
      /Permission denied: send_http/,
    );
  });

  test('an unmocked network call fails the scenario', async () => {
    await assert.rejects(
      runScenario(tag, scenario("runCode({url: 'https://ok.example.com/200'});")),
      /sendHttpRequest is not mocked/,
    );
  });

  test('scenario code must be sandboxed JavaScript', async () => {
    await assert.rejects(runScenario(tag, scenario('const a = `template literal`;'), setup), /template literal/);
  });

  test('gtmOnSuccess and gtmOnFailure are given to tags only', async () => {
    const variable = { ...tinyTag('return data.gtmOnSuccess;'), info: { type: 'MACRO' } };
    await runScenario(variable, scenario('assertThat(runCode({})).isUndefined();'));
  });
});

describe('the templates\' scenarios need every declared permission', () => {
  for (const template of [TAG, VARIABLE]) {
    const tests = parseTestsSection(template.sections.get('___TESTS___'));
    for (const permission of Object.keys(template.permissions)) {
      test(template.path.split('/').pop() + ' without ' + permission, async () => {
        const permissions = { ...template.permissions };
        delete permissions[permission];
        const outcomes = await Promise.allSettled(tests.scenarios.map(
          (s) => runScenario({ ...template, permissions }, s, tests.setup),
        ));
        // Denied outright, or (send_http) refused by queryPermission before the call.
        assert.ok(outcomes.some((o) => o.status === 'rejected'), 'no scenario needs ' + permission);
      });
    }
  }
});
