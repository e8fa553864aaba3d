/**
 * The shipped examples validate, and the configuration reference documents every key the
 * schema accepts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfigFile, parseConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { configSchema } from '../../src/config/schema.js';

/** Repository root (this file runs from dist/test/config/). */
const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const EXAMPLES = join(ROOT, 'examples');

const exampleFiles = readdirSync(EXAMPLES).filter((f) => /\.(ya?ml|json)$/.test(f));

test('there are shipped examples, including l4lb.yaml and minimal.yaml', () => {
  assert.ok(exampleFiles.includes('l4lb.yaml'));
  assert.ok(exampleFiles.includes('minimal.yaml'));
});

for (const name of exampleFiles) {
  test(`examples/${name} validates with no environment set`, async () => {
    const cfg = await loadConfigFile(join(EXAMPLES, name), {});
    assert.ok(cfg.listeners.length > 0);
    assert.ok(cfg.pools.length > 0);
    for (const l of cfg.listeners) {
      assert.ok(l.host === '127.0.0.1' || l.host === '::1', `${name}: listener ${l.name} is not on loopback`);
    }
  });
}

test('examples/l4lb.yaml takes the admin token from L4LB_ADMIN_TOKEN when set', async () => {
  const cfg = await loadConfigFile(join(EXAMPLES, 'l4lb.yaml'), { L4LB_ADMIN_TOKEN: 'from-env' });
  assert.equal(cfg.admin?.token, 'from-env');
});

/** Walks zod's schema definitions and collects every object key, with the path to it. */
function schemaKeys(schema: unknown, path: string, out: Map<string, string>): void {
  const def = (schema as { _zod: { def: Record<string, unknown> } })._zod.def;
  switch (def.type) {
    case 'object':
      for (const [key, child] of Object.entries(def.shape as Record<string, unknown>)) {
        const p = path === '' ? key : `${path}.${key}`;
        out.set(p, key);
        schemaKeys(child, p, out);
      }
      return;
    case 'pipe':
      schemaKeys(def.in, path, out);
      schemaKeys(def.out, path, out);
      return;
    case 'optional':
    case 'default':
    case 'nullable':
      schemaKeys(def.innerType, path, out);
      return;
    case 'array':
      schemaKeys(def.element, `${path}[]`, out);
      return;
    case 'union':
      for (const option of def.options as unknown[]) schemaKeys(option, path, out);
      return;
    default:
      return;
  }
}

test('docs/configuration.md documents every key the schema accepts', () => {
  const docs = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
  const keys = new Map<string, string>();
  schemaKeys(configSchema, '', keys);
  assert.ok(keys.size > 60, `walked only ${keys.size} keys`);
  const missing = [...keys].filter(([, key]) => !docs.includes(`| \`${key}\``)).map(([p]) => p);
  assert.deepEqual(missing, [], 'keys without a row in a docs table');
});

/** The first fenced block of `lang` after `heading` in the docs. */
function docsBlock(docs: string, heading: string, lang: string): string {
  const from = docs.indexOf(heading);
  assert.ok(from >= 0, `docs have no "${heading}"`);
  const m = new RegExp('```' + lang + '\\n([\\s\\S]*?)```').exec(docs.slice(from));
  assert.ok(m, `no ${lang} block after "${heading}"`);
  return m[1];
}

test('the complete example in the docs validates, in YAML and in JSON', () => {
  const docs = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
  const cfg = parseConfigText(docsBlock(docs, '## A complete example', 'yaml'), 'docs.yaml', {});
  assert.deepEqual(cfg.listeners.map((l) => l.name), ['web', 'tls', 'db']);
  const json = parseConfigText(docsBlock(docs, 'The same structure in JSON', 'json'), 'docs.json', {});
  assert.equal(json.pools[0].backends[1].weight, 3);
});

test('the error listing in the docs is what l4lb prints for that mistake-laden file', () => {
  const docs = readFileSync(join(ROOT, 'docs', 'configuration.md'), 'utf8');
  const listing = docsBlock(docs, '## Errors', '');
  const bad = [
    'workers: 1',
    'listeners:',
    '  - name: web',
    '    listen: "::1:80"',
    '    pool: wbe',
    '    retires: 2',
    'pools:',
    '  - name: web',
    '    balance: fastest',
    '    backends:',
    '      - { address: 127.0.0.1:9001, weight: 0 }',
    '  - name: web',
    '    backends: []',
    'admin:',
    '  token: ${L4LB_ADMIN_TOKEN}',
    '  listen: 127.0.0.1:9000',
  ].join('\n');
  try {
    parseConfigText(bad, 'l4lb.yaml', {});
    assert.fail('expected a ConfigError');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(`l4lb: invalid config (${err.code})\n${err.message}\n`, listing);
  }
});
