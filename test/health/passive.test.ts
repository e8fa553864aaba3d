/**
 * @module test/health/passive — passive health (Pool.recordConnectResult): ejection after
 * consecutive connect failures, growing backoff, reset on success, and how active checks
 * lift an ejection.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ActiveHealthChecker } from '../../src/health/active.js';
import type { Backend } from '../../src/proxy/backend.js';
import type { Pool } from '../../src/proxy/pool.js';
import { silentLogger } from '../../src/observability/log.js';
import { TestBackend, backendConfig, freePort, healthConfig, makePool, waitFor } from './helpers.js';

const CTX = { clientAddress: '127.0.0.1', clientPort: 40000 };

/** Records one failed connect and returns the ejection time it started, bounded by the
 * clock before and after the call (0 when it did not eject). */
function fail(pool: Pool, b: Backend): { min: number; max: number } {
  const before = Date.now();
  const ejectionsBefore = b.ejections;
  pool.recordConnectResult(b, false, 0);
  const after = Date.now();
  if (b.ejections === ejectionsBefore) return { min: 0, max: 0 };
  return { min: b.ejectedUntil - after, max: b.ejectedUntil - before };
}

function assertEjectedFor(got: { min: number; max: number }, ms: number): void {
  assert.ok(got.min <= ms && ms <= got.max, `ejected for ${ms}ms (got between ${got.min} and ${got.max})`);
}

function passivePool(ports: number[]): Pool {
  return makePool(
    ports.map((port, i) => backendConfig(`b${i}`, port)),
    undefined,
    { passive: { consecutiveFailures: 3, baseEjectionMs: 100, maxEjectionMs: 350 } },
  );
}

test('consecutive connect failures eject a backend, with a backoff that doubles per ejection up to the max', async () => {
  const pool = passivePool([1, 2]);
  const changes: string[] = [];
  pool.onStateChange = (b, reason) => changes.push(`${b.name}: ${reason}`);
  const [b0] = pool.backends;

  assert.equal(fail(pool, b0).max, 0);
  assert.equal(fail(pool, b0).max, 0);
  assert.equal(b0.isAvailable(), true, 'two failures do not eject with a threshold of 3');
  assertEjectedFor(fail(pool, b0), 100);
  assert.equal(b0.state(), 'down');
  assert.equal(b0.isAvailable(), false);
  assert.deepEqual(changes, ['b0: ejected for 100ms after 3 consecutive connect failures']);
  for (let i = 0; i < 4; i++) assert.equal(pool.pick(CTX, [])?.name, 'b1', 'the ejected backend is skipped');

  await waitFor(() => b0.isAvailable(), 'the ejection to end', 2000);
  assert.equal(b0.state(), 'up');

  // Back on probation: a single failure ejects again, each time for twice as long, capped.
  assertEjectedFor(fail(pool, b0), 200);
  assertEjectedFor(fail(pool, b0), 350);
  assertEjectedFor(fail(pool, b0), 350);
  assert.equal(b0.ejections, 4);
});

test('a successful connect resets both the failure streak and the backoff', () => {
  const pool = passivePool([1]);
  const [b] = pool.backends;
  fail(pool, b);
  fail(pool, b);
  pool.recordConnectResult(b, true, 1);
  assert.equal(fail(pool, b).max, 0, 'the streak restarted');
  assert.equal(fail(pool, b).max, 0);
  assertEjectedFor(fail(pool, b), 100);
  assertEjectedFor(fail(pool, b), 200);

  pool.recordConnectResult(b, true, 1);
  assert.equal(b.ejections, 0);
  assert.equal(b.consecutiveFailures, 0);
  assert.equal(fail(pool, b).max, 0, 'after a success it takes the full threshold again');
  assert.equal(fail(pool, b).max, 0);
  assertEjectedFor(fail(pool, b), 100);
  assert.equal(b.failures, 9, 'every failure is counted');
});

test('a threshold of 0 disables passive ejection', () => {
  const pool = makePool([backendConfig('a', 1)], undefined, { passive: { consecutiveFailures: 0, baseEjectionMs: 100, maxEjectionMs: 100 } });
  const [b] = pool.backends;
  for (let i = 0; i < 20; i++) pool.recordConnectResult(b, false, 0);
  assert.equal(b.ejectedUntil, 0);
  assert.equal(b.isAvailable(), true);
});

test('an active check success lifts a passive ejection after rise successes', async (t) => {
  const server = await TestBackend.start();
  t.after(() => server.close());
  const pool = makePool([backendConfig('a', server.port)], healthConfig({ intervalMs: 30, rise: 2 }), {
    passive: { consecutiveFailures: 2, baseEjectionMs: 60_000, maxEjectionMs: 300_000 },
  });
  const checks: boolean[] = [];
  const changes: string[] = [];
  pool.onStateChange = (_b, reason) => changes.push(reason);
  const checker = new ActiveHealthChecker(pool, silentLogger(), { onCheck: (_b, ok) => checks.push(ok) });
  checker.start();
  t.after(() => checker.stop());
  const [b] = pool.backends;
  await waitFor(() => checks.length >= 3, 'a few passing checks');

  const ejectedAt = Date.now();
  pool.recordConnectResult(b, false, 0);
  pool.recordConnectResult(b, false, 0);
  assert.ok(b.ejectedUntil > ejectedAt + 50_000, 'ejected for a minute');
  const checksAtEjection = checks.length;

  await waitFor(() => b.isAvailable(), 'the active check to lift the ejection', 5000);
  assert.ok(checks.length - checksAtEjection >= 2, 'the passes before the ejection did not count: rise passes after it did');
  assert.equal(b.ejectedUntil, 0);
  assert.equal(b.ejections, 0);
  assert.equal(b.consecutiveFailures, 0);
  assert.ok(b.upSince >= ejectedAt, 'the slow-start ramp restarts');
  assert.equal(changes.length, 2);
  assert.match(changes[1], /^ejection lifted: health check passed 2 time\(s\) in a row$/);
});

test('a backend coming up through the active check is cleared of a passive ejection', async (t) => {
  const port = await freePort();
  const pool = makePool([backendConfig('a', port)], healthConfig({ intervalMs: 30, rise: 2, fall: 2 }), {
    passive: { consecutiveFailures: 1, baseEjectionMs: 60_000, maxEjectionMs: 300_000 },
  });
  const checker = new ActiveHealthChecker(pool, silentLogger());
  checker.start();
  t.after(() => checker.stop());
  const [b] = pool.backends;
  await waitFor(() => !b.healthy, 'the backend to go down (nothing listens)');
  pool.recordConnectResult(b, false, 0);
  pool.recordConnectResult(b, false, 0);
  assert.equal(b.ejections, 2);

  const server = await TestBackend.start(undefined, port);
  t.after(() => server.close());
  await waitFor(() => b.healthy, 'the backend to come up');
  assert.equal(b.ejectedUntil, 0);
  assert.equal(b.ejections, 0);
  assert.equal(b.isAvailable(), true);
});
