// The GTM editor test scenarios in each template's ___TESTS___ section, run under Node
// with the editor's testing API (scenarios.mjs) on the sandbox stand-in (sandbox.mjs).
// Each scenario is one test here: a failing assertion, fail(), an exception, a call the
// declared permissions do not allow, or an unmocked network call fails it.
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';

import { loadTemplate, sandboxSyntaxViolations } from './sandbox.mjs';
import { parseTestsSection, runScenario } from './scenarios.mjs';

const GTM_DIR = new URL('../', import.meta.url);
const TEMPLATE_FILES = readdirSync(GTM_DIR).filter((name) => name.endsWith('.tpl')).sort();

for (const file of TEMPLATE_FILES) {
  const template = loadTemplate(new URL(file, GTM_DIR).pathname);
  const tests = parseTestsSection(template.sections.get('___TESTS___'));

  describe(file + ' editor scenarios', () => {
    test('the Tests tab has uniquely named scenarios and a setup', () => {
      assert.ok(tests.scenarios.length > 0);
      const names = tests.scenarios.map((scenario) => scenario.name);
      assert.equal(new Set(names).size, names.length);
      assert.ok(tests.setup.length > 0);
    });

    test('scenario code is sandboxed JavaScript the editor keeps as block text', () => {
      for (const { name, code } of [{ name: 'setup', code: tests.setup }, ...tests.scenarios]) {
        assert.deepEqual(sandboxSyntaxViolations(code), [], name);
        // Trailing blanks or tabs make the editor export the code as a quoted string.
        assert.ok(!/[ \t]$/m.test(code) && !code.includes('\t'), name + ': trailing blanks or tabs');
      }
    });

    for (const scenario of tests.scenarios) {
      test(scenario.name, () => runScenario(template, scenario, tests.setup));
    }
  });
}
