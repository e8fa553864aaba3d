/**
 * GET /metrics after real traffic: the documented names, with values that match what the
 * test did (connections made, bytes sent, retries, rejections, states, reloads).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MetricNames } from '../../src/observability/metric-names.js';
import { refusedPort, request, ROOT, startServer, waitFor, type TestServer } from '../support/net.js';
import { call, enc, holdConnections, startStack, type Stack, TIMEOUT, namedBackends } from './helpers.js';

/** Parses the text format into `name{labels}` → value (labels in the order printed). */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

async function scrape(st: Stack): Promise<Map<string, number>> {
  const r = await call(st.url, '/metrics');
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return parseMetrics(r.text);
}

/** An echo backend that counts the bytes it receives. */
async function countingEcho(): Promise<TestServer & { received: () => number }> {
  let received = 0;
  const s = await startServer((sock) => {
    sock.on('data', (c: Buffer) => (received += c.length));
    sock.pipe(sock);
  });
  return Object.assign(s, { received: () => received });
}

test('metrics count accepted connections, closes, bytes per listener and per backend, and connect times', TIMEOUT, async (t) => {
  const a = await countingEcho();
  const b = await countingEcho();
  const st = await startStack({
    backends: 0,
    tweak: (cfg) => {
      cfg.pools[0].backends = namedBackends([a, b]);
    },
  });
  t.after(async () => {
    await st.close();
    await a.close();
    await b.close();
  });
  const sizes = [10, 200, 3000, 7, 4096];
  for (const n of sizes) assert.equal((await request(st.port, 'z'.repeat(n))).length, n);
  await waitFor(() => st.proxy.listeners.get('default')!.stats.closed.get('client_closed') === sizes.length, 5000, 'all closed');

  const m = await scrape(st);
  const total = sizes.reduce((x, y) => x + y, 0);
  assert.equal(m.get('l4lb_connections_accepted_total{listener="default"}'), sizes.length);
  assert.equal(m.get('l4lb_connections_active{listener="default"}'), 0);
  assert.equal(m.get('l4lb_connections_closed_total{listener="default",reason="client_closed"}'), sizes.length);
  assert.equal(m.get('l4lb_listener_bytes_total{listener="default",direction="up"}'), total);
  assert.equal(m.get('l4lb_listener_bytes_total{listener="default",direction="down"}'), total);
  for (const [name, server] of [['b0', a], ['b1', b]] as const) {
    assert.equal(m.get(`l4lb_backend_bytes_total{pool="default",backend="${name}",direction="up"}`), server.received(), `${name} bytes up`);
    assert.equal(m.get(`l4lb_backend_bytes_total{pool="default",backend="${name}",direction="down"}`), server.received(), `${name} bytes down`);
    assert.equal(m.get(`l4lb_backend_connections_total{pool="default",backend="${name}"}`), server.accepted, `${name} connections`);
    assert.equal(m.get(`l4lb_backend_up{pool="default",backend="${name}"}`), 1);
    assert.equal(m.get(`l4lb_backend_state{pool="default",backend="${name}",state="up"}`), 1);
    assert.equal(m.get(`l4lb_backend_state{pool="default",backend="${name}",state="draining"}`), 0);
    assert.equal(m.get(`l4lb_backend_weight{pool="default",backend="${name}"}`), 1);
    assert.ok(m.get(`l4lb_backend_connect_average_seconds{pool="default",backend="${name}"}`)! > 0);
  }
  assert.equal(a.received() + b.received(), total);
  assert.equal(m.get('l4lb_connect_duration_seconds_count{listener="default"}'), sizes.length);
  assert.equal(m.get('l4lb_connect_duration_seconds_bucket{listener="default",le="+Inf"}'), sizes.length);
  assert.ok(m.get('l4lb_connect_duration_seconds_sum{listener="default"}')! > 0);
  // Buckets are cumulative.
  const buckets = [...m].filter(([k]) => k.startsWith('l4lb_connect_duration_seconds_bucket')).map(([, v]) => v);
  assert.deepEqual(buckets, [...buckets].sort((x, y) => x - y));
  assert.equal(m.get('l4lb_pool_backends_up{pool="default"}'), 2);
  assert.equal(m.get('l4lb_pool_backends{pool="default"}'), 2);
  assert.equal(m.get('l4lb_accept_errors_total'), 0);
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  assert.equal(m.get(`l4lb_info{version="${version}"}`), 1);
  assert.ok([...m.keys()].some((k) => k.startsWith('process_cpu_seconds_total')), 'process metrics');
  assert.ok([...m.keys()].some((k) => k.startsWith('nodejs_heap_size_used_bytes')), 'Node.js runtime metrics');
});

test('metrics follow active connections, states, admin actions and reloads', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 2 });
  t.after(() => st.close());
  const held = await holdConnections(st.port, 3);
  t.after(() => held.forEach((s) => s.destroy()));
  let m = await scrape(st);
  assert.equal(m.get('l4lb_connections_active{listener="default"}'), 3);
  const perBackend = st.names.map((n) => m.get(`l4lb_backend_connections_active{pool="default",backend="${n}"}`)!);
  assert.equal(perBackend[0] + perBackend[1], 3);

  // (A reload re-applies the config's backend states, so it goes first.)
  await st.proxy.reload(st.proxy.config);
  const r = await call(st.url, `/api/v1/pools/default/backends/${enc(st.names[0])}/drain`, { method: 'POST' });
  assert.equal(r.status, 200);
  await call(st.url, '/api/v1/pools/default/backends/nope/drain', { method: 'POST' });
  m = await scrape(st);
  const b0 = `pool="default",backend="${st.names[0]}"`;
  assert.equal(m.get(`l4lb_backend_up{${b0}}`), 0);
  assert.equal(m.get(`l4lb_backend_state{${b0},state="draining"}`), 1);
  assert.equal(m.get(`l4lb_backend_state{${b0},state="up"}`), 0);
  assert.equal(m.get('l4lb_pool_backends_up{pool="default"}'), 1);
  assert.equal(m.get('l4lb_admin_actions_total{action="set-state",status="200"}'), 1);
  assert.equal(m.get('l4lb_admin_actions_total{action="set-state",status="404"}'), 1);
  assert.equal(m.get('l4lb_config_reloads_total{result="success"}'), 1);
  assert.equal(m.get('l4lb_config_reloads_total{result="failure"}'), 0);
});

test('metrics count retries, connect failures and rejections by reason', TIMEOUT, async (t) => {
  const dead = await refusedPort();
  const st = await startStack({
    backends: 1,
    tweak: (cfg) => {
      cfg.pools[0].backends.unshift({ name: 'dead', host: '127.0.0.1', port: dead, weight: 1, backup: false, state: 'enabled', maxConnections: 0, check: true });
      cfg.listeners[0].maxConnections = 1;
    },
  });
  t.after(() => st.close());
  for (let i = 0; i < 4; i++) assert.equal(await request(st.port, 'hi'), 'hi');
  const held = await holdConnections(st.port, 1);
  t.after(() => held.forEach((s) => s.destroy()));
  // Over the listener's limit of 1: refused at admission.
  const refused = await request(st.port, 'x').catch(() => '');
  assert.equal(refused, '');
  await waitFor(() => (st.proxy.listeners.get('default')!.stats.rejected.get('listener_limit') ?? 0) === 1, 5000, 'rejection counted');

  const m = await scrape(st);
  const failures = m.get('l4lb_backend_connect_failures_total{pool="default",backend="dead"}')!;
  assert.ok(failures >= 1, 'round robin sent some connections to the dead backend first');
  assert.equal(m.get('l4lb_connect_retries_total{listener="default"}'), failures, 'each failure was retried on the live backend');
  assert.equal(m.get('l4lb_connections_rejected_total{listener="default",reason="listener_limit"}'), 1);
  assert.equal(m.get('l4lb_connections_accepted_total{listener="default"}'), 6);
});

test('metrics show a pool queue filling, overflowing and timing out, and connections held over a listener limit', TIMEOUT, async (t) => {
  const st = await startStack({
    backends: 1,
    tweak: (cfg) => {
      cfg.pools[0].backends[0].maxConnections = 1;
      cfg.pools[0].queue = { size: 1, timeoutMs: 400 };
    },
  });
  t.after(() => st.close());
  const q = (name: string) => `${name}{pool="default"}`;
  const first = await holdConnections(st.port, 1);
  t.after(() => first.forEach((s) => s.destroy()));
  // The backend is full: the next client waits in the queue, the one after finds it full.
  const waiting = net.connect({ port: st.port, host: '127.0.0.1' });
  waiting.on('error', () => {});
  t.after(() => waiting.destroy());
  await waitFor(() => st.proxy.backendQueue(st.proxy.pools.get('default')!)!.length === 1, 5000, 'a client waiting');
  let m = await scrape(st);
  assert.equal(m.get(q('l4lb_pool_queue_waiting')), 1);
  assert.equal(m.get(q('l4lb_pool_queued_total')), 1);
  assert.equal(await request(st.port, 'x').catch(() => ''), '', 'the queue is full: closed');
  // The waiting client gives up after the queue timeout.
  await once(waiting, 'close');
  m = await scrape(st);
  assert.equal(m.get(q('l4lb_pool_queue_waiting')), 0);
  assert.equal(m.get(q('l4lb_pool_queued_total')), 1);
  assert.equal(m.get(q('l4lb_pool_queue_overflows_total')), 1);
  assert.equal(m.get(q('l4lb_pool_queue_timeouts_total')), 1);
  assert.equal(m.get('l4lb_connections_held'), 0);

  // Over a listener limit with overLimit: queue, a client is held (unread) until a slot frees.
  const cfg = structuredClone(st.proxy.config);
  cfg.pools[0].queue = { size: 0, timeoutMs: 400 };
  cfg.listeners[0].maxConnections = 1;
  cfg.listeners[0].overLimit = 'queue';
  await st.proxy.reload(cfg);
  const held = net.connect({ port: st.port, host: '127.0.0.1' });
  held.on('error', () => {});
  t.after(() => held.destroy());
  await waitFor(() => st.proxy.heldConnections === 1, 5000, 'a client held');
  assert.equal((await scrape(st)).get('l4lb_connections_held'), 1);
  first.forEach((s) => s.destroy());
  await waitFor(() => st.proxy.heldConnections === 0, 5000, 'the held client served');
  assert.equal((await scrape(st)).get('l4lb_connections_held'), 0);
  assert.equal(m.get('l4lb_fd_exhausted_total'), 0);
});

test('every metric name is documented in docs/metrics.md, and /metrics exports no undocumented l4lb metric', TIMEOUT, async (t) => {
  const doc = readFileSync(join(ROOT, 'docs', 'metrics.md'), 'utf8');
  const names = Object.values(MetricNames);
  assert.equal(new Set(names).size, names.length, 'names are unique');
  for (const name of names) {
    assert.match(name, /^l4lb_[a-z_]+$/);
    assert.ok(doc.includes(`\`${name}\``), `${name} is documented in docs/metrics.md`);
  }
  const st = await startStack({ backends: 1 });
  t.after(() => st.close());
  await call(st.url, `/api/v1/pools/default/backends/${enc(st.names[0])}/enable`, { method: 'POST' });
  const text = (await call(st.url, '/metrics')).text;
  const exported = new Set(
    [...text.matchAll(/^# TYPE (l4lb_\S+) /gm)].map((x) => x[1]),
  );
  assert.deepEqual([...exported].sort(), [...names].sort());
});
