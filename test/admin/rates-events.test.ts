/**
 * The two small pieces of state the admin server keeps: per-second rates from counter
 * differences, and the ring of recent events.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RateTracker } from '../../src/admin/rates.js';
import { EventRing } from '../../src/admin/events.js';
import { readiness, type StatusSnapshot } from '../../src/admin/status.js';

function snap(at: number, accepted: number, bytes: number, backendTotal: number, opts: { backends?: string[] } = {}): StatusSnapshot {
  const hist = { bounds: [1], counts: [0, 0], sum: 0, count: 0 };
  return {
    at,
    process: { pid: 1, version: 'x', startedAt: 0, uptimeMs: at, workers: 1, activeConnections: 2, reloads: 0, reloadFailures: 0, acceptErrors: 0, fdExhausted: 0, accessLogDropped: 0, heldConnections: 0 },
    listeners: [{
      name: 'l', address: '127.0.0.1:1', listening: true, pool: 'p', routePools: [], active: 2, accepted, retries: 0, replays: 0,
      bytesUp: bytes, bytesDown: bytes, closed: {}, rejected: {}, connectMs: hist,
    }],
    pools: [{
      name: 'p', balance: 'round-robin', healthCheck: undefined, discovery: 'static', backendsUp: 1,
      backends: (opts.backends ?? ['b']).map((name) => ({
        name, address: name, state: 'up' as const, admin: 'enabled' as const, backup: false, weight: 1, effectiveWeight: 1, healthy: true, check: true,
        ejectedUntil: 0, lastCheckAt: undefined, lastCheckOk: undefined, lastError: undefined, active: 2, total: backendTotal,
        failures: 0, bytesIn: bytes, bytesOut: 0, connectMsAvg: 0,
      })),
      queue: undefined,
    }],
    events: [],
  };
}

test('rates are counter differences per second; the first sample and counter resets give 0', () => {
  const r = new RateTracker(3);
  const first = r.update(snap(1000, 10, 100, 10));
  assert.equal(first.intervalMs, 0);
  assert.deepEqual(first.total, { connPerSec: 0, bytesPerSec: 0, active: 2 });

  const second = r.update(snap(3000, 30, 1100, 16));
  assert.equal(second.intervalMs, 2000);
  assert.equal(second.listeners.l.connPerSec, 10);
  assert.equal(second.listeners.l.bytesPerSec, 1000, '(1000 up + 1000 down) / 2 s');
  assert.equal(second.backends['p/b'].connPerSec, 3);
  assert.equal(second.backends['p/b'].bytesPerSec, 500);
  assert.equal(second.total.connPerSec, 10);

  const reset = r.update(snap(4000, 31, 1100, 0));
  assert.equal(reset.backends['p/b'].connPerSec, 0, 'a counter that went down is a reset, not a negative rate');
  const added = r.update(snap(5000, 31, 1100, 5, { backends: ['b', 'new'] }));
  assert.equal(added.backends['p/new'].connPerSec, 0, 'a new backend starts at 0');

  assert.equal(r.history().length, 3, 'history is bounded');
  assert.equal(r.latest(), added);
});

test('the event ring keeps the newest events, oldest first, with increasing ids', () => {
  const ring = new EventRing(3);
  for (let i = 1; i <= 5; i++) ring.push({ level: 'info', message: `e${i}`, at: i });
  const list = ring.list();
  assert.deepEqual(list.map((e) => e.message), ['e3', 'e4', 'e5']);
  assert.deepEqual(list.map((e) => e.id), [3, 4, 5]);
  assert.equal(ring.size, 3);
  const e = ring.push({ level: 'warn', pool: 'p', backend: 'b', message: 'down' });
  assert.equal(e.pool, 'p');
  assert.ok(e.at > 0);
});

test('readiness explains every pool without a backend up and every listener not accepting', () => {
  const s = snap(1, 0, 0, 0);
  assert.deepEqual(readiness(s), { ready: true, reasons: [] });
  s.pools[0].backendsUp = 0;
  s.pools[0].backends[0].state = 'down';
  s.listeners[0].listening = false;
  const r = readiness(s);
  assert.equal(r.ready, false);
  assert.deepEqual(r.reasons, ['listener "l" is not accepting connections', 'pool "p" has no backend up (b down)']);
});
