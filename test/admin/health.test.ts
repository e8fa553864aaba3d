/**
 * /healthz, /readyz, and the health details the status shows (last check, last error,
 * state changes in recent events) with a real active health check.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refusedPort, waitFor } from '../support/net.js';
import { call, enc, startStack, TIMEOUT } from './helpers.js';

test('/healthz answers 200 while the process is alive', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1 });
  t.after(() => st.close());
  const r = await call(st.url, '/healthz');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { status: 'ok' });
  const head = await call(st.url, '/healthz', { method: 'HEAD' });
  assert.equal(head.status, 200);
  assert.equal(head.text, '');
});

test('/readyz is 503 with the reason when every backend of a pool is disabled, 200 again once one is back', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 2 });
  t.after(() => st.close());
  let r = await call(st.url, '/readyz');
  assert.equal(r.status, 200);
  assert.deepEqual(r.json, { ready: true, reasons: [] });

  for (const n of st.names) {
    assert.equal((await call(st.url, `/api/v1/pools/default/backends/${enc(n)}/disable`, { method: 'POST' })).status, 200);
  }
  r = await call(st.url, '/readyz');
  assert.equal(r.status, 503);
  assert.equal(r.json.ready, false);
  assert.equal(r.json.reasons.length, 1);
  assert.match(r.json.reasons[0], /pool "default" has no backend up/);
  assert.match(r.json.reasons[0], /disabled/);

  assert.equal((await call(st.url, `/api/v1/pools/default/backends/${enc(st.names[1])}/enable`, { method: 'POST' })).status, 200);
  r = await call(st.url, '/readyz');
  assert.equal(r.status, 200);
});

test('/readyz is 503 once a listener stops accepting', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 1 });
  t.after(() => st.close());
  await st.proxy.listeners.get('default')!.stopAccepting();
  const r = await call(st.url, '/readyz');
  assert.equal(r.status, 503);
  assert.match(r.json.reasons.join('\n'), /listener "default" is not accepting connections/);
});

test('a backend failing its health check shows as down with last check, last error and an event', TIMEOUT, async (t) => {
  const dead = await refusedPort();
  const st = await startStack({
    backends: 1,
    tweak: (cfg) => {
      cfg.pools[0].backends.push({ name: 'dead', host: '127.0.0.1', port: dead, weight: 1, backup: false, state: 'enabled', maxConnections: 0, check: true });
      cfg.pools[0].healthCheck = { type: 'tcp', intervalMs: 50, timeoutMs: 50, rise: 1, fall: 1, jitter: 0 };
    },
  });
  t.after(() => st.close());
  let dd: { state: string; lastCheckAt?: number; lastCheckOk?: boolean; lastError?: string } | undefined;
  await waitFor(async () => {
    const s = (await call(st.url, '/api/v1/status')).json;
    dd = s.pools[0].backends.find((b: { name: string }) => b.name === 'dead');
    const up = s.pools[0].backends.find((b: { name: string }) => b.name !== 'dead');
    return dd?.state === 'down' && up?.lastCheckOk === true;
  }, 5000, 'the dead backend to go down and the live one to pass a check');
  assert.equal(typeof dd!.lastCheckAt, 'number');
  assert.equal(dd!.lastCheckOk, false);
  assert.match(dd!.lastError ?? '', /refused|ECONNREFUSED/i);
  const s = (await call(st.url, '/api/v1/status')).json;
  const live = s.pools[0].backends.find((b: { name: string }) => b.name === st.names[0]);
  assert.equal(live.state, 'up');
  assert.equal(live.lastCheckOk, true);
  assert.equal(s.pools[0].healthCheck, 'tcp');
  const ev = s.events.find((e: { backend?: string; level: string }) => e.backend === 'dead' && e.level === 'warn');
  assert.ok(ev, 'the state change is in recent events');
  assert.match(ev.message, /^down: health check failed/);
  assert.equal((await call(st.url, '/readyz')).status, 200, 'one backend up is enough');
});
