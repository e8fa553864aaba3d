/**
 * admin.persist: changes made through the API are written back to the config file,
 * comments and all, and the rewritten file still loads with the change in it.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile } from '../../src/config/load.js';
import { startProxy } from '../../src/proxy/proxy.js';
import { silentLogger } from '../../src/observability/log.js';
import { startProxyAdmin } from '../../src/admin/server.js';
import { startServer, type TestServer } from '../support/net.js';
import { call, enc, TIMEOUT } from './helpers.js';

/** A temporary directory and two echo backends, all gone after the test. */
async function fixture(t: TestContext): Promise<{ dir: string; a: TestServer; b: TestServer }> {
  const dir = await mkdtemp(join(tmpdir(), 'l4lb-persist-'));
  const [a, b] = [await startServer((s) => s.pipe(s)), await startServer((s) => s.pipe(s))];
  t.after(async () => {
    await a.close();
    await b.close();
    await rm(dir, { recursive: true, force: true });
  });
  return { dir, a, b };
}

/** Starts proxy + admin from `file`, as the CLI does. */
async function fromFile(file: string) {
  const cfg = await loadConfigFile(file);
  const proxy = await startProxy(cfg, { logger: silentLogger() });
  const admin = await startProxyAdmin(proxy, cfg.admin!);
  return {
    proxy,
    url: admin.url,
    async close() {
      await admin.close();
      await proxy.close();
    },
  };
}

test('with persist, drain, weight, add and remove are written to the YAML file, comments kept', TIMEOUT, async (t) => {
  const { dir, a, b } = await fixture(t);
  const file = join(dir, 'l4lb.yaml');
  await writeFile(
    file,
    `# l4lb test config — keep this comment
admin:
  listen: 127.0.0.1:0
  persist: true
log: { level: silent, access: "off" }

listeners:
  - name: web   # the front door
    listen: 127.0.0.1:0
    pool: web

pools:
  - name: web
    backends:
      # the first backend
      - 127.0.0.1:${a.port}   # short form
      - address: 127.0.0.1:${b.port}
        name: second
        weight: 2
`,
  );
  const run = await fromFile(file);
  t.after(() => run.close());
  const first = `127.0.0.1:${a.port}`;

  const drained = await call(run.url, `/api/v1/pools/web/backends/${enc(first)}/drain`, { method: 'POST' });
  assert.equal(drained.status, 200);
  assert.deepEqual(drained.json.persist, { ok: true, file });
  let text = await readFile(file, 'utf8');
  assert.match(text, /# l4lb test config — keep this comment/);
  assert.match(text, /# the front door/);
  assert.match(text, /# the first backend/);
  assert.match(text, /# short form/);
  let cfg = await loadConfigFile(file);
  assert.equal(cfg.pools[0].backends[0].name, first);
  assert.equal(cfg.pools[0].backends[0].state, 'draining');

  assert.equal((await call(run.url, '/api/v1/pools/web/backends/second/weight', { method: 'POST', body: '{"weight":5}' })).status, 200);
  cfg = await loadConfigFile(file);
  assert.equal(cfg.pools[0].backends[1].weight, 5);

  const added = await call(run.url, '/api/v1/pools/web/backends', { method: 'POST', body: JSON.stringify({ address: '127.0.0.1:9', name: 'third', state: 'disabled' }) });
  assert.equal(added.status, 201);
  cfg = await loadConfigFile(file);
  assert.deepEqual(
    cfg.pools[0].backends.map((x) => [x.name, x.port, x.state]),
    [[first, a.port, 'draining'], ['second', b.port, 'enabled'], ['third', 9, 'disabled']],
  );

  assert.equal((await call(run.url, '/api/v1/pools/web/backends/second', { method: 'DELETE' })).status, 200);
  // Enabling writes the default back by dropping the key.
  assert.equal((await call(run.url, `/api/v1/pools/web/backends/${enc(first)}/enable`, { method: 'POST' })).status, 200);
  text = await readFile(file, 'utf8');
  cfg = await loadConfigFile(file);
  assert.deepEqual(cfg.pools[0].backends.map((x) => [x.name, x.state]), [[first, 'enabled'], ['third', 'disabled']]);
  assert.doesNotMatch(text, /second/);
  assert.doesNotMatch(text, /state: enabled/);
  assert.match(text, /# the front door/);
  assert.match(text, /log: \{ level: silent, access: "off" \}/, 'untouched lines keep their style');
});

test('with persist, a JSON config file is rewritten as JSON that still loads', TIMEOUT, async (t) => {
  const { dir, a, b } = await fixture(t);
  const file = join(dir, 'l4lb.json');
  await writeFile(file, JSON.stringify({
    admin: { listen: '127.0.0.1:0', persist: true },
    log: { level: 'silent', access: 'off' },
    listeners: [{ name: 'web', listen: '127.0.0.1:0', pool: 'web' }],
    pools: [{ name: 'web', backends: [`127.0.0.1:${a.port}`, { address: `127.0.0.1:${b.port}`, name: 'b' }] }],
  }));
  const run = await fromFile(file);
  t.after(() => run.close());
  assert.equal((await call(run.url, '/api/v1/pools/web/backends/b/disable', { method: 'POST' })).status, 200);
  assert.equal((await call(run.url, `/api/v1/pools/web/backends/${enc(`127.0.0.1:${a.port}`)}/weight`, { method: 'POST', body: '{"weight":4}' })).status, 200);
  const raw = JSON.parse(await readFile(file, 'utf8'));
  assert.deepEqual(raw.pools[0].backends, [{ address: `127.0.0.1:${a.port}`, weight: 4 }, { address: `127.0.0.1:${b.port}`, name: 'b', state: 'disabled' }]);
  const cfg = await loadConfigFile(file);
  assert.equal(cfg.pools[0].backends[1].state, 'disabled');
});

test('without persist the file is left alone', TIMEOUT, async (t) => {
  const { dir, a, b } = await fixture(t);
  const file = join(dir, 'l4lb.yaml');
  const text = `admin: { listen: 127.0.0.1:0 }\nlog: { level: silent, access: "off" }\nlisteners: [{ listen: 127.0.0.1:0, pool: p }]\npools: [{ name: p, backends: [127.0.0.1:${a.port}, 127.0.0.1:${b.port}] }]\n`;
  await writeFile(file, text);
  const run = await fromFile(file);
  t.after(() => run.close());
  const r = await call(run.url, `/api/v1/pools/p/backends/${enc(`127.0.0.1:${a.port}`)}/drain`, { method: 'POST' });
  assert.equal(r.status, 200);
  assert.equal(r.json.persist, undefined);
  assert.equal(await readFile(file, 'utf8'), text);
});

test('when the file cannot express the change, nothing is applied and the answer says why', TIMEOUT, async (t) => {
  const { dir, a, b } = await fixture(t);
  const file = join(dir, 'l4lb.yaml');
  const text = `x-common: &common
  - 127.0.0.1:${a.port}
  - 127.0.0.1:${b.port}
admin: { listen: 127.0.0.1:0, persist: true }
log: { level: silent, access: "off" }
listeners: [{ listen: 127.0.0.1:0, pool: p }]
pools:
  - name: p
    backends: *common
`;
  await writeFile(file, text);
  const run = await fromFile(file);
  t.after(() => run.close());
  const r = await call(run.url, `/api/v1/pools/p/backends/${enc(`127.0.0.1:${a.port}`)}/drain`, { method: 'POST' });
  assert.equal(r.status, 409);
  assert.equal(r.json.error, 'cannot_persist');
  assert.match(r.json.message, /alias/);
  assert.equal(run.proxy.pools.get('p')!.backends[0].admin, 'enabled', 'not applied');
  assert.equal(await readFile(file, 'utf8'), text);
  // Unknown names are still 404, not a persistence error.
  assert.equal((await call(run.url, '/api/v1/pools/p/backends/nope/drain', { method: 'POST' })).status, 404);
});
