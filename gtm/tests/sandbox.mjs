// A stand-in for the GTM server-side sandbox, faithful to the documented behaviour of
// each API the ga4-stitch templates use, so the code inside a .tpl runs unchanged under
// Node's test runner.
//
// What it reproduces:
// - The code is the template's ___SANDBOXED_JS_FOR_SERVER___ section itself, run as the
//   body of a function of (require, data) in a fresh V8 context whose globals (JSON, Math,
//   Object, Date, Promise, parseInt, ...) are removed: the sandbox reaches them only
//   through require(), and a stray global use fails here as it fails in GTM.
// - require() knows only the APIs below; an unknown name throws.
// - Each API checks the permission GTM checks, against the ___SERVER_PERMISSIONS___ the
//   template declares; a call outside them throws "Permission denied", as GTM does.
// - sendHttpRequest resolves with {statusCode, headers, body} for ANY HTTP status and
//   rejects only with {reason: 'failed'} (network failure) or {reason: 'timed_out'}
//   (no answer within options.timeout, 15000 ms by default).
// - getAllEventData / getEventData return copies; templateDataStorage stores copies and
//   answers null for a missing key; JSON.parse answers undefined on bad input.
// - logToConsole writes only when the logging permission allows the environment.
// - sha256Sync digests the UTF-8 input, base64 by default or hex with
//   {outputEncoding: 'hex'}.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import vm from 'node:vm';

export const SECTION_ORDER = [
  '___TERMS_OF_SERVICE___',
  '___INFO___',
  '___TEMPLATE_PARAMETERS___',
  '___SANDBOXED_JS_FOR_SERVER___',
  '___SERVER_PERMISSIONS___',
  '___TESTS___',
  '___NOTES___',
];

// API -> permission it needs (null: none). Anything not listed is unknown to the sandbox.
export const API_PERMISSIONS = Object.freeze({
  JSON: null,
  Math: null,
  Object: null,
  Promise: null,
  encodeUriComponent: null,
  fromBase64: null,
  generateRandom: null,
  getAllEventData: 'read_event_data',
  getContainerVersion: 'read_container_data',
  getEventData: 'read_event_data',
  getGoogleAuth: 'use_google_credentials',
  getTimestampMillis: null,
  getType: null,
  logToConsole: 'logging',
  makeInteger: null,
  makeNumber: null,
  makeString: null,
  queryPermission: null,
  sendHttpRequest: 'send_http',
  sha256Sync: null,
  templateDataStorage: 'access_template_storage',
  toBase64: null,
});

export const FAKE_ACCESS_TOKEN = 'ya29.stand-in-access-token';

const SANDBOX_GLOBALS_REMOVED = [
  'JSON', 'Math', 'Object', 'Date', 'Promise', 'parseInt', 'parseFloat', 'Number', 'String',
  'Boolean', 'Array', 'RegExp', 'Function', 'eval', 'Symbol', 'Reflect', 'Proxy', 'Map',
  'Set', 'WeakMap', 'WeakSet', 'isNaN', 'isFinite', 'encodeURIComponent', 'decodeURIComponent',
  'encodeURI', 'decodeURI', 'escape', 'unescape', 'Intl', 'WebAssembly', 'globalThis',
];

// Syntax the sandboxed dialect does not accept; the code must avoid all of it.
const FORBIDDEN_SYNTAX = [
  [/`/, 'template literal'],
  [/\bnew\s+[A-Za-z_$]/, 'new'],
  [/\btypeof\b/, 'typeof (use getType)'],
  [/\binstanceof\b/, 'instanceof'],
  [/\bclass\s+[A-Za-z_$]/, 'class'],
  [/\basync\b/, 'async'],
  [/\bawait\b/, 'await'],
  [/\.\.\./, 'spread / rest'],
  [/\btry\s*\{/, 'try'],
  [/(^|[^.\w$])catch\s*\(/, 'catch clause'],
  [/\bthrow\b/, 'throw'],
  [/\bdelete\s+[A-Za-z_$]/, 'delete operator (use Object.delete)'],
  [/\bfor\s*\([^;)]*\b(in|of)\b/, 'for...in / for...of'],
  [/(^|[=(,:;!&|?{}]|return)\s*\/[^/*\s][^/\n]*\/[gimsuy]*\s*[.;,)]/m, 'regular expression literal'],
];

function withoutComments(code) {
  return code.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"\\])\/\/.*$/gm, '$1');
}

function withoutStrings(code) {
  return code.replace(/'(?:[^'\\\n]|\\.)*'/g, "''").replace(/"(?:[^"\\\n]|\\.)*"/g, '""');
}

export function sandboxSyntaxViolations(code) {
  const stripped = withoutStrings(withoutComments(code));
  return FORBIDDEN_SYNTAX.filter(([pattern]) => pattern.test(stripped)).map(([, name]) => name);
}

export function parseSections(text) {
  const sections = new Map();
  let current = null;
  for (const line of text.split('\n')) {
    const header = /^(___[A-Z_]+___)\s*$/.exec(line);
    if (header) {
      current = header[1];
      sections.set(current, []);
    } else if (current) {
      sections.get(current).push(line);
    }
  }
  return new Map([...sections].map(([name, lines]) => [name, lines.join('\n').trim()]));
}

function paramValue(value) {
  switch (value.type) {
    case 1: return value.string;
    case 2: return (value.listItem || []).map(paramValue);
    case 3: return Object.fromEntries(
      (value.mapKey || []).map((key, i) => [paramValue(key), paramValue(value.mapValue[i])]),
    );
    case 8: return value.boolean;
    default: throw new Error('unknown permission value type ' + value.type);
  }
}

export function parsePermissions(list) {
  const permissions = {};
  for (const entry of list) {
    const params = {};
    for (const param of entry.instance.param || []) params[param.key] = paramValue(param.value);
    permissions[entry.instance.key.publicId] = params;
  }
  return permissions;
}

export function loadTemplate(path) {
  const text = readFileSync(path, 'utf8');
  const sections = parseSections(text);
  const permissionList = JSON.parse(sections.get('___SERVER_PERMISSIONS___'));
  return {
    path,
    text,
    sections,
    info: JSON.parse(sections.get('___INFO___')),
    parameters: JSON.parse(sections.get('___TEMPLATE_PARAMETERS___')),
    code: sections.get('___SANDBOXED_JS_FOR_SERVER___'),
    permissions: parsePermissions(permissionList),
  };
}

// URL match patterns: scheme and host must match (a leading "*." matches one or more
// subdomain labels), and the path must match where "*" stands for any characters.
export function urlMatchesPattern(url, pattern) {
  const target = /^(https?):\/\/([^/?#]+)(\/[^?#]*)?/.exec(url);
  const spec = /^(https?):\/\/([^/]+)(\/.*)$/.exec(pattern);
  if (!target || !spec || target[1] !== spec[1]) return false;
  const host = target[2].toLowerCase();
  const hostPattern = spec[2].toLowerCase();
  const hostOk = hostPattern.startsWith('*.')
    ? host.endsWith(hostPattern.slice(1)) && host.length > hostPattern.length - 1
    : host === hostPattern;
  if (!hostOk) return false;
  const pathRegex = new RegExp(
    '^' + spec[3].split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*') + '$',
  );
  return pathRegex.test(target[3] || '/');
}

function denied(permission, detail) {
  return new Error('Permission denied: ' + permission + (detail ? ' (' + detail + ')' : ''));
}

function keyAllowed(params, key) {
  if (params.eventDataAccess === 'any') return true;
  return (params.keyPatterns || []).some((pattern) => (
    pattern === key || (pattern.endsWith('*') && key.startsWith(pattern.slice(0, -1)))
  ));
}

function valueAtPath(object, keyPath) {
  let value = object;
  for (const part of keyPath.split('.')) {
    if (value === null || value === undefined || typeof value !== 'object') return undefined;
    value = value[part];
  }
  return value;
}

function sandboxType(value) {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

function copy(value) {
  return value === undefined ? undefined : structuredClone(value);
}

export class TemplateStorage {
  constructor() {
    this.items = new Map();
  }

  getItemCopy(key) {
    return this.items.has(key) ? copy(this.items.get(key)) : null;
  }

  setItemCopy(key, value) {
    if (value === null || value === undefined) this.items.delete(key);
    else this.items.set(key, copy(value));
  }

  removeItem(key) {
    this.items.delete(key);
  }

  clear() {
    this.items.clear();
  }
}

// A scripted network. `handler(request)` answers each request with one of:
//   {statusCode, headers?, body?}   an HTTP response (any status)
//   'fail'                          a network failure
//   'hang'                          no answer at all (the caller's timeout decides)
// or a Promise of one of these.
function sendThrough(handler, request) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject({ reason: 'timed_out' }), request.timeout);
    const settle = (answer) => {
      if (answer === 'hang') return;
      clearTimeout(timer);
      if (answer === 'fail') {
        reject({ reason: 'failed' });
        return;
      }
      resolve({
        statusCode: answer.statusCode,
        headers: answer.headers || {},
        body: answer.body === undefined ? '' : answer.body,
      });
    };
    Promise.resolve(handler(request)).then(settle, () => settle('fail'));
  });
}

function urlAllowed(params, url) {
  return params.allowedUrls === 'any' || (params.urls || []).some((p) => urlMatchesPattern(url, p));
}

// queryPermission(name, ...args): whether the declared permissions allow the operation.
export function permits(permissions, name, args) {
  const params = permissions[name];
  if (!params) return false;
  switch (name) {
    case 'send_http': return urlAllowed(params, args[0]);
    case 'read_event_data': return args[0] === undefined
      ? params.eventDataAccess === 'any'
      : keyAllowed(params, args[0]);
    case 'use_google_credentials': return (args[0] || []).every(
      (scope) => (params.allowedScopes || []).includes(scope),
    );
    default: return true;
  }
}

function createApis(template, run) {
  const permissions = template.permissions;
  const need = (permission, detail) => {
    if (!permissions[permission]) throw denied(permission, detail);
    return permissions[permission];
  };
  const authObjects = new WeakSet();

  return {
    JSON: Object.freeze({
      parse(text) {
        try {
          return JSON.parse(text);
        } catch {
          return undefined;
        }
      },
      stringify(value) {
        try {
          return JSON.stringify(value);
        } catch {
          return undefined;
        }
      },
    }),
    Math: Object.freeze({
      abs: Math.abs, ceil: Math.ceil, floor: Math.floor, round: Math.round,
      max: Math.max, min: Math.min, pow: Math.pow, sqrt: Math.sqrt,
    }),
    Object: Object.freeze({
      keys: Object.keys,
      values: Object.values,
      entries: Object.entries,
      freeze: Object.freeze,
      delete: (object, key) => delete object[key],
    }),
    Promise: Object.freeze({
      create: (executor) => sandboxPromise(new Promise(executor), run),
      all: (promises) => sandboxPromise(Promise.all(promises), run),
    }),
    encodeUriComponent: (value) => encodeURIComponent(value),
    fromBase64: (value) => Buffer.from(value, 'base64').toString('utf8'),
    generateRandom: (min, max) => run.random(min, max),
    getAllEventData() {
      if (need('read_event_data').eventDataAccess !== 'any') {
        throw denied('read_event_data', 'getAllEventData needs access to any key');
      }
      return copy(run.eventData);
    },
    getContainerVersion() {
      need('read_container_data');
      return { ...run.containerVersion };
    },
    getEventData(keyPath) {
      run.eventDataReads.push(keyPath);
      if (!keyAllowed(need('read_event_data', keyPath), keyPath)) {
        throw denied('read_event_data', keyPath);
      }
      return copy(valueAtPath(run.eventData, keyPath));
    },
    getGoogleAuth(options) {
      const allowed = need('use_google_credentials').allowedScopes || [];
      const scopes = (options && options.scopes) || [];
      const missing = scopes.filter((scope) => !allowed.includes(scope));
      if (!scopes.length || missing.length) throw denied('use_google_credentials', missing.join(' '));
      const auth = Object.freeze({ scopes: [...scopes] });
      authObjects.add(auth);
      run.googleAuthCalls.push([...scopes]);
      return auth;
    },
    getTimestampMillis: () => run.clock(),
    getType: sandboxType,
    logToConsole(...args) {
      const environments = need('logging').environments;
      const debug = run.containerVersion.debugMode || run.containerVersion.previewMode;
      if (environments === 'all' || (environments === 'debug' && debug)) {
        run.logs.push(args.map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg))).join(' '));
      }
    },
    makeInteger: (value) => Math.trunc(Number(value)),
    makeNumber: (value) => Number(value),
    makeString: (value) => String(value),
    queryPermission: (name, ...args) => permits(permissions, name, args),
    sendHttpRequest(url, options = {}, body = undefined) {
      if (!urlAllowed(need('send_http', url), url)) throw denied('send_http', url);
      const headers = { ...(options.headers || {}) };
      if (options.authorization !== undefined) {
        if (!authObjects.has(options.authorization)) {
          throw new Error('sendHttpRequest: authorization must come from getGoogleAuth');
        }
        headers.Authorization = 'Bearer ' + FAKE_ACCESS_TOKEN;
      }
      const request = {
        url,
        method: options.method || 'GET',
        headers,
        timeout: options.timeout === undefined ? 15000 : options.timeout,
        authorizationScopes: options.authorization ? options.authorization.scopes : null,
        body,
      };
      run.requests.push(request);
      return sandboxPromise(sendThrough(run.http, request), run);
    },
    sha256Sync(input, options) {
      const encoding = options && options.outputEncoding === 'hex' ? 'hex' : 'base64';
      return createHash('sha256').update(String(input), 'utf8').digest(encoding);
    },
    templateDataStorage: Object.freeze({
      getItemCopy: (key) => (need('access_template_storage'), run.storage.getItemCopy(key)),
      setItemCopy: (key, value) => (need('access_template_storage'), run.storage.setItemCopy(key, value)),
      removeItem: (key) => (need('access_template_storage'), run.storage.removeItem(key)),
      clear: () => (need('access_template_storage'), run.storage.clear()),
    }),
    toBase64(value, options) {
      const encoded = Buffer.from(String(value), 'utf8');
      return options && options.urlEncoding ? encoded.toString('base64url') : encoded.toString('base64');
    },
  };
}

// Sandboxed code as the body of a function of `params`, in a fresh V8 context whose
// JavaScript globals are removed (the template code and the editor test scenarios alike).
export function compileSandboxed(code, params, filename) {
  const context = vm.createContext({});
  vm.runInContext(
    SANDBOX_GLOBALS_REMOVED.map((name) => 'delete globalThis.' + name + ';').join('\n'),
    context,
  );
  return vm.runInContext('(function (' + params.join(', ') + ') {\n' + code + '\n})', context, {
    filename,
    lineOffset: -1,
  });
}

export function compile(template) {
  return compileSandboxed(template.code, ['require', 'data'], template.path);
}

// Deterministic, but different on every call across runs, as a random source should be.
let randomCalls = 0;
function sequenceRandom(min, max) {
  randomCalls += 1;
  return min + ((randomCalls * 2654435761) % (max - min + 1));
}

export function newRun(template, options) {
  const run = {
    eventData: options.eventData || {},
    http: options.http || (() => ({ statusCode: 200, body: '{}' })),
    storage: options.storage || new TemplateStorage(),
    clock: options.clock || (() => 1763800000000),
    random: options.random || sequenceRandom,
    containerVersion: { debugMode: false, previewMode: false, ...(options.containerVersion || {}) },
    logs: [],
    requests: [],
    googleAuthCalls: [],
    eventDataReads: [],
    required: [],
    unhandled: [],
  };
  const apis = createApis(template, run);
  run.require = (name) => {
    if (!Object.hasOwn(API_PERMISSIONS, name)) throw new Error('Unknown API: ' + name);
    run.required.push(name);
    return apis[name];
  };
  return run;
}

// Sandbox promises are GTM's own objects with then / catch / finally. This one records
// a rejection that nothing in the template handles (GTM logs it, and a tag then never
// reports), so a test can see it instead of the process crashing.
function sandboxPromise(promise, run) {
  let chained = false;
  promise.then(undefined, (error) => {
    if (!chained) run.unhandled.push(error);
  });
  return Object.freeze({
    then(onFulfilled, onRejected) {
      chained = true;
      return sandboxPromise(promise.then(onFulfilled, onRejected), run);
    },
    catch(onRejected) {
      chained = true;
      return sandboxPromise(promise.then(undefined, onRejected), run);
    },
    finally(onFinally) {
      chained = true;
      return sandboxPromise(promise.finally(onFinally), run);
    },
  });
}

function report(run, extra) {
  return {
    logs: run.logs,
    requests: run.requests,
    googleAuthCalls: run.googleAuthCalls,
    eventDataReads: run.eventDataReads,
    required: run.required,
    storage: run.storage,
    errors: run.unhandled,
    ...extra,
  };
}

// Runs a tag template once. Resolves when the code has called gtmOnSuccess or
// gtmOnFailure, or after `settleMs` without either (outcome 'pending').
export async function runTag(template, { data = {}, settleMs = 2000, ...options } = {}) {
  const run = newRun(template, options);
  const calls = [];
  let settled;
  const done = new Promise((resolve) => {
    settled = resolve;
  });
  const fullData = {
    ...structuredClone(data),
    gtmOnSuccess: () => {
      calls.push('success');
      settled();
    },
    gtmOnFailure: () => {
      calls.push('failure');
      settled();
    },
  };
  const guard = setTimeout(settled, settleMs);
  try {
    compile(template)(run.require, fullData);
  } catch (error) {
    clearTimeout(guard);
    return report(run, { outcome: 'exception', error, calls });
  }
  await done;
  clearTimeout(guard);
  // Let a stray second callback or an unhandled rejection surface before reporting.
  await new Promise((resolve) => setImmediate(resolve));
  const outcome = calls.length === 0 ? 'pending' : calls[0];
  return report(run, { outcome, calls });
}

// Runs a variable template once and awaits its value (variables may return a Promise).
export async function runVariable(template, { data = {}, ...options } = {}) {
  const run = newRun(template, options);
  const returned = compile(template)(run.require, structuredClone(data));
  const isPromise = returned !== null && typeof returned === 'object'
    && typeof returned.then === 'function';
  const value = isPromise ? await returned : returned;
  await new Promise((resolve) => setImmediate(resolve));
  return report(run, { value: copy(value), async: isPromise });
}

// The fixture events, shaped as a GA4 client produces them.
export function fixtureEvents() {
  const path = new URL('./fixtures/gtm-sc-event-data.json', import.meta.url);
  return JSON.parse(readFileSync(path, 'utf8')).events;
}
