/**
 * The admin JSON API over real sockets: status content, every action with its answer and
 * its effect on traffic, and the validation errors (400 with a reason, 404, 405, 409).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request, startServer, waitFor } from '../support/net.js';
import { call, enc, holdConnections, startStack, TIMEOUT, namedBackends } from './helpers.js';

test('status lists listeners, pools and backends with state, health, weight, counters and connect latency', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 2 });
  t.after(() => st.close());
  for (let i = 0; i < 4; i++) assert.equal(await request(st.port, 'ping'), 'ping');
  // Byte counters grow as connections close: wait for the proxy to finish all four.
  await waitFor(() => st.proxy.listeners.get('default')!.stats.closed.get('client_closed') === 4, 5000, 'four closed');
  const held = await holdConnections(st.port, 1);
  t.after(() => held.forEach((s) => s.destroy()));
  // Counters include open connections: the held one has sent one byte ('x').
  await waitFor(async () => (await call(st.url, '/api/v1/status')).json.listeners[0].bytesUp === 17, 5000, "the held connection's byte");

  const r = await call(st.url, '/api/v1/status');
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  const s = r.json;
  assert.equal(s.listeners.length, 1);
  const l = s.listeners[0];
  assert.equal(l.name, 'default');
  assert.equal(l.address, `127.0.0.1:${st.port}`);
  assert.equal(l.listening, true);
  assert.equal(l.pool, 'default');
  assert.equal(l.accepted, 5);
  assert.equal(l.active, 1);
  assert.equal(l.bytesUp, 17, '4 closed connections × "ping" + 1 byte of the open one');
  assert.equal(l.closed.client_closed, 4);
  assert.equal(l.connectMs.count, 5);

  assert.equal(s.pools.length, 1);
  const p = s.pools[0];
  assert.equal(p.name, 'default');
  assert.equal(p.balance, 'round-robin');
  assert.equal('healthCheck' in p, false, 'no active check: the key is absent, as admin.md says');
  assert.equal(p.backendsUp, 2);
  assert.deepEqual(p.backends.map((b: { name: string }) => b.name), st.names);
  let total = 0;
  let active = 0;
  let bytesIn = 0;
  for (const b of p.backends) {
    assert.equal(b.state, 'up');
    assert.equal(b.weight, 1);
    assert.equal(b.healthy, true);
    assert.equal(typeof b.connectMsAvg, 'number');
    assert.ok(b.connectMsAvg > 0, 'connect latency is measured');
    total += b.total;
    active += b.active;
    bytesIn += b.bytesIn;
  }
  assert.equal(total, 5);
  assert.equal(active, 1);
  assert.equal(bytesIn, 17);
  assert.equal(s.process.activeConnections, 1);
  assert.equal(s.process.pid, process.pid);
  assert.equal(s.ready.ready, true);
  assert.ok(Array.isArray(s.events));
});

test('drain, disable and enable change the state, answer with it, and steer new connections', TIMEOUT, async (t) => {
  const a = await startServer((s) => s.end('a'));
  const b = await startServer((s) => s.end('b'));
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

  const drained = await call(st.url, '/api/v1/pools/default/backends/b0/drain', { method: 'POST' });
  assert.equal(drained.status, 200);
  assert.equal(drained.json.backend.name, 'b0');
  assert.equal(drained.json.backend.state, 'draining');
  assert.equal(drained.json.pool.backendsUp, 1);
  for (let i = 0; i < 4; i++) assert.equal(await request(st.port, ''), 'b', 'a draining backend takes no new connections');

  const disabled = await call(st.url, '/api/v1/pools/default/backends/b0/disable', { method: 'POST', body: '{}' });
  assert.equal(disabled.status, 200);
  assert.equal(disabled.json.backend.state, 'disabled');
  assert.equal(disabled.json.backend.admin, 'disabled');

  const enabled = await call(st.url, '/api/v1/pools/default/backends/b0/enable', { method: 'POST' });
  assert.equal(enabled.status, 200);
  assert.equal(enabled.json.backend.state, 'up');
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) seen.add(await request(st.port, ''));
  assert.deepEqual([...seen].sort(), ['a', 'b']);

  const status = await call(st.url, '/api/v1/pools/default/backends/b0');
  assert.equal(status.status, 200);
  assert.equal(status.json.state, 'up');
  const events = (await call(st.url, '/api/v1/status')).json.events as Array<{ backend?: string; message: string }>;
  assert.ok(events.some((e) => e.backend === 'b0' && /draining/.test(e.message)), 'the drain is in recent events');
});

test('weight sets the configured weight and weighted balancing follows it', TIMEOUT, async (t) => {
  const a = await startServer((s) => s.end('a'));
  const b = await startServer((s) => s.end('b'));
  const st = await startStack({
    backends: 0,
    tweak: (cfg) => {
      cfg.pools[0].balance = 'weighted-round-robin';
      cfg.pools[0].backends = namedBackends([a, b]);
    },
  });
  t.after(async () => {
    await st.close();
    await a.close();
    await b.close();
  });
  const r = await call(st.url, '/api/v1/pools/default/backends/b1/weight', { method: 'POST', body: '{"weight":3}' });
  assert.equal(r.status, 200);
  assert.equal(r.json.backend.weight, 3);
  const counts: Record<string, number> = { a: 0, b: 0 };
  for (let i = 0; i < 8; i++) counts[await request(st.port, '')]++;
  assert.deepEqual(counts, { a: 2, b: 6 });
});

test('a backend can be added and removed, and traffic follows', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1 });
  const c = await startServer((s) => s.end('c'));
  t.after(async () => {
    await st.close();
    await c.close();
  });
  const add = await call(st.url, '/api/v1/pools/default/backends', {
    method: 'POST',
    body: JSON.stringify({ address: `127.0.0.1:${c.port}`, name: 'c', weight: 2 }),
  });
  assert.equal(add.status, 201);
  assert.equal(add.json.backend.name, 'c');
  assert.equal(add.json.backend.address, `127.0.0.1:${c.port}`);
  assert.equal(add.json.backend.weight, 2);
  assert.equal(add.json.pool.backends.length, 2);
  const replies = new Set<string>();
  for (let i = 0; i < 4; i++) replies.add(await request(st.port, 'x'));
  assert.ok(replies.has('c'), 'the added backend takes connections');

  const dup = await call(st.url, '/api/v1/pools/default/backends', { method: 'POST', body: JSON.stringify({ address: `127.0.0.1:${c.port}`, name: 'c' }) });
  assert.equal(dup.status, 409);
  assert.equal(dup.json.error, 'duplicate_backend');

  const del = await call(st.url, `/api/v1/pools/default/backends/${enc(st.names[0])}`, { method: 'DELETE' });
  assert.equal(del.status, 200);
  assert.equal(del.json.removed, st.names[0]);
  assert.deepEqual(del.json.pool.backends.map((b: { name: string }) => b.name), ['c']);
  for (let i = 0; i < 3; i++) assert.equal(await request(st.port, 'x'), 'c');

  const last = await call(st.url, '/api/v1/pools/default/backends/c/remove', { method: 'POST' });
  assert.equal(last.status, 409);
  assert.equal(last.json.error, 'last_backend');
});

test('a removed backend keeps its open connections until they close', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 2 });
  t.after(() => st.close());
  const held = await holdConnections(st.port, 2);
  t.after(() => held.forEach((s) => s.destroy()));
  const r = await call(st.url, `/api/v1/pools/default/backends/${enc(st.names[0])}`, { method: 'DELETE' });
  assert.equal(r.status, 200);
  // Both held connections still echo.
  for (const s of held) {
    const got = new Promise<string>((resolve) => s.once('data', (c: Buffer) => resolve(c.toString())));
    s.write('still');
    assert.equal(await got, 'still');
  }
});

test('bad requests get 400 with a reason, unknown names 404, wrong methods 405', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 2 });
  t.after(() => st.close());
  const b0 = enc(st.names[0]);
  const cases: Array<[string, string, string | undefined, number, string]> = [
    ['POST', `/api/v1/pools/default/backends/${b0}/weight`, '{"weight":0}', 400, 'bad_weight'],
    ['POST', `/api/v1/pools/default/backends/${b0}/weight`, '{"weight":-2}', 400, 'bad_weight'],
    ['POST', `/api/v1/pools/default/backends/${b0}/weight`, '{"weight":"3"}', 400, 'bad_weight'],
    ['POST', `/api/v1/pools/default/backends/${b0}/weight`, '{"weight":1e9}', 400, 'bad_weight'],
    ['POST', `/api/v1/pools/default/backends/${b0}/weight`, '{}', 400, 'missing_field'],
    ['POST', `/api/v1/pools/default/backends/${b0}/weight`, undefined, 400, 'missing_field'],
    ['POST', `/api/v1/pools/default/backends/${b0}/weight`, '{"weight":2,"extra":1}', 400, 'unknown_field'],
    ['POST', `/api/v1/pools/default/backends/${b0}/weight`, '{"weight":', 400, 'bad_json'],
    ['POST', `/api/v1/pools/default/backends/${b0}/drain`, '[1]', 400, 'bad_body'],
    ['POST', `/api/v1/pools/default/backends/${b0}/drain`, '{"now":true}', 400, 'unknown_field'],
    ['POST', '/api/v1/pools/default/backends', '{"address":"nonsense"}', 400, 'bad_address'],
    ['POST', '/api/v1/pools/default/backends', '{"address":"127.0.0.1:0"}', 400, 'bad_address'],
    ['POST', '/api/v1/pools/default/backends', '{"name":"x"}', 400, 'missing_field'],
    ['POST', '/api/v1/pools/default/backends', '{"address":"127.0.0.1:1","name":"a b"}', 400, 'bad_name'],
    ['POST', '/api/v1/pools/default/backends', '{"address":"127.0.0.1:1","state":"off"}', 400, 'bad_state'],
    ['POST', '/api/v1/pools/default/backends', '{"address":"127.0.0.1:1","maxConnections":1.5}', 400, 'bad_max_connections'],
    ['POST', '/api/v1/pools/default/backends', undefined, 400, 'missing_body'],
    ['POST', '/api/v1/pools/nope/backends/x/drain', undefined, 404, 'unknown_pool'],
    ['POST', '/api/v1/pools/default/backends/nope/drain', undefined, 404, 'unknown_backend'],
    ['POST', '/api/v1/pools/default/backends/nope/weight', '{"weight":2}', 404, 'unknown_backend'],
    ['DELETE', '/api/v1/pools/default/backends/nope', undefined, 404, 'unknown_backend'],
    ['POST', '/api/v1/pools/nope/backends', '{"address":"127.0.0.1:1"}', 404, 'unknown_pool'],
    ['GET', '/api/v1/pools/nope', undefined, 404, 'unknown_pool'],
    ['GET', '/api/v1/pools/default/backends/nope', undefined, 404, 'unknown_backend'],
    ['POST', `/api/v1/pools/default/backends/${b0}/explode`, undefined, 404, 'not_found'],
    ['GET', '/api/v1/nothing-here', undefined, 404, 'not_found'],
    ['GET', `/api/v1/pools/default/backends/${b0}/drain`, undefined, 405, 'method_not_allowed'],
    ['GET', `/api/v1/pools/default/backends/${b0}/weight`, undefined, 405, 'method_not_allowed'],
    ['PUT', '/api/v1/pools/default/backends', undefined, 405, 'method_not_allowed'],
    ['POST', '/api/v1/status', undefined, 405, 'method_not_allowed'],
    ['POST', '/metrics', undefined, 405, 'method_not_allowed'],
  ];
  for (const [method, path, body, status, reason] of cases) {
    const r = await call(st.url, path, { method, body });
    assert.equal(r.status, status, `${method} ${path} ${body ?? ''}: ${r.text}`);
    assert.equal(r.json?.error, reason, `${method} ${path} ${body ?? ''}`);
    assert.equal(typeof r.json?.message, 'string');
    if (status === 405) assert.match(String(r.headers.allow), /POST|GET/);
  }
  // Nothing above changed anything.
  const s = (await call(st.url, '/api/v1/status')).json;
  assert.deepEqual(
    s.pools[0].backends.map((b: { name: string; state: string; weight: number }) => [b.name, b.state, b.weight]),
    st.names.map((n) => [n, 'up', 1]),
  );
});

test('an oversized body is refused with 400 and a reason', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1 });
  t.after(() => st.close());
  const big = JSON.stringify({ weight: 2, pad: 'x'.repeat(100 * 1024) });
  const r = await call(st.url, `/api/v1/pools/default/backends/${enc(st.names[0])}/weight`, { method: 'POST', body: big });
  assert.equal(r.status, 400);
  assert.equal(r.json.error, 'body_too_large');
  assert.match(r.json.message, /65536 bytes/);
  const s = (await call(st.url, '/api/v1/status')).json;
  assert.equal(s.pools[0].backends[0].weight, 1);
});

test('the event stream sends a status and rates snapshot, then one every tick', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1, admin: { tickMs: 100 } });
  t.after(() => st.close());
  const ac = new AbortController();
  t.after(() => ac.abort());
  const res = await fetch(`${st.url}/api/v1/events`, { signal: ac.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = res.body!.getReader();
  const frames: Array<{ status: { pools: unknown[] }; rates: unknown; history?: unknown[] }> = [];
  let buf = '';
  await waitFor(async () => {
    const { value } = await reader.read();
    buf += Buffer.from(value ?? new Uint8Array()).toString();
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const frame = buf.slice(0, i);
      buf = buf.slice(i + 2);
      const data = frame.split('\n').find((l) => l.startsWith('data: '));
      if (data && frame.includes('event: snapshot')) frames.push(JSON.parse(data.slice(6)));
    }
    return frames.length >= 3;
  }, 5000, 'three snapshots');
  assert.ok(Array.isArray(frames[0].history), 'the first frame carries the rate history');
  assert.equal(frames[0].status.pools.length, 1);
  assert.ok(frames[2].rates, 'later frames carry the latest rates');
  ac.abort();
});
