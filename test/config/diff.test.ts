/**
 * diffConfig: what hot reload must add, remove or update, matched by name.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigText } from '../../src/config/load.js';
import { diffConfig, deepEqual } from '../../src/config/diff.js';
import type { Config } from '../../src/config/types.js';

const BASE = `
workers: 1
log: { level: info }
listeners:
  - name: web
    listen: 127.0.0.1:8080
    pool: web
  - name: db
    listen: 127.0.0.1:5432
    pool: db
pools:
  - name: web
    balance: round-robin
    healthCheck: { send: "PING\\r\\n", expect: PONG }
    backends:
      - { address: 127.0.0.1:9001, name: a }
      - { address: 127.0.0.1:9002, name: b }
  - name: db
    backends: [127.0.0.1:9101]
`;

function load(text: string, file = 'l4lb.yaml'): Config {
  return parseConfigText(text, file, {});
}

/** BASE with each `[from, to]` text replacement applied (each must match). */
function edited(...edits: Array<[string, string]>): Config {
  let text = BASE;
  for (const [from, to] of edits) {
    assert.ok(text.includes(from), `BASE does not contain ${JSON.stringify(from)}`);
    text = text.replace(from, to);
  }
  return load(text);
}

const NONE = { added: [], removed: [], changed: [] };
const NO_LISTENER_CHANGES = { ...NONE, renamed: [] };

test('two loads of the same file have no changes, Buffers and all', () => {
  const d = diffConfig(load(BASE), load(BASE));
  assert.deepEqual(d, { listeners: NO_LISTENER_CHANGES, pools: { ...NONE, backends: {}, settingsChanged: [] }, settings: [], hasChanges: false });
});

test('the file a config came from is not a change', () => {
  assert.equal(diffConfig(load(BASE, 'a.yaml'), load(BASE, 'b.yaml')).hasChanges, false);
});

test('a new listener is added and a missing one removed', () => {
  const d = diffConfig(
    load(BASE),
    edited(['  - name: db\n    listen: 127.0.0.1:5432', '  - name: cache\n    listen: 127.0.0.1:6379']),
  );
  assert.deepEqual(d.listeners, { added: ['cache'], removed: ['db'], changed: [], renamed: [] });
  assert.equal(d.hasChanges, true);
});

test('a listener whose address changed is removed and added again', () => {
  const d = diffConfig(load(BASE), edited(['127.0.0.1:8080', '127.0.0.1:8081']));
  assert.deepEqual(d.listeners, { added: ['web'], removed: ['web'], changed: [], renamed: [] });
});

test('a listener renamed on the same address is renamed, not removed and added (reload keeps its socket)', () => {
  const d = diffConfig(load(BASE), edited(['  - name: db\n    listen: 127.0.0.1:5432', '  - name: postgres\n    listen: 127.0.0.1:5432']));
  assert.deepEqual(d.listeners, { added: [], removed: [], changed: [], renamed: [{ from: 'db', to: 'postgres' }] });
  assert.equal(d.hasChanges, true);
});

test('a listener renamed with other settings changed too is renamed and changed', () => {
  const d = diffConfig(
    load(BASE),
    edited(['  - name: db\n    listen: 127.0.0.1:5432\n    pool: db', '  - name: postgres\n    listen: 127.0.0.1:5432\n    pool: web']),
  );
  assert.deepEqual(d.listeners, { added: [], removed: [], changed: ['postgres'], renamed: [{ from: 'db', to: 'postgres' }] });
});

test('a new name on another address, or on port 0, is a removal and an addition', () => {
  const moved = diffConfig(load(BASE), edited(['  - name: db\n    listen: 127.0.0.1:5432', '  - name: postgres\n    listen: 127.0.0.1:5433']));
  assert.deepEqual(moved.listeners, { added: ['postgres'], removed: ['db'], changed: [], renamed: [] });
  const anyPort = (name: string) => BASE.replace('  - name: db\n    listen: 127.0.0.1:5432', `  - name: ${name}\n    listen: 127.0.0.1:0`);
  const zero = diffConfig(load(anyPort('db')), load(anyPort('postgres')));
  assert.deepEqual(zero.listeners, { added: ['postgres'], removed: ['db'], changed: [], renamed: [] });
});

test('a listener whose settings changed on the same address is changed in place', () => {
  const d = diffConfig(load(BASE), edited(['    pool: web\n  - name: db', '    pool: web\n    timeouts: { idle: 1m }\n  - name: db']));
  assert.deepEqual(d.listeners, { added: [], removed: [], changed: ['web'], renamed: [] });
  assert.deepEqual(d.pools, { ...NONE, backends: {}, settingsChanged: [] });
});

test('a listener moved to another pool is changed', () => {
  const d = diffConfig(load(BASE), edited(['    pool: db\npools', '    pool: web\npools']));
  assert.deepEqual(d.listeners.changed, ['db']);
});

test('pools are added and removed by name', () => {
  const d = diffConfig(
    load(BASE),
    edited(['    pool: db\npools', '    pool: cache\npools'], ['  - name: db\n    backends', '  - name: cache\n    backends']),
  );
  assert.deepEqual([d.pools.added, d.pools.removed, d.pools.changed], [['cache'], ['db'], []]);
  assert.deepEqual(d.listeners.changed, ['db']);
});

test('a backend weight change marks the pool and that backend changed, not the pool settings', () => {
  const d = diffConfig(load(BASE), edited(['127.0.0.1:9002, name: b }', '127.0.0.1:9002, name: b, weight: 5 }']));
  assert.deepEqual(d.pools.changed, ['web']);
  assert.deepEqual(d.pools.backends, { web: { added: [], removed: [], changed: ['b'] } });
  assert.deepEqual(d.pools.settingsChanged, []);
  assert.deepEqual(d.listeners, NO_LISTENER_CHANGES);
});

test('a backend whose address changed is removed and added; new and gone backends are listed', () => {
  const d = diffConfig(
    load(BASE),
    edited(['127.0.0.1:9001, name: a', '127.0.0.1:9011, name: a'], ['{ address: 127.0.0.1:9002, name: b }', '{ address: 127.0.0.1:9003, name: c }']),
  );
  assert.deepEqual(d.pools.backends.web, { added: ['a', 'c'], removed: ['a', 'b'], changed: [] });
});

test('a balancer or health check change is a pool settings change', () => {
  const balance = diffConfig(load(BASE), edited(['balance: round-robin', 'balance: maglev']));
  assert.deepEqual(balance.pools.settingsChanged, ['web']);
  assert.deepEqual(balance.pools.backends, { web: NONE });
  const health = diffConfig(load(BASE), edited(['"PING\\r\\n"', '"PING\\n"']));
  assert.deepEqual(health.pools.settingsChanged, ['web']);
});

test('top-level settings that differ are listed', () => {
  const d = diffConfig(
    load(BASE),
    edited(['workers: 1', 'workers: 2\nadmin: { listen: 127.0.0.1:9000 }\nshutdown: { drainTimeout: 1s }'], ['level: info', 'level: debug']),
  );
  assert.deepEqual(d.settings, ['workers', 'shutdown', 'log', 'admin']);
  assert.deepEqual(d.listeners, NO_LISTENER_CHANGES);
  assert.equal(d.hasChanges, true);
});

test('diffConfig does not modify its inputs', () => {
  const before = load(BASE);
  const after = edited(['balance: round-robin', 'balance: random']);
  const snapshot = [JSON.stringify(before), JSON.stringify(after)];
  diffConfig(before, after);
  assert.deepEqual([JSON.stringify(before), JSON.stringify(after)], snapshot);
});

test('deepEqual treats keys set to undefined as absent and compares Buffers by content', () => {
  assert.equal(deepEqual({ a: 1, b: undefined }, { a: 1 }), true);
  assert.equal(deepEqual({ a: Buffer.from('x') }, { a: Buffer.from('x') }), true);
  assert.equal(deepEqual({ a: Buffer.from('x') }, { a: Buffer.from('y') }), false);
  assert.equal(deepEqual([1, 2], [2, 1]), false);
  assert.equal(deepEqual({ a: [1] }, { a: { 0: 1 } }), false);
});
