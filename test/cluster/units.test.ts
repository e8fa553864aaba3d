/**
 * The in-process parts of multi-process mode: limit shares, state push/apply, counter sums.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pool } from '../../src/proxy/pool.js';
import type { PoolConfig } from '../../src/config/types.js';
import { defaultPassive } from '../../src/config/types.js';
import { shareLimits, shareOf, workerView } from '../../src/cluster/worker-config.js';
import { parseConfigText } from '../../src/config/load.js';
import { StateApplier, StateTracker } from '../../src/cluster/state.js';
import { StatsAggregator, backendKey } from '../../src/cluster/aggregate.js';
import type { ListenerCounters, WorkerStats } from '../../src/cluster/ipc.js';
import { isPrimaryMessage, isWorkerMessage } from '../../src/cluster/ipc.js';
import { CONNECT_MS_BUCKETS } from '../../src/observability/stats.js';
import { StateSync } from '../../src/cluster/state-sync.js';
import type { WorkerRequests } from '../../src/cluster/requests.js';
import type { Slot } from '../../src/cluster/supervisor.js';
import { silentLogger } from '../../src/observability/log.js';
import type { ClusterState } from '../../src/cluster/ipc.js';

function poolConfig(names: string[]): PoolConfig {
  return {
    name: 'web',
    balance: 'round-robin',
    hashKey: 'source-ip',
    backends: names.map((n, i) => ({ name: n, host: '127.0.0.1', port: 9000 + i, weight: 1, backup: false, state: 'enabled' as const, maxConnections: 0, check: true })),
    passive: defaultPassive(),
    slowStartMs: 0,
    queue: { size: 0, timeoutMs: 1000 },
  };
}

test('limit shares add up to the limit and are never 0', () => {
  const cases: [number, number][] = [[10, 3], [7, 2], [100, 4], [2, 2], [1, 1], [5, 8]];
  for (const [limit, n] of cases) {
    const shares = Array.from({ length: n }, (_, i) => shareOf(limit, i, n));
    assert.ok(shares.every((s) => s >= 1), `${limit}/${n}: ${shares}`);
    if (limit >= n) assert.equal(shares.reduce((a, b) => a + b, 0), limit, `${limit}/${n}: ${shares}`);
    assert.ok(Math.max(...shares) - Math.min(...shares) <= 1);
  }
  assert.equal(shareOf(0, 0, 4), 0, '0 (unlimited) stays unlimited');
});

test('a pushed state makes a worker pool match the primary, keeping its backend objects', () => {
  const primary = new Pool(poolConfig(['a', 'b']));
  const worker = new Pool(poolConfig(['a', 'b']));
  const a = worker.find('a')!;
  const tracker = new StateTracker();
  const applier = new StateApplier(0, 2);

  primary.find('b')!.markDown();
  primary.find('a')!.setWeight(5);
  applier.apply(new Map([['web', worker]]), tracker.build([primary]));
  assert.equal(worker.find('a'), a, 'same Backend object');
  assert.equal(a.configuredWeight, 5);
  assert.equal(worker.find('b')!.healthy, false);

  primary.setBackends([...poolConfig(['a', 'b', 'c']).backends]);
  applier.apply(new Map([['web', worker]]), tracker.build([primary]));
  assert.deepEqual(worker.backends.map((b) => b.name), ['a', 'b', 'c']);
  assert.equal(worker.find('a'), a);
});

test('a push about other backends does not undo an ejection the worker made meanwhile', () => {
  const primary = new Pool(poolConfig(['a', 'b']));
  const worker = new Pool(poolConfig(['a', 'b']));
  const tracker = new StateTracker();
  const applier = new StateApplier(0, 1);
  const pools = new Map([['web', worker]]);
  applier.apply(pools, tracker.build([primary]));

  const until = Date.now() + 30_000;
  worker.find('a')!.eject(until, 1); // the worker's own passive ejection
  primary.find('b')!.markDown(); // unrelated change in the primary
  applier.apply(pools, tracker.build([primary]));
  assert.equal(worker.find('a')!.ejectedUntil, until);
  assert.equal(worker.find('b')!.healthy, false);

  // The primary lifting an ejection does reach the worker.
  primary.find('a')!.eject(until, 1);
  applier.apply(pools, tracker.build([primary]));
  primary.find('a')!.clearEjection();
  const streak = { consecutiveFailures: 10, baseEjectionMs: 1000, maxEjectionMs: 1000 };
  for (let i = 0; i < 4; i++) worker.find('a')!.recordConnect(false, 0, streak);
  assert.equal(worker.find('a')!.consecutiveFailures, 4);
  applier.apply(pools, tracker.build([primary]));
  assert.equal(worker.find('a')!.ejectedUntil, 0);
  assert.equal(worker.find('a')!.consecutiveFailures, 0);
});

test('per-backend connection caps are shared out on the worker side', () => {
  const cfg = poolConfig(['a']);
  cfg.backends[0].maxConnections = 5;
  const primary = new Pool(cfg);
  const w0 = new Pool(poolConfig(['a']));
  const w1 = new Pool(poolConfig(['a']));
  const state = new StateTracker().build([primary]);
  new StateApplier(0, 2).apply(new Map([['web', w0]]), state);
  new StateApplier(1, 2).apply(new Map([['web', w1]]), state);
  assert.equal(w0.find('a')!.maxConnections + w1.find('a')!.maxConnections, 5);
});

test('the worker config has no health check or DNS, the runtime backends and resolved ports', () => {
  const pc = { ...poolConfig(['a']), healthCheck: { type: 'tcp' as const, intervalMs: 1000, timeoutMs: 500, rise: 1, fall: 1, jitter: 0 } };
  const primary = new Pool(pc);
  primary.setBackends([...poolConfig(['a', 'z']).backends]);
  const config = {
    listeners: [{ name: 'main', host: '127.0.0.1', port: 0 }],
    pools: [pc],
  } as unknown as Parameters<typeof workerView>[0];
  const view = workerView(config, new Map([['main', 4321]]), new StateTracker().build([primary]));
  assert.equal(view.listeners[0].port, 4321);
  assert.equal(view.pools[0].healthCheck, undefined);
  assert.deepEqual(view.pools[0].backends.map((b) => b.name), ['a', 'z']);
  assert.doesNotThrow(() => JSON.stringify(view));
});

function listenerCounters(accepted: number, active: number): ListenerCounters {
  return {
    name: 'main', address: '127.0.0.1:1', listening: true, active, accepted, retries: 1, replays: 0, bytesUp: 10, bytesDown: 20,
    closed: { client_closed: accepted }, rejected: {},
    connectMs: { bounds: [...CONNECT_MS_BUCKETS], counts: [accepted, ...new Array(CONNECT_MS_BUCKETS.length).fill(0)], sum: accepted, count: accepted },
  };
}

function stats(accepted: number, active: number, total: number, avg: number): WorkerStats {
  return {
    at: Date.now(), pid: 1, activeConnections: active, acceptErrors: 1, fdExhausted: 2, accessLogDropped: 3, heldConnections: active, reloads: 0, reloadFailures: 0,
    listeners: [listenerCounters(accepted, active)],
    pools: [{
      name: 'web',
      backends: [{ name: 'a', active, total, failures: 1, bytesIn: 5, bytesOut: 6, datagramsIn: 0, datagramsOut: 0, connectMsAvg: avg }],
      queue: { waiting: active, queued: accepted, overflowed: 1, timedOut: 2 },
      mirror: { pool: 'shadow', percent: 50, connections: accepted, active, bytes: 100, dropped: { buffer_full: 1 } },
    }],
  };
}

test('counters are summed over workers and kept when a worker exits', () => {
  const agg = new StatsAggregator();
  agg.update(1, stats(10, 2, 10, 1));
  agg.update(2, stats(30, 3, 30, 5));
  let t = agg.totals();
  const l = t.listeners.get('main')!;
  assert.equal(l.accepted, 40);
  assert.equal(l.active, 5);
  assert.equal(l.closed.client_closed, 40);
  assert.equal(l.connectMs.count, 40);
  assert.equal(t.activeConnections, 5);
  assert.equal(t.acceptErrors, 2);
  assert.equal(t.fdExhausted, 4);
  assert.equal(t.accessLogDropped, 6);
  assert.equal(t.heldConnections, 5);
  assert.deepEqual(t.queues.get('web'), { waiting: 5, queued: 40, overflowed: 2, timedOut: 4 });
  const b = t.backends.get(backendKey('web', 'a'))!;
  assert.equal(b.total, 40);
  assert.equal(b.connectMsAvg, 4, 'average weighted by connections');

  agg.retire(2);
  agg.update(3, stats(1, 1, 1, 2)); // the restarted worker starts from zero
  t = agg.totals();
  assert.equal(t.listeners.get('main')!.accepted, 41);
  assert.equal(t.listeners.get('main')!.active, 3, 'gauges count live workers only');
  assert.equal(t.backends.get(backendKey('web', 'a'))!.total, 41);
  assert.equal(t.acceptErrors, 3);
  assert.equal(t.fdExhausted, 6, 'an exited worker keeps its counts');
  assert.equal(t.accessLogDropped, 9, 'an exited worker keeps its dropped access-log lines');
  assert.equal(t.heldConnections, 3, 'gauges count live workers only');
  assert.deepEqual(t.queues.get('web'), { waiting: 3, queued: 41, overflowed: 3, timedOut: 6 });
  assert.deepEqual(
    t.mirrors.get('web'),
    { pool: 'shadow', percent: 50, connections: 41, active: 3, bytes: 300, dropped: { buffer_full: 3 } },
    'mirror counters are summed and kept, the active gauge counts live workers',
  );
});

test('UDP listener counters (datagrams each way) are summed over the workers and kept when one exits', () => {
  const udp = (up: number, down: number): WorkerStats => ({
    ...stats(up, 1, up, 0),
    listeners: [{ ...listenerCounters(up, 1), name: 'dns', protocol: 'udp', datagramsUp: up, datagramsDown: down }],
    pools: [{ name: 'web', backends: [{ name: 'a', active: 1, total: up, failures: 0, bytesIn: 0, bytesOut: 0, datagramsIn: up, datagramsOut: down, connectMsAvg: 0 }], queue: undefined }],
  });
  const agg = new StatsAggregator();
  agg.update(1, udp(10, 9));
  agg.update(2, udp(5, 4));
  let l = agg.totals().listeners.get('dns')!;
  assert.deepEqual([l.protocol, l.datagramsUp, l.datagramsDown, l.active], ['udp', 15, 13, 2]);
  agg.retire(1);
  agg.update(3, udp(1, 1));
  l = agg.totals().listeners.get('dns')!;
  assert.deepEqual([l.protocol, l.datagramsUp, l.datagramsDown, l.active], ['udp', 16, 14, 2]);
  const b = agg.totals().backends.get(backendKey('web', 'a'))!;
  assert.deepEqual([b.datagramsIn, b.datagramsOut], [16, 14]);
});

test('UDP listeners: every worker with SO_REUSEPORT (limits shared out), the first worker alone without (with the whole limit)', () => {
  const config = parseConfigText(`
workers: 3
listeners:
  - { name: web, listen: 127.0.0.1:0, pool: p, maxConnections: 9 }
  - { name: dns, listen: 127.0.0.1:0, protocol: udp, pool: p, maxConnections: 9 }
pools:
  - { name: p, backends: [127.0.0.1:1] }
`, 'units.yaml', {});
  const names = (c: ReturnType<typeof shareLimits>) => c.listeners.map((l) => `${l.name}:${l.maxConnections}`);
  for (const i of [0, 1, 2]) assert.deepEqual(names(shareLimits(config, i, 3, true)), ['web:3', 'dns:3']);
  assert.deepEqual(names(shareLimits(config, 0, 3, false)), ['web:3', 'dns:9']);
  assert.deepEqual(names(shareLimits(config, 1, 3, false)), ['web:3']);
  assert.deepEqual(names(shareLimits(config, 2, 3, false)), ['web:3']);
});

test('only our own messages pass the IPC guards', () => {
  assert.ok(isPrimaryMessage({ t: 'close' }));
  assert.ok(isWorkerMessage({ t: 'hello' }));
  assert.ok(!isPrimaryMessage({ cmd: 'NODE_CLUSTER', act: 'online' }));
  assert.ok(!isWorkerMessage({ t: 'close' }));
  assert.ok(!isWorkerMessage(null));
});

test('the primary pushes the state to the workers when, and only when, a backend or a backend list changed', async (t) => {
  const pool = new Pool(poolConfig(['a', 'b']));
  const pushed: ClusterState[] = [];
  const requests = { send: (_s: unknown, m: { state: ClusterState }) => (pushed.push(m.state), true) } as unknown as WorkerRequests;
  const slot = { id: 1 } as Slot;
  const sync = new StateSync(() => [pool], () => [slot], requests, silentLogger());
  sync.start();
  t.after(() => sync.stop());
  const look = async () => {
    sync.soon();
    await new Promise((r) => setImmediate(r));
  };
  await look();
  assert.equal(pushed.length, 0, 'nothing changed');
  pool.find('a')!.recordCheck(false, 'refused'); // bookkeeping only: not shared
  pool.find('a')!.recordConnect(false, 0, { consecutiveFailures: 3, baseEjectionMs: 1000, maxEjectionMs: 1000 }); // a streak, no ejection
  await look();
  assert.equal(pushed.length, 0, 'no shared field changed');

  pool.find('b')!.markDown();
  await look();
  assert.equal(pushed.length, 1, 'a health change is pushed');
  assert.equal(pushed[0].pools[0].backends[1].healthy, false);
  await look();
  assert.equal(pushed.length, 1, 'once');

  pool.find('a')!.setWeight(3);
  await look();
  assert.equal(pushed.length, 2, 'a settings change is pushed');
  pool.setBackends([...poolConfig(['a']).backends]);
  await look();
  assert.equal(pushed.length, 3, 'a list change is pushed');
  assert.deepEqual(pushed[2].pools[0].backends.map((b) => b.name), ['a']);
});

