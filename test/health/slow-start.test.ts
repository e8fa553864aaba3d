/**
 * @module test/health/slow-start — a backend coming (back) up ramps its effective weight
 * from 10% to 100% over slowStartMs, driven by the active checker setting `upSince`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ActiveHealthChecker } from '../../src/health/active.js';
import type { Backend } from '../../src/proxy/backend.js';
import { silentLogger } from '../../src/observability/log.js';
import { TestBackend, backendConfig, healthConfig, makePool, sleep, waitFor } from './helpers.js';

const SLOW_START_MS = 1500;
const WEIGHT = 10;

/** The ramp Backend.weight documents: 10% at the start, linear to 100%. */
function expectedWeight(elapsedMs: number): number {
  return WEIGHT * (0.1 + 0.9 * Math.min(Math.max(elapsedMs, 0) / SLOW_START_MS, 1));
}

/** Reads the weight and checks it against the ramp, bounded by the clock around the read. */
function sampleWeight(b: Backend, since: number): number {
  const before = Date.now();
  const w = b.weight;
  const after = Date.now();
  const lo = expectedWeight(before - since);
  const hi = expectedWeight(after - since);
  assert.ok(w >= lo - 1e-9 && w <= hi + 1e-9, `weight ${w} within [${lo}, ${hi}]`);
  return w;
}

test('after coming back up a backend ramps from 10% to 100% of its weight over slowStartMs', async (t) => {
  const server = await TestBackend.start();
  t.after(() => server.close());
  const pool = makePool([backendConfig('a', server.port, { weight: WEIGHT })], healthConfig({ intervalMs: 30, rise: 2, fall: 2 }), {
    slowStartMs: SLOW_START_MS,
  });
  const [b] = pool.backends;
  assert.equal(b.weight, WEIGHT, 'no slow start for a backend present at start');

  let firstSample = -1;
  pool.onStateChange = (backend) => {
    if (backend.healthy) firstSample = sampleWeight(backend, backend.upSince);
  };
  const checker = new ActiveHealthChecker(pool, silentLogger());
  checker.start();
  t.after(() => checker.stop());

  await server.close();
  await waitFor(() => !b.healthy, 'a to go down');
  await server.relisten();
  await waitFor(() => b.healthy, 'a to come back');
  assert.ok(firstSample >= WEIGHT * 0.1 && firstSample < WEIGHT * 0.2, `starts near 10%: ${firstSample}`);

  await sleep(400);
  const mid = sampleWeight(b, b.upSince);
  assert.ok(mid > WEIGHT * 0.1 && mid < WEIGHT, `part way up: ${mid}`);

  await waitFor(() => Date.now() - b.upSince > SLOW_START_MS, 'the ramp to end', 5000);
  assert.equal(b.weight, WEIGHT);
});

test('a backend added after start ramps up once it joins', async (t) => {
  const a = await TestBackend.start();
  const c = await TestBackend.start();
  t.after(() => a.close());
  t.after(() => c.close());
  const pool = makePool([backendConfig('a', a.port, { weight: WEIGHT })], healthConfig({ intervalMs: 30 }), { slowStartMs: SLOW_START_MS });
  const checker = new ActiveHealthChecker(pool, silentLogger());
  checker.start();
  t.after(() => checker.stop());

  pool.setBackends([backendConfig('a', a.port, { weight: WEIGHT }), backendConfig('c', c.port, { weight: WEIGHT })]);
  const added = pool.find('c');
  assert.ok(added);
  await waitFor(() => added.healthy, 'c to join');
  const w = sampleWeight(added, added.upSince);
  assert.ok(w < WEIGHT * 0.5, `c starts low: ${w}`);
  assert.equal(pool.find('a')?.weight, WEIGHT, 'a keeps its full weight');
});

test('the end of a passive ejection restarts the ramp too', async () => {
  const pool = makePool([backendConfig('a', 1, { weight: WEIGHT })], undefined, {
    slowStartMs: SLOW_START_MS,
    passive: { consecutiveFailures: 1, baseEjectionMs: 100, maxEjectionMs: 100 },
  });
  const [b] = pool.backends;
  pool.recordConnectResult(b, false, 0);
  const end = b.ejectedUntil;
  await waitFor(() => b.isAvailable(), 'the ejection to end', 2000);
  const w = sampleWeight(b, end);
  assert.ok(w < WEIGHT * 0.5, `low weight right after the ejection: ${w}`);
});
