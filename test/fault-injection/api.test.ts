/**
 * The fault API against Toxiproxy's documented JSON shapes and status codes (its README's
 * "HTTP API" and api.go): every endpoint's answer is recorded and checked, bad input is
 * refused with 400 and the reason and changes nothing, and the config file's `faults:` and reloads meet
 * the API as docs/faults.md says.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { echoServer, request } from '../support/net.js';
import { startRig } from './support.js';
import { startProxy } from '../../src/proxy/proxy.js';
import { configFromBackends } from '../../src/config/quick.js';
import { silentLogger } from '../../src/observability/log.js';
import { startFaultsApi } from '../../src/faults/api.js';
import { normalizeConfig } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';

interface Answer {
  status: number;
  body: unknown;
}

/** One request to the API; the answer's JSON (undefined for an empty body). */
async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  const init: RequestInit = { method, headers: { ...headers } };
  if (body !== undefined) {
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const res = await fetch(`${base}${path}`, init);
  const text = await res.text();
  return { status: res.status, body: text === '' ? undefined : JSON.parse(text) };
}

const PROXY_FIELDS = ['name', 'listen', 'upstream', 'enabled', 'toxics'];
const TOXIC_FIELDS = ['attributes', 'name', 'type', 'stream', 'toxicity'];

function isError(a: Answer, status: number, message?: RegExp): void {
  assert.equal(a.status, status, JSON.stringify(a.body));
  const b = a.body as { error: string; status: number };
  assert.deepEqual(Object.keys(b), ['error', 'status'], "Toxiproxy's error shape");
  assert.equal(b.status, status);
  if (message) assert.match(b.error, message);
}

test("every endpoint answers with Toxiproxy's fields and status codes", async (t) => {
  const backend = await echoServer();
  t.after(() => backend.close());
  const rig = await startRig(t, backend.port);
  const base = rig.api.url;
  const upstream = `127.0.0.1:${backend.port}`;

  const version = await call(base, 'GET', '/version');
  assert.equal(version.status, 200);
  assert.equal(typeof (version.body as { version: string }).version, 'string');

  const all = await call(base, 'GET', '/proxies');
  assert.equal(all.status, 200);
  const def = (all.body as Record<string, Record<string, unknown>>).default;
  assert.deepEqual(Object.keys(def), PROXY_FIELDS);
  assert.deepEqual(def, { name: 'default', listen: `127.0.0.1:${rig.port}`, upstream, enabled: true, toxics: [] }, 'a config listener appears under its name');

  // Create: 201, the real port in `listen`; traffic goes through it.
  const created = await call(base, 'POST', '/proxies', { name: 'made', listen: '127.0.0.1:0', upstream });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const made = created.body as { listen: string; enabled: boolean };
  assert.deepEqual(Object.keys(made), PROXY_FIELDS);
  assert.match(made.listen, /^127\.0\.0\.1:[1-9]\d*$/);
  assert.equal(made.enabled, true);
  const madePort = Number(made.listen.split(':')[1]);
  assert.equal(await request(madePort, 'through the made proxy'), 'through the made proxy');
  isError(await call(base, 'POST', '/proxies', { name: 'made', listen: '127.0.0.1:0', upstream }), 409, /proxy already exists/);
  // The Go client posts its whole Proxy struct, `toxics` included (ignored, as by Toxiproxy).
  const goStyle = await call(base, 'POST', '/proxies', { name: 'go', listen: '127.0.0.1:0', upstream, enabled: true, toxics: null });
  assert.equal(goStyle.status, 201, JSON.stringify(goStyle.body));
  const saved = await call(base, 'POST', '/proxies/go', { ...(goStyle.body as object), enabled: false });
  assert.equal(saved.status, 200, JSON.stringify(saved.body));
  assert.equal((saved.body as { enabled: boolean }).enabled, false);
  assert.equal((await call(base, 'DELETE', '/proxies/go')).status, 204);
  isError(await call(base, 'POST', '/proxies', { name: 'x', listen: '127.0.0.1:0' }), 400, /missing required field: upstream/);
  isError(await call(base, 'POST', '/proxies', { name: 'x', listen: `127.0.0.1:${backend.port}`, upstream }), 409, /address already in use/);
  isError(await call(base, 'GET', '/proxies/x'), 404, /proxy not found/);
  isError(await call(base, 'POST', '/proxies', '{"name": "x", '), 400, /bad request body/);
  isError(await call(base, 'GET', '/proxies/nope'), 404, /proxy not found/);
  isError(await call(base, 'GET', '/proxies/nope/toxics'), 404, /proxy not found/);

  // Toxics: create (200, Toxiproxy's defaults filled in), conflict, show, update (merge), delete.
  const tox = await call(base, 'POST', '/proxies/made/toxics', { type: 'latency', attributes: { latency: 10 } });
  assert.equal(tox.status, 200, JSON.stringify(tox.body));
  assert.deepEqual(Object.keys(tox.body as object), TOXIC_FIELDS);
  assert.deepEqual(tox.body, { attributes: { latency: 10, jitter: 0 }, name: 'latency_downstream', type: 'latency', stream: 'downstream', toxicity: 1 });
  isError(await call(base, 'POST', '/proxies/made/toxics', { type: 'latency', attributes: { latency: 10 } }), 409, /toxic already exists/);
  // The Go client's AddToxic without a name sends "name": "": the default name, as Toxiproxy.
  isError(await call(base, 'POST', '/proxies/made/toxics', { name: '', type: 'latency', attributes: { latency: 10 } }), 409, /toxic already exists/);
  const list = await call(base, 'GET', '/proxies/made/toxics');
  assert.equal(list.status, 200);
  assert.deepEqual(list.body, [tox.body]);
  const one = await call(base, 'GET', '/proxies/made/toxics/latency_downstream');
  assert.equal(one.status, 200);
  assert.deepEqual(one.body, tox.body);
  isError(await call(base, 'GET', '/proxies/made/toxics/nope'), 404, /toxic not found/);
  const upd = await call(base, 'POST', '/proxies/made/toxics/latency_downstream', { attributes: { jitter: 5 }, toxicity: 0.5 });
  assert.equal(upd.status, 200);
  assert.deepEqual(upd.body, { attributes: { latency: 10, jitter: 5 }, name: 'latency_downstream', type: 'latency', stream: 'downstream', toxicity: 0.5 });
  isError(await call(base, 'POST', '/proxies/made/toxics/nope', { toxicity: 1 }), 404, /toxic not found/);
  const shown = await call(base, 'GET', '/proxies/made');
  assert.deepEqual((shown.body as { toxics: unknown[] }).toxics, [upd.body], 'the proxy shows its toxics');

  // Bad toxics: 400 with the reason, and nothing changes.
  const bad: Array<[unknown, RegExp]> = [
    [{ type: 'earthquake' }, /invalid toxic type/],
    [{ type: 'latency', stream: 'sideways' }, /stream was invalid/],
    [{ type: 'latency', name: 'n1', attributes: { latency: -1 } }, /must not be negative/],
    [{ type: 'latency', name: 'n2', attributes: { latency: 1e20 } }, /too large/],
    [{ type: 'latency', name: 'n3', attributes: { latency: 1.5 } }, /whole number/],
    [{ type: 'bandwidth', name: 'n4', attributes: { rate: '100' } }, /must be a number/],
    [{ type: 'latency', name: 'n5', attributes: { latncy: 1 } }, /unknown attribute "latncy"/],
    [{ type: 'latency', name: 'n6', toxicity: 2 }, /toxicity must be a number from 0 to 1/],
    [{ type: 'slicer', name: 'n7', attributes: { average_size: 10, size_variation: 10 } }, /must be smaller than average_size/],
    [{ type: 'latency', name: 'a/b' }, /URL path segment/],
    ['{"type": "latency"', /bad request body/],
    [[1, 2], /bad request body/],
  ];
  for (const [body, reason] of bad) isError(await call(base, 'POST', '/proxies/made/toxics', body), 400, reason);
  isError(await call(base, 'POST', '/proxies/made/toxics/latency_downstream', { attributes: { latency: -5 } }), 400, /must not be negative/);
  isError(await call(base, 'POST', '/proxies/made/toxics/latency_downstream', { type: 'bandwidth' }), 400, /cannot change/);
  const big = JSON.stringify({ type: 'latency', name: 'x'.repeat(100), pad: 'y'.repeat(100 * 1024) });
  isError(await call(base, 'POST', '/proxies/made/toxics', big), 400, /too large/);
  assert.deepEqual((await call(base, 'GET', '/proxies/made/toxics')).body, [upd.body], 'nothing changed');

  const del = await call(base, 'DELETE', '/proxies/made/toxics/latency_downstream');
  assert.equal(del.status, 204);
  assert.equal(del.body, undefined);
  isError(await call(base, 'DELETE', '/proxies/made/toxics/latency_downstream'), 404, /toxic not found/);

  // Populate: create or keep, 201 {proxies: [...]}.
  const pop = await call(base, 'POST', '/populate', [
    { name: 'made', listen: made.listen, upstream },
    { name: 'pop2', listen: '127.0.0.1:0', upstream },
  ]);
  assert.equal(pop.status, 201, JSON.stringify(pop.body));
  const proxies = (pop.body as { proxies: Array<{ name: string; listen: string }> }).proxies;
  assert.deepEqual(proxies.map((p) => p.name), ['made', 'pop2']);
  assert.equal(proxies[0].listen, made.listen, 'an unchanged proxy is kept as it is');
  for (const p of proxies) assert.deepEqual(Object.keys(p), PROXY_FIELDS);
  isError(await call(base, 'POST', '/populate', [{ name: 'p3', listen: '127.0.0.1:0' }]), 400, /missing required field: upstream at proxy 1/);
  assert.equal((await call(base, 'GET', '/proxies/p3')).status, 404, 'a failed populate made nothing');

  // Update and delete: what the API made it may change; the config file's listeners it may not move.
  isError(await call(base, 'POST', '/proxies/default', { listen: '127.0.0.1:1' }), 409, /config file/);
  isError(await call(base, 'DELETE', '/proxies/default'), 409, /config file/);
  const gone = await call(base, 'DELETE', '/proxies/pop2');
  assert.equal(gone.status, 204);
  isError(await call(base, 'GET', '/proxies/pop2'), 404, /proxy not found/);
  isError(await call(base, 'DELETE', '/proxies/pop2'), 404, /proxy not found/);
  const down = await call(base, 'POST', '/proxies/made', { enabled: false });
  assert.equal(down.status, 200);
  assert.equal((down.body as { enabled: boolean }).enabled, false);

  const reset = await call(base, 'POST', '/reset');
  assert.equal(reset.status, 204);
  assert.equal(((await call(base, 'GET', '/proxies/made')).body as { enabled: boolean }).enabled, true);
  isError(await call(base, 'PUT', '/proxies'), 405);
  isError(await call(base, 'GET', '/nowhere'), 404);
});

test('the fault API keeps the admin rules: loopback Host without a token, bearer token with one, no foreign Origin', async (t) => {
  const backend = await echoServer();
  t.after(() => backend.close());
  const cfg = configFromBackends([`127.0.0.1:${backend.port}`], { accessLog: 'off' });
  cfg.faults = { host: '127.0.0.1', port: 0, token: 's3cret' };
  const proxy = await startProxy(cfg, { logger: silentLogger() });
  t.after(() => proxy.close());
  const api = await startFaultsApi(proxy, cfg.faults);
  t.after(() => api.close());
  isError(await call(api.url, 'GET', '/proxies'), 401);
  isError(await call(api.url, 'GET', '/proxies', undefined, { authorization: 'Bearer wrong' }), 401);
  assert.equal((await call(api.url, 'GET', '/proxies', undefined, { authorization: 'Bearer s3cret' })).status, 200);
  isError(await call(api.url, 'POST', '/reset', undefined, { authorization: 'Bearer s3cret', origin: 'http://evil.example' }), 403);

  const open = await startRig(t, backend.port);
  const foreignHost = await new Promise<number>((resolve, reject) => {
    const u = new URL(open.api.url);
    const req = http.request({ host: u.hostname, port: u.port, path: '/proxies', headers: { host: 'rebind.example:8474' } }, (res) => {
      res.resume();
      resolve(res.statusCode!);
    });
    req.on('error', reject);
    req.end();
  });
  assert.equal(foreignHost, 403, 'a DNS-rebinding Host is refused without a token');
  await assert.rejects(
    startFaultsApi(proxy, { host: '0.0.0.0', port: 0 }),
    /without a token/,
    'off loopback without a token, the API refuses to start',
  );
});

test('faults in the config file: applied at start, replaced by a reload that changes them, API proxies kept over reloads', async (t) => {
  const backend = await echoServer();
  t.after(() => backend.close());
  const raw = (faults: unknown[]) => ({
    faults: { api: '127.0.0.1:0' },
    listeners: [{ name: 'web', listen: '127.0.0.1:0', pool: 'p', faults }],
    pools: [{ name: 'p', backends: [`127.0.0.1:${backend.port}`] }],
    log: { access: 'off' },
  });
  const cfg = normalizeConfig(raw([{ type: 'latency', stream: 'upstream', attributes: { latency: 5 } }]), 'test.yaml');
  assert.deepEqual(cfg.listeners[0].faults, [{ name: 'latency_upstream', type: 'latency', stream: 'upstream', toxicity: 1, attributes: { latency: 5, jitter: 0 } }]);
  const proxy = await startProxy(cfg, { logger: silentLogger() });
  t.after(() => proxy.close());
  const api = await startFaultsApi(proxy, cfg.faults!);
  t.after(() => api.close());
  const toxics = async () => ((await call(api.url, 'GET', '/proxies/web')).body as { toxics: Array<{ name: string }> }).toxics.map((x) => x.name);
  assert.deepEqual(await toxics(), ['latency_upstream']);
  assert.equal((await call(api.url, 'POST', '/proxies', { name: 'side', listen: '127.0.0.1:0', upstream: `127.0.0.1:${backend.port}` })).status, 201);
  await call(api.url, 'POST', '/proxies/web/toxics', { name: 'extra', type: 'slow_close', attributes: { delay: 1 } });

  // The same faults: the table (API changes included) stays.
  await proxy.reload(normalizeConfig(raw([{ type: 'latency', stream: 'upstream', attributes: { latency: 5 } }]), 'test.yaml'));
  assert.deepEqual(await toxics(), ['latency_upstream', 'extra']);
  // Changed faults: the config's replace the table.
  await proxy.reload(normalizeConfig(raw([{ name: 'cut', type: 'limit_data', attributes: { bytes: 3 } }]), 'test.yaml'));
  assert.deepEqual(await toxics(), ['cut']);
  assert.equal(await request(proxy.addresses()[0].port, 'hello'), 'hel', 'the reloaded toxic acts on traffic');
  assert.equal((await call(api.url, 'GET', '/proxies/side')).status, 200, 'the API-made proxy survived the reloads');
  assert.deepEqual(proxy.addresses().map((a) => a.name), ['web', 'side']);
});

test('bad faults in the config are refused with the path and the reason; faults need one process', () => {
  const base = (extra: Record<string, unknown>, listenerFaults?: unknown) => ({
    listeners: [{ listen: '127.0.0.1:0', pool: 'p', ...(listenerFaults !== undefined && { faults: listenerFaults }) }],
    pools: [{ name: 'p', backends: ['127.0.0.1:1'] }],
    ...extra,
  });
  const issues = (raw: unknown): string[] => {
    try {
      normalizeConfig(raw, 'l4lb.yaml');
    } catch (err) {
      if (err instanceof ConfigError) return err.issues.map((i) => `${i.path}: ${i.message}`);
      throw err;
    }
    return [];
  };
  assert.match(issues(base({}, [{ type: 'quake' }])).join('\n'), /listeners\[0\]\.faults\[0\]\.type: invalid toxic type/);
  assert.match(issues(base({}, [{ type: 'latency', attributes: { latency: -3 } }])).join('\n'), /listeners\[0\]\.faults\[0\]\.attributes\.latency: .*must not be negative/);
  assert.match(issues(base({}, [{ type: 'latency' }, { type: 'latency' }])).join('\n'), /listeners\[0\]\.faults\[1\]\.name: duplicate toxic name "latency_downstream"/);
  assert.match(issues(base({ workers: 2, faults: { api: '127.0.0.1:8474' } })).join('\n'), /faults: the fault API runs with one process/);
  assert.match(issues(base({ workers: 2 }, [{ type: 'latency' }])).join('\n'), /listeners\[0\]\.faults: faults run with one process/);
  assert.match(issues(base({ faults: { api: '0.0.0.0:8474' } })).join('\n'), /faults\.token: required when faults\.api is not a loopback address/);
  assert.deepEqual(issues(base({ faults: { api: '127.0.0.1:8474' } }, [{ type: 'bandwidth', attributes: { rate: 10 } }])), []);
});

test('faults in the config act without the fault API; a listener without faults gets no fault table', async (t) => {
  const backend = await echoServer();
  t.after(() => backend.close());
  const cfg = normalizeConfig(
    {
      listeners: [
        { name: 'cut', listen: '127.0.0.1:0', pool: 'p', faults: [{ type: 'limit_data', attributes: { bytes: 2 } }] },
        { name: 'plain', listen: '127.0.0.1:0', pool: 'p' },
      ],
      pools: [{ name: 'p', backends: [`127.0.0.1:${backend.port}`] }],
      log: { access: 'off' },
    },
    'test.yaml',
  );
  const proxy = await startProxy(cfg, { logger: silentLogger() });
  t.after(() => proxy.close());
  const [cut, plain] = proxy.addresses();
  assert.equal(await request(cut.port, 'hello'), 'he');
  assert.equal(await request(plain.port, 'hello'), 'hello');
  assert.notEqual(proxy.listeners.get('cut')!.policy.faults, undefined);
  assert.equal(proxy.listeners.get('plain')!.policy.faults, undefined, 'no table: the relay gets the plain sides');
  const st = proxy.status().listeners;
  assert.equal(st[0].faults?.active, true);
  assert.equal(st[1].faults, undefined);
});
