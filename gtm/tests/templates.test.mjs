// Both .tpl files: the sections GTM's importer reads, and code written in the sandbox's
// dialect using only sandbox APIs. (tests/test_gtm_templates.py checks the permissions
// against the code statically; the *.test.mjs files run the code.)
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';

import { API_PERMISSIONS, SECTION_ORDER, loadTemplate, sandboxSyntaxViolations } from './sandbox.mjs';

const GTM_DIR = new URL('../', import.meta.url);
const TEMPLATE_FILES = readdirSync(GTM_DIR).filter((name) => name.endsWith('.tpl')).sort();

test('both templates are present', () => {
  assert.deepEqual(TEMPLATE_FILES, ['pubsub-publish-tag.tpl', 'resolve-identity-session-variable.tpl']);
});

for (const file of TEMPLATE_FILES) {
  describe(file, () => {
    const template = loadTemplate(new URL(file, GTM_DIR).pathname);

    test('has every section, in the order GTM exports them', () => {
      assert.deepEqual([...template.sections.keys()], SECTION_ORDER);
    });

    test('is a server-container template', () => {
      assert.deepEqual(template.info.containerContexts, ['SERVER']);
      assert.ok(['TAG', 'MACRO'].includes(template.info.type));
    });

    test('uses only syntax the sandbox accepts', () => {
      assert.deepEqual(sandboxSyntaxViolations(template.code), []);
    });

    test('requires only sandbox APIs, each once, at the top', () => {
      const names = [...template.code.matchAll(/require\('([^']+)'\)/g)].map((m) => m[1]);
      assert.ok(names.length > 0);
      for (const name of names) assert.ok(Object.hasOwn(API_PERMISSIONS, name), name);
      assert.equal(new Set(names).size, names.length);
    });
  });
}
