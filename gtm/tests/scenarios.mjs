// Runs the test scenarios of a template's ___TESTS___ section (the GTM editor's Tests tab)
// under Node, with the template testing API the editor provides:
//   mock(apiName, returnValue)      returnValue, or a function called in place of the API
//   mockObject(apiName, objectMock) require(apiName) answers objectMock (object APIs)
//   runCode(data)                   runs the template code; a variable's value is returned
//   assertApi(apiName)              .wasCalled() .wasNotCalled() .wasCalledWith(...args)
//                                   .wasNotCalledWith(...args)
//   assertThat(actual, opt_message) a subject with the editor's matchers (below)
//   fail(opt_message)               fails the scenario
// The optional `setup` block runs before each scenario, in the same scope.
//
// The scenario code and the template code both run in the sandbox stand-in of
// sandbox.mjs: the sandbox's syntax only, no JavaScript globals, require() for APIs.
// An API that is not mocked is the stand-in's own, permission checks included. One
// difference from the editor, on purpose: the editor does not check permissions on
// mocked APIs; here a mocked call is still checked against the template's declared
// permissions (URL, event data key, OAuth scopes), so a scenario that passes here passes
// in the editor, and it also proves the declared permissions cover what it exercises.
// The runner makes no network calls: sendHttpRequest must be mocked.
import { API_PERMISSIONS, compile, compileSandboxed, newRun, permits, sandboxSyntaxViolations } from './sandbox.mjs';

const NOT_RUN_WITHOUT_MOCK = new Set(['sendHttpRequest']);

// ---------------------------------------------------------------------------------------
// The ___TESTS___ section: the YAML the editor exports, in exactly this shape
//
//   scenarios:            (or `scenarios: []`)
//   - name: Some name
//     code: |-
//       sandboxed JavaScript
//   setup: |-
//     sandboxed JavaScript
//
// Scalars may be plain, quoted on one line, or literal blocks (`|`, `|-`). Anything else
// (flow collections, folded or multi-line quoted scalars, other keys) is refused.
// ---------------------------------------------------------------------------------------

class YamlShapeError extends Error {}

function indentOf(line) {
  return line.length - line.trimStart().length;
}

function isBlank(line) {
  return line.trim() === '';
}

function quotedScalar(text, where) {
  if (text.startsWith("'")) {
    if (!/^'(?:[^']|'')*'$/.test(text)) throw new YamlShapeError(where + ': unterminated single-quoted scalar');
    return text.slice(1, -1).replace(/''/g, "'");
  }
  if (!/^"(?:[^"\\]|\\.)*"$/.test(text)) throw new YamlShapeError(where + ': unterminated double-quoted scalar');
  try {
    return JSON.parse(text);
  } catch {
    throw new YamlShapeError(where + ': a double-quoted escape this parser does not read');
  }
}

// The value after `key:` on line `index`; block scalars take the following lines.
// Returns [value, nextIndex].
function scalarAt(lines, index, keyIndent, rest, where) {
  const text = rest.trim();
  const block = /^\|([+-]?)$/.exec(text);
  if (block) {
    const body = [];
    let i = index + 1;
    while (i < lines.length && (isBlank(lines[i]) || indentOf(lines[i]) > keyIndent)) {
      body.push(lines[i]);
      i += 1;
    }
    const first = body.find((line) => !isBlank(line));
    const blockIndent = first === undefined ? 0 : indentOf(first);
    const content = body.map((line) => {
      if (isBlank(line)) return line.length > blockIndent ? line.slice(blockIndent) : '';
      if (indentOf(line) < blockIndent) throw new YamlShapeError(where + ': a block line is indented less than the first');
      return line.slice(blockIndent);
    });
    let value = content.join('\n');
    if (block[1] === '-') value = value.replace(/\n+$/, '');
    else if (block[1] === '') value = value.replace(/\n+$/, '') + '\n';
    else value += '\n';
    return [value, i];
  }
  if (text.startsWith('"') || text.startsWith("'")) return [quotedScalar(text, where), index + 1];
  if (text === '' || /^[[{>&*!%@`]/.test(text) || /: |\s#/.test(text)) {
    throw new YamlShapeError(where + ': unsupported value ' + JSON.stringify(text));
  }
  return [text, index + 1];
}

export function parseTestsSection(text) {
  const lines = text.replace(/\r\n/g, '\n').split('\n');
  const result = { scenarios: [], setup: '' };
  const seen = new Set();
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (isBlank(line)) {
      i += 1;
      continue;
    }
    const top = /^(scenarios|setup):(.*)$/.exec(line);
    if (!top) throw new YamlShapeError('line ' + (i + 1) + ': expected "scenarios:" or "setup:", got ' + JSON.stringify(line));
    if (seen.has(top[1])) throw new YamlShapeError('line ' + (i + 1) + ': ' + top[1] + ' appears twice');
    seen.add(top[1]);
    if (top[1] === 'setup') {
      [result.setup, i] = scalarAt(lines, i, 0, top[2], 'setup');
      continue;
    }
    if (top[2].trim() === '[]') {
      i += 1;
      continue;
    }
    if (top[2].trim() !== '') throw new YamlShapeError('line ' + (i + 1) + ': scenarios must be a list');
    i += 1;
    let itemIndent = null;
    while (i < lines.length && (isBlank(lines[i]) || /^\s*- /.test(lines[i]))) {
      if (isBlank(lines[i])) {
        i += 1;
        continue;
      }
      const indent = indentOf(lines[i]);
      if (itemIndent === null) itemIndent = indent;
      if (indent !== itemIndent) throw new YamlShapeError('line ' + (i + 1) + ': list items at different indents');
      const scenario = {};
      const keyIndent = itemIndent + 2;
      // The first key shares the "- " line; the others follow at keyIndent.
      let keyLine = ' '.repeat(keyIndent) + lines[i].slice(keyIndent);
      let keyLineIndex = i;
      for (;;) {
        const where = 'line ' + (keyLineIndex + 1);
        const pair = /^(\s*)(name|code):(.*)$/.exec(keyLine);
        if (!pair || pair[1].length !== keyIndent) throw new YamlShapeError(where + ': expected "name:" or "code:"');
        if (Object.hasOwn(scenario, pair[2])) throw new YamlShapeError(where + ': ' + pair[2] + ' appears twice');
        const patched = lines.slice();
        patched[keyLineIndex] = keyLine;
        [scenario[pair[2]], i] = scalarAt(patched, keyLineIndex, keyIndent, pair[3], where);
        while (i < lines.length && isBlank(lines[i])) i += 1;
        if (i >= lines.length || indentOf(lines[i]) !== keyIndent || /^\s*- /.test(lines[i])) break;
        keyLine = lines[i];
        keyLineIndex = i;
      }
      if (typeof scenario.name !== 'string' || typeof scenario.code !== 'string') {
        throw new YamlShapeError('scenario ' + JSON.stringify(scenario.name) + ': needs both name and code');
      }
      result.scenarios.push(scenario);
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------
// Values: equality and display (values cross V8 contexts, so no prototype checks)
// ---------------------------------------------------------------------------------------

export function deepEqual(a, b) {
  if (a === b) return true;
  if (typeof a === 'number' && typeof b === 'number') return Number.isNaN(a) && Number.isNaN(b);
  if (a === null || b === null || typeof a !== 'object' || typeof b !== 'object') return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((item, i) => deepEqual(item, b[i]));
  const keysA = Object.keys(a);
  const keysB = Object.keys(b);
  return keysA.length === keysB.length
    && keysA.every((key) => Object.hasOwn(b, key) && deepEqual(a[key], b[key]));
}

function show(value) {
  if (value === undefined) return 'undefined';
  if (typeof value === 'function') return 'function';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

export class ScenarioAssertionError extends Error {
  constructor(message) {
    super(message);
    this.name = 'ScenarioAssertionError';
  }
}

// ---------------------------------------------------------------------------------------
// assertThat and assertApi
// ---------------------------------------------------------------------------------------

function lengthOf(value) {
  if (typeof value === 'string' || Array.isArray(value)) return value.length;
  if (value !== null && typeof value === 'object') return Object.keys(value).length;
  return undefined;
}

function includes(subject, expected) {
  if (typeof subject === 'string') return typeof expected === 'string' && subject.includes(expected);
  if (Array.isArray(subject)) return subject.some((item) => deepEqual(item, expected));
  return false;
}

function sameElements(actual, expected) {
  if (!Array.isArray(actual) || actual.length !== expected.length) return false;
  const left = actual.slice();
  return expected.every((item) => {
    const at = left.findIndex((candidate) => deepEqual(candidate, item));
    if (at === -1) return false;
    left.splice(at, 1);
    return true;
  });
}

const typeOfSandbox = (value) => {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
};

// name -> [check(actual, ...expected), description(...expected)]
const MATCHERS = {
  isUndefined: [(a) => a === undefined, () => 'to be undefined'],
  isDefined: [(a) => a !== undefined, () => 'to be defined'],
  isNull: [(a) => a === null, () => 'to be null'],
  isNotNull: [(a) => a !== null, () => 'not to be null'],
  isFalse: [(a) => a === false, () => 'to be false'],
  isTrue: [(a) => a === true, () => 'to be true'],
  isFalsy: [(a) => !a, () => 'to be falsy'],
  isTruthy: [(a) => !!a, () => 'to be truthy'],
  isNaN: [(a) => Number.isNaN(a), () => 'to be NaN'],
  isNotNaN: [(a) => !Number.isNaN(a), () => 'not to be NaN'],
  isInfinity: [(a) => a === Infinity || a === -Infinity, () => 'to be infinity'],
  isNotInfinity: [(a) => a !== Infinity && a !== -Infinity, () => 'not to be infinity'],
  isEqualTo: [(a, e) => deepEqual(a, e), (e) => 'to be equal to ' + show(e)],
  isNotEqualTo: [(a, e) => !deepEqual(a, e), (e) => 'not to be equal to ' + show(e)],
  isStrictlyEqualTo: [(a, e) => a === e, (e) => 'to be strictly equal to ' + show(e)],
  isNotStrictlyEqualTo: [(a, e) => a !== e, (e) => 'not to be strictly equal to ' + show(e)],
  isAnyOf: [(a, ...e) => e.some((x) => deepEqual(a, x)), (...e) => 'to be any of ' + show(e)],
  isNoneOf: [(a, ...e) => !e.some((x) => deepEqual(a, x)), (...e) => 'to be none of ' + show(e)],
  isGreaterThan: [(a, e) => a > e, (e) => 'to be greater than ' + show(e)],
  isGreaterThanOrEqualTo: [(a, e) => a >= e, (e) => 'to be greater than or equal to ' + show(e)],
  isLessThan: [(a, e) => a < e, (e) => 'to be less than ' + show(e)],
  isAtMost: [(a, e) => a <= e, (e) => 'to be at most ' + show(e)],
  contains: [(a, ...e) => e.every((x) => includes(a, x)), (...e) => 'to contain ' + show(e)],
  doesNotContain: [(a, ...e) => !e.some((x) => includes(a, x)), (...e) => 'not to contain ' + show(e)],
  containsExactly: [(a, ...e) => sameElements(a, e), (...e) => 'to contain exactly ' + show(e)],
  doesNotContainExactly: [(a, ...e) => !sameElements(a, e), (...e) => 'not to contain exactly ' + show(e)],
  hasLength: [(a, e) => lengthOf(a) === e, (e) => 'to have length ' + show(e)],
  isEmpty: [(a) => lengthOf(a) === 0, () => 'to be empty'],
  isNotEmpty: [(a) => lengthOf(a) > 0, () => 'not to be empty'],
  isArray: [(a) => typeOfSandbox(a) === 'array', () => 'to be an array'],
  isBoolean: [(a) => typeof a === 'boolean', () => 'to be a boolean'],
  isFunction: [(a) => typeof a === 'function', () => 'to be a function'],
  isNumber: [(a) => typeof a === 'number', () => 'to be a number'],
  isObject: [(a) => typeOfSandbox(a) === 'object', () => 'to be an object'],
  isString: [(a) => typeof a === 'string', () => 'to be a string'],
};

export const MATCHER_NAMES = Object.freeze(Object.keys(MATCHERS));

function assertionFailure(state, message) {
  const error = new ScenarioAssertionError(message);
  if (state) state.failures.push(error);
  return error;
}

export function makeAssertThat(state = null) {
  return function assertThat(actual, message) {
    const subject = {};
    for (const [name, [check, describe]] of Object.entries(MATCHERS)) {
      subject[name] = (...expected) => {
        if (!check(actual, ...expected)) {
          throw assertionFailure(state, (message ? message + ': ' : '')
            + 'expected ' + show(actual) + ' ' + describe(...expected));
        }
        return subject;
      };
    }
    return Object.freeze(subject);
  };
}

function makeAssertApi(state) {
  return function assertApi(name) {
    const calls = () => state.calls.get(name) || [];
    const called = (expected) => calls().some((args) => deepEqual(args, expected));
    const check = (ok, text) => {
      if (!ok) throw assertionFailure(state, 'expected ' + name + ' ' + text + '; calls: ' + show(calls()));
    };
    return Object.freeze({
      wasCalled: () => check(calls().length > 0, 'to have been called'),
      wasNotCalled: () => check(calls().length === 0, 'not to have been called'),
      wasCalledWith: (...expected) => check(called(expected), 'to have been called with ' + show(expected)),
      wasNotCalledWith: (...expected) => check(!called(expected), 'not to have been called with ' + show(expected)),
    });
  };
}

// ---------------------------------------------------------------------------------------
// Mocks, permission checks on mocked calls, runCode
// ---------------------------------------------------------------------------------------

function mockedCallAllowed(template, name, args) {
  const permission = API_PERMISSIONS[name];
  if (!permission) return true;
  const declared = template.permissions;
  switch (name) {
    case 'sendHttpRequest': return permits(declared, 'send_http', [args[0]]);
    case 'getEventData': return permits(declared, 'read_event_data', [args[0]]);
    case 'getAllEventData': return permits(declared, 'read_event_data', []);
    case 'getGoogleAuth': {
      const scopes = (args[0] && args[0].scopes) || [];
      return scopes.length > 0 && permits(declared, 'use_google_credentials', [scopes]);
    }
    default: return Boolean(declared[permission]);
  }
}

function permissionDenied(name, args) {
  return new Error('Permission denied: ' + API_PERMISSIONS[name] + ' for mocked ' + name
    + (args.length ? '(' + show(args[0]) + ')' : ''));
}

function record(state, name, args) {
  if (!state.calls.has(name)) state.calls.set(name, []);
  state.calls.get(name).push(args);
}

function templateRequire(template, state) {
  return (name) => {
    if (!Object.hasOwn(API_PERMISSIONS, name)) throw new Error('Unknown API: ' + name);
    const current = state.mocks.get(name);
    if (current && current.kind === 'object') {
      if (!mockedCallAllowed(template, name, [])) throw permissionDenied(name, []);
      state.run.required.push(name);
      return current.value;
    }
    const real = state.run.require(name);
    if (typeof real !== 'function') return real;
    return (...args) => {
      record(state, name, args);
      const mocked = state.mocks.get(name);
      if (mocked && mocked.kind !== 'object') {
        if (!mockedCallAllowed(template, name, args)) throw permissionDenied(name, args);
        return mocked.kind === 'function' ? mocked.value(...args) : mocked.value;
      }
      if (NOT_RUN_WITHOUT_MOCK.has(name)) {
        throw new Error(name + ' is not mocked: the scenario runner makes no network calls');
      }
      return real(...args);
    };
  };
}

function makeRunCode(template, state) {
  const code = compile(template);
  return (data) => {
    const fullData = Object.assign({}, data);
    if (template.info.type === 'TAG') {
      fullData.gtmOnSuccess = () => record(state, 'gtmOnSuccess', []);
      fullData.gtmOnFailure = () => record(state, 'gtmOnFailure', []);
    }
    return code(templateRequire(template, state), fullData);
  };
}

// Runs one scenario (after `setup`) against the template. Resolves when it passes;
// rejects with the first failed assertion, fail(), or error otherwise, including an
// assertion that fails in a callback after the scenario code has returned.
export async function runScenario(template, scenario, setup = '') {
  const source = (setup ? setup + '\n' : '') + scenario.code;
  const violations = sandboxSyntaxViolations(source);
  if (violations.length) {
    throw new Error('scenario "' + scenario.name + '" uses syntax the sandbox refuses: ' + violations.join(', '));
  }
  const state = {
    run: newRun(template, { clock: () => Date.now() }),
    mocks: new Map(),
    calls: new Map(),
    failures: [],
  };
  const api = {
    require: (name) => state.run.require(name),
    mock: (name, value) => {
      state.mocks.set(name, { kind: typeof value === 'function' ? 'function' : 'value', value });
    },
    mockObject: (name, value) => {
      state.mocks.set(name, { kind: 'object', value });
    },
    runCode: makeRunCode(template, state),
    assertApi: makeAssertApi(state),
    assertThat: makeAssertThat(state),
    fail: (message) => {
      throw assertionFailure(state, 'fail()' + (message ? ': ' + message : ''));
    },
  };
  const names = Object.keys(api);
  const body = compileSandboxed(source, names, template.path + ' [' + scenario.name + ']');
  const where = template.path.split('/').pop() + ' scenario "' + scenario.name + '": ';
  try {
    body(...names.map((name) => api[name]));
  } catch (error) {
    error.message = where + (error && error.message);
    throw error;
  }
  // Callbacks the template left for later (real sandbox promises) run now; an assertion
  // failing there, or a rejection nothing handled, still fails the scenario.
  await new Promise((resolve) => setImmediate(resolve));
  if (state.failures.length) {
    throw new ScenarioAssertionError(where + state.failures[0].message
      + ' (in a callback the template caught or that ran after the scenario returned)');
  }
  if (state.run.unhandled.length) {
    throw new Error(where + 'unhandled rejection ' + show(state.run.unhandled[0]));
  }
}
