/**
 * @module test/health/active — the active health checker against real loopback backends
 * and a real Pool: rise/fall, send-expect, no thrashing, jitter, added/removed backends,
 * config changes and clean shutdown.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { ActiveHealthChecker, firstCheckDelay, nextCheckDelay, resolveHealthSettings } from '../../src/health/active.js';
import type { Backend } from '../../src/proxy/backend.js';
import type { Pool } from '../../src/proxy/pool.js';
import { silentLogger } from '../../src/observability/log.js';
import { TestBackend, backendConfig, healthConfig, makePool, sleep, waitFor } from './helpers.js';

/** What a checker did, as seen through its hooks. */
interface Recorder {
  checks: { backend: string; ok: boolean; reason: string | undefined; at: number }[];
  changes: { backend: string; healthy: boolean; reason: string; trailing: number }[];
}

/** Starts a checker on `pool`, recording every check and state change; stopped by t.after. */
function startChecker(t: { after: (fn: () => void) => void }, pool: Pool): { checker: ActiveHealthChecker; rec: Recorder } {
  const rec: Recorder = { checks: [], changes: [] };
  pool.onStateChange = (b, reason) => {
    rec.changes.push({ backend: b.name, healthy: b.healthy, reason, trailing: trailingRun(rec, b.name) });
  };
  const checker = new ActiveHealthChecker(pool, silentLogger(), {
    onCheck: (b, ok, reason) => rec.checks.push({ backend: b.name, ok, reason, at: performance.now() }),
  });
  checker.start();
  t.after(() => checker.stop());
  return { checker, rec };
}

/** Length of the run of equal results at the end of one backend's check history. */
function trailingRun(rec: Recorder, name: string): number {
  const mine = rec.checks.filter((c) => c.backend === name);
  let n = 0;
  for (let i = mine.length - 1; i >= 0 && mine[i].ok === mine[mine.length - 1].ok; i--) n++;
  return n;
}

function checksOf(rec: Recorder, name: string): Recorder['checks'] {
  return rec.checks.filter((c) => c.backend === name);
}

function backendNamed(pool: Pool, name: string): Backend {
  const b = pool.find(name);
  assert.ok(b, `backend ${name} exists`);
  return b;
}

test('a tcp check takes a backend down after fall failures and back up after rise successes on the same port', async (t) => {
  const server = await TestBackend.start();
  t.after(() => server.close());
  const pool = makePool([backendConfig('a', server.port)], healthConfig({ rise: 2, fall: 3 }));
  const { rec } = startChecker(t, pool);
  const a = backendNamed(pool, 'a');

  await waitFor(() => checksOf(rec, 'a').length >= 3, 'three checks of a');
  assert.equal(a.healthy, true);
  assert.equal(a.lastCheckOk, true);
  assert.equal(a.lastError, undefined);
  assert.equal(rec.changes.length, 0, 'a healthy backend present at start never changes state');

  await server.close();
  await waitFor(() => !a.healthy, 'a to go down');
  assert.equal(rec.changes.length, 1);
  assert.equal(rec.changes[0].healthy, false);
  assert.equal(rec.changes[0].trailing, 3, 'down exactly at the third failure in a row');
  assert.match(rec.changes[0].reason, /failed 3 time\(s\) in a row: connect refused/);
  assert.equal(a.state(), 'down');
  assert.equal(a.isAvailable(), false);
  assert.equal(a.lastCheckOk, false);
  assert.equal(a.lastError, 'connect refused');
  assert.ok(a.lastCheckAt > Date.now() - 5000 && a.lastCheckAt <= Date.now());

  const beforeUp = Date.now();
  await server.relisten();
  await waitFor(() => a.healthy, 'a to come back up');
  assert.equal(rec.changes.length, 2);
  assert.equal(rec.changes[1].healthy, true);
  assert.equal(rec.changes[1].trailing, 2, 'up exactly at the second success in a row');
  assert.equal(a.state(), 'up');
  assert.ok(a.upSince >= beforeUp, 'coming up restarts the slow-start clock');
});

test('send-expect checks follow the reply: a wrong answer takes the backend down, the right one brings it back', async (t) => {
  let answer = '+PONG\r\n';
  const server = await TestBackend.start((socket) => socket.on('data', () => socket.write(answer)));
  t.after(() => server.close());
  const pool = makePool(
    [backendConfig('redis', server.port)],
    healthConfig({ type: 'send-expect', send: Buffer.from('PING\r\n'), expect: { kind: 'substring', value: 'PONG' }, intervalMs: 100, timeoutMs: 100, rise: 2, fall: 2 }),
  );
  const { rec } = startChecker(t, pool);
  const b = backendNamed(pool, 'redis');

  await waitFor(() => checksOf(rec, 'redis').filter((c) => c.ok).length >= 2, 'two passing checks');
  answer = '-ERR loading\r\n';
  await waitFor(() => !b.healthy, 'the backend to go down on the wrong answer');
  assert.match(b.lastError ?? '', /^timeout after 100ms: expected "PONG", got "-ERR loading\\r\\n"$/);

  answer = '+PONG\r\n';
  await waitFor(() => b.healthy, 'the backend to come back');
  assert.deepEqual(rec.changes.map((c) => c.healthy), [false, true]);
});

test('a backend whose checks alternate pass/fail never changes state with rise 2 and fall 3', async (t) => {
  // Even-numbered connections get the right answer, odd ones are closed at once.
  const flapping = (socket: net.Socket, index: number): void => {
    if (index % 2 === 1) socket.destroy();
    else socket.on('data', () => socket.write('OK\n'));
  };
  const present = await TestBackend.start(flapping);
  const later = await TestBackend.start(flapping);
  t.after(() => present.close());
  t.after(() => later.close());
  const pool = makePool(
    [backendConfig('present', present.port)],
    // The backends answer from this process's event loop: a good check fails as a timeout
    // whenever the loop stalls longer than the timeout before the answer is read (60 ms failed
    // under load); a quarter second leaves room, and the alternation is what is tested.
    healthConfig({ type: 'send-expect', send: Buffer.from('HI\n'), expect: { kind: 'substring', value: 'OK' }, intervalMs: 250, timeoutMs: 250, rise: 2, fall: 3 }),
  );
  const { rec } = startChecker(t, pool);
  pool.setBackends([backendConfig('present', present.port), backendConfig('later', later.port)]);

  await waitFor(() => checksOf(rec, 'present').length >= 14 && checksOf(rec, 'later').length >= 14, '14 checks of each backend', 10_000);
  for (const name of ['present', 'later']) {
    const oks = checksOf(rec, name).map((c) => c.ok);
    assert.ok(oks.some((ok) => ok) && oks.some((ok) => !ok), `${name}: checks both passed and failed`);
    for (let i = 1; i < oks.length; i++) assert.notEqual(oks[i], oks[i - 1], `${name}: results alternate`);
  }
  assert.equal(rec.changes.length, 0, 'no state change at all');
  assert.equal(backendNamed(pool, 'present').healthy, true, 'the backend present at start stays up');
  assert.equal(backendNamed(pool, 'later').healthy, false, 'the backend added later stays down');
});

test('nextCheckDelay spreads each interval by ± jitter and never goes below 1 ms', () => {
  assert.equal(nextCheckDelay(1000, 0.5, () => 0), 500);
  assert.equal(nextCheckDelay(1000, 0.5, () => 0.5), 1000);
  assert.equal(nextCheckDelay(1000, 0.5, () => 0.999999), 1000 * (1 + 0.5 * (2 * 0.999999 - 1)));
  assert.equal(nextCheckDelay(1000, 0, () => 0.9), 1000);
  assert.equal(nextCheckDelay(1000, 1, () => 0), 1);
  assert.equal(firstCheckDelay(1000, () => 0.25), 250);
  assert.equal(firstCheckDelay(1000, () => 0), 1);
});

test('resolveHealthSettings fills defaults, clamps jitter and caps the timeout at the interval', () => {
  const s = resolveHealthSettings({ type: 'tcp', intervalMs: 0, timeoutMs: 5000, rise: 0, fall: 0, jitter: 3 });
  assert.deepEqual(
    { interval: s.intervalMs, timeout: s.timeoutMs, rise: s.rise, fall: s.fall, jitter: s.jitter },
    { interval: 2000, timeout: 2000, rise: 2, fall: 3, jitter: 1 },
  );
  assert.equal(resolveHealthSettings({ type: 'tcp', intervalMs: 100, timeoutMs: 0, rise: 1, fall: 1, jitter: -1 }).timeoutMs, 100);
});

test('with jitter 0.5 the gaps between checks of one backend vary instead of all being one interval', async (t) => {
  const server = await TestBackend.start();
  t.after(() => server.close());
  const pool = makePool([backendConfig('a', server.port)], healthConfig({ intervalMs: 40, jitter: 0.5 }));
  startChecker(t, pool);
  await waitFor(() => server.connections >= 21, '21 checks', 10_000);
  const times = server.acceptTimes.slice(0, 21);
  const gaps = times.slice(1).map((x, i) => x - times[i]);
  const min = Math.min(...gaps);
  const max = Math.max(...gaps);
  // Delays are drawn from [20, 60] ms: over 20 gaps the spread is ~35 ms on average.
  assert.ok(max - min > 10, `gaps spread ${(max - min).toFixed(1)}ms: ${gaps.map((g) => g.toFixed(0)).join(' ')}`);
  // The lower bound is loose: accept times are observed on a shared, possibly busy event loop.
  assert.ok(min > 5, `no gap far below interval × (1 - jitter): min ${min.toFixed(1)}ms`);
});

test('the first checks of many backends are spread across the first interval', async (t) => {
  const servers = await Promise.all(Array.from({ length: 8 }, () => TestBackend.start()));
  t.after(() => Promise.all(servers.map((s) => s.close())));
  const pool = makePool(servers.map((s, i) => backendConfig(`b${i}`, s.port)), healthConfig({ intervalMs: 400 }));
  const started = performance.now();
  startChecker(t, pool);
  await waitFor(() => servers.every((s) => s.connections >= 1), 'every backend checked once', 5000);
  const firsts = servers.map((s) => s.acceptTimes[0] - started);
  assert.ok(Math.max(...firsts) < 400 + 300, `all first checks within the first interval (+ slack): ${firsts.map((f) => f.toFixed(0))}`);
  assert.ok(Math.max(...firsts) - Math.min(...firsts) > 40, `first checks not all at once: ${firsts.map((f) => f.toFixed(0))}`);
});

test('a backend added after start begins down and joins only after rise successes', async (t) => {
  const a = await TestBackend.start();
  const b = await TestBackend.start();
  t.after(() => a.close());
  t.after(() => b.close());
  const pool = makePool([backendConfig('a', a.port)], healthConfig({ rise: 3, fall: 3 }));
  const { rec } = startChecker(t, pool);
  await waitFor(() => checksOf(rec, 'a').length >= 1, 'a first check of a');

  const beforeAdd = Date.now();
  pool.setBackends([backendConfig('a', a.port), backendConfig('b', b.port)]);
  const added = backendNamed(pool, 'b');
  assert.equal(added.healthy, false, 'down from the moment it is added');
  assert.equal(added.state(), 'down');
  assert.equal(pool.pick({ clientAddress: '127.0.0.1', clientPort: 1 }, [])?.name, 'a', 'traffic keeps going to a only');

  await waitFor(() => added.healthy, 'b to join');
  const change = rec.changes.find((c) => c.backend === 'b');
  assert.ok(change && change.healthy, 'b came up through onStateChange');
  assert.equal(change.trailing, 3, 'joined exactly at the third success');
  assert.ok(b.connections >= 3, 'at least rise checks reached b');
  assert.ok(added.upSince >= beforeAdd, 'joining starts slow start');
  assert.equal(rec.changes.filter((c) => c.backend === 'a').length, 0, 'a was not disturbed');
});

test('a removed backend is no longer checked while the others still are', async (t) => {
  const a = await TestBackend.start();
  const b = await TestBackend.start();
  t.after(() => a.close());
  t.after(() => b.close());
  const pool = makePool([backendConfig('a', a.port), backendConfig('b', b.port)], healthConfig({ intervalMs: 30 }));
  startChecker(t, pool);
  await waitFor(() => a.connections >= 2 && b.connections >= 2, 'both backends checked');

  pool.setBackends([backendConfig('a', a.port)]);
  await sleep(50); // a check already in flight may still land
  const bCount = b.connections;
  const aCount = a.connections;
  await sleep(300);
  assert.equal(b.connections, bCount, 'no check of b after its removal');
  assert.ok(a.connections >= aCount + 3, 'a is still checked');
});

test('a backend removed without the hook firing stops being checked too', async (t) => {
  const a = await TestBackend.start();
  const b = await TestBackend.start();
  t.after(() => a.close());
  t.after(() => b.close());
  const pool = makePool([backendConfig('a', a.port), backendConfig('b', b.port)], healthConfig({ intervalMs: 30 }));
  startChecker(t, pool);
  await waitFor(() => b.connections >= 2, 'b checked');
  pool.setBackends([backendConfig('a', a.port)]); // a removal does not fire onBackendsAdded
  await sleep(80);
  const bCount = b.connections;
  await sleep(300);
  assert.equal(b.connections, bCount);
});

test('start chains an existing onBackendsAdded hook and stop restores it', async (t) => {
  const a = await TestBackend.start();
  t.after(() => a.close());
  const pool = makePool([backendConfig('a', a.port)], healthConfig());
  const seen: string[] = [];
  const previous = (added: Backend[]): void => {
    for (const b of added) seen.push(`${b.name}:${b.healthy}`);
  };
  pool.onBackendsAdded = previous;
  const checker = new ActiveHealthChecker(pool, silentLogger());
  checker.start();
  t.after(() => checker.stop());
  pool.setBackends([backendConfig('a', a.port), backendConfig('c', a.port)]);
  assert.deepEqual(seen, ['c:false'], 'the previous hook still runs, and sees the new backend already down');
  checker.stop();
  assert.equal(pool.onBackendsAdded, previous);
  assert.equal(checker.running, false);
});

test('adding a health check by reload starts checking, removing it brings down backends back', async (t) => {
  const server = await TestBackend.start();
  t.after(() => server.close());
  const pool = makePool([backendConfig('a', server.port)], undefined);
  const { checker, rec } = startChecker(t, pool);
  const a = backendNamed(pool, 'a');
  await sleep(100);
  assert.equal(server.connections, 0, 'no checks without a health check config');

  pool.update({ ...pool.config, healthCheck: healthConfig({ intervalMs: 30, fall: 2 }) });
  checker.refresh();
  await waitFor(() => server.connections >= 2, 'checks to start after the reload', 5000);
  assert.equal(a.healthy, true, 'a backend present when checks are turned on stays up');

  await server.close();
  await waitFor(() => !a.healthy, 'a to go down');
  // No refresh() here: the checker's own periodic sweep must notice.
  pool.update({ ...pool.config, healthCheck: undefined });
  await waitFor(() => a.healthy, 'a to be healthy again once nothing checks it', 5000);
  assert.equal(a.state(), 'up');
  assert.match(rec.changes.at(-1)?.reason ?? '', /removed from config/);
});

test('stop aborts an in-flight check and leaves no timer or socket behind', async (t) => {
  let open = 0;
  // Never answers: at any moment a check is most likely waiting on this backend.
  const server = await TestBackend.start((socket) => {
    open++;
    socket.on('close', () => open--);
  });
  t.after(() => server.close());
  const pool = makePool(
    [backendConfig('a', server.port), backendConfig('b', server.port)],
    healthConfig({ type: 'send-expect', send: Buffer.from('x'), expect: { kind: 'substring', value: 'y' }, intervalMs: 1000, timeoutMs: 1000 }),
  );
  const count = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout' || r === 'TCPSocketWrap').length;
  const baseline = count();
  const checker = new ActiveHealthChecker(pool, silentLogger());
  checker.start();
  t.after(() => checker.stop());
  await waitFor(() => open === 2, 'both checks to be in flight');
  assert.ok(count() >= baseline + 4, 'the measure sees the checker (2 sockets each side, timers)');

  checker.stop();
  await waitFor(() => open === 0, 'the backend to see both check connections closed');
  await waitFor(() => count() <= baseline, `resources back to the baseline of ${baseline}`, 2000);
  const connections = server.connections;
  await sleep(150);
  assert.equal(server.connections, connections, 'no check after stop');
});

test('a checker started on a pool whose backend is already down keeps it down until rise passes', async (t) => {
  // A reload that replaces the checker must not bring a dead backend back for free.
  const server = await TestBackend.start();
  t.after(() => server.close());
  const pool = makePool([backendConfig('a', server.port)], healthConfig({ rise: 3 }));
  const a = backendNamed(pool, 'a');
  a.markDown(); // the verdict of a previous checker
  const { rec } = startChecker(t, pool);
  await waitFor(() => a.healthy, 'a to come up');
  assert.equal(rec.changes.length, 1);
  assert.equal(rec.changes[0].trailing, 3, 'up only after three passes');
});

test('a backend with check: false is never probed and stays up; turning its check on and off applies', async (t) => {
  const live = await TestBackend.start();
  const dead = await TestBackend.start();
  await dead.close(); // its port now refuses: a check of it would fail
  t.after(() => live.close());
  const configs = (check: boolean) => [backendConfig('a', live.port), backendConfig('spare', dead.port, { backup: true, check })];
  const pool = makePool(configs(false), healthConfig({ rise: 1, fall: 1 }));
  const { checker, rec } = startChecker(t, pool);
  const spare = backendNamed(pool, 'spare');

  await waitFor(() => checksOf(rec, 'a').length >= 4, 'four checks of a');
  assert.equal(checksOf(rec, 'spare').length, 0, 'the unchecked backend is not probed');
  assert.equal(spare.state(), 'up');
  assert.equal(spare.snapshot().check, false);

  // check on (a reload): probed like any other, so it goes down.
  pool.update({ ...pool.config, backends: configs(true) });
  checker.refresh();
  await waitFor(() => checksOf(rec, 'spare').length >= 2, 'spare probed');
  assert.equal(spare.state(), 'down');
  assert.equal(spare.lastError, 'connect refused');

  // check off again: the failed results no longer hold it down.
  pool.update({ ...pool.config, backends: configs(false) });
  checker.refresh();
  assert.equal(spare.state(), 'up');
  assert.match(rec.changes[rec.changes.length - 1].reason, /check: false/);
  const probes = checksOf(rec, 'spare').length;
  await sleep(200);
  assert.equal(checksOf(rec, 'spare').length, probes, 'no probes after check: false');
});
