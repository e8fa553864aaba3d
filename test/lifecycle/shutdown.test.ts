/**
 * Graceful shutdown through the CLI: SIGTERM/SIGINT stop accepting at once, open connections
 * finish (up to `shutdown.drainTimeout`), the rest are closed spread over `closeSpread`, and
 * the exit code is 0. A second signal closes everything at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, echoServer, startServer, waitFor } from '../support/net.js';
import { startL4lb, config, listener, pool } from '../faults/harness.js';
import { pacedEcho, echoOnce } from '../faults/traffic.js';

const T = { timeout: 60_000 };

test('on SIGTERM in-flight transfers complete, new connections are refused, and l4lb exits 0', T, async (t) => {
  const e = await echoServer();
  const l4lb = await startL4lb(config([listener('main', 'p')], [pool('p', [e.port])], { shutdown: { drainTimeout: '20s' } }));
  t.after(async () => {
    await l4lb.close();
    await e.close();
  });
  const transfers = Array.from({ length: 20 }, () => pacedEcho(l4lb.port, { chunks: 60, chunkSize: 16 * 1024, intervalMs: 25 }));
  await waitFor(() => e.sockets.size === 20, 5000, 'all transfers connected');
  const exited = once(l4lb.child, 'exit');
  const t0 = Date.now();
  l4lb.child.kill('SIGTERM');
  await waitFor(() => l4lb.logs().some((l) => l.msg === 'draining'), 5000, 'draining starts');
  assert.equal((await echoOnce(l4lb.port)).error, 'ECONNREFUSED', 'a new connection is refused once draining');
  const results = await Promise.all(transfers);
  assert.deepEqual(results.filter((r) => !r.intact), [], 'every in-flight transfer completed intact');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 15_000, 'exits once the connections are done, not at the drain timeout');
});

test('after the drain timeout the remaining connections are closed spread over closeSpread, then exit 0', T, async (t) => {
  const idle = await startServer(() => {}); // accepts and never speaks
  const DRAIN = 400;
  const SPREAD = 1200;
  const l4lb = await startL4lb(
    config([listener('main', 'p')], [pool('p', [idle.port])], { shutdown: { drainTimeout: `${DRAIN}ms`, closeSpread: `${SPREAD}ms` } }),
  );
  t.after(async () => {
    await l4lb.close();
    await idle.close();
  });
  const N = 40;
  const sockets = await Promise.all(Array.from({ length: N }, () => connect(l4lb.port)));
  await waitFor(() => idle.sockets.size === N, 5000, 'all connected through');
  const closedAt: number[] = [];
  for (const s of sockets) {
    s.on('error', () => {});
    s.resume();
    s.on('end', () => {
      closedAt.push(Date.now());
      s.destroy();
    });
  }
  const exited = once(l4lb.child, 'exit');
  const t0 = Date.now();
  l4lb.child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  await waitFor(() => closedAt.length === N, 5000, 'every client saw its connection closed');
  assert.equal(code, 0);
  const first = Math.min(...closedAt) - t0;
  const last = Math.max(...closedAt) - t0;
  assert.ok(first >= DRAIN - 50, `nothing closed before the drain timeout (first after ${first}ms)`);
  assert.ok(last - first >= SPREAD / 2, `closes spread over ${last - first}ms, not all at once`);
});

test('a second signal during the drain closes everything at once and exits 0', T, async (t) => {
  const idle = await startServer(() => {});
  const l4lb = await startL4lb(config([listener('main', 'p')], [pool('p', [idle.port])], { shutdown: { drainTimeout: '60s' } }));
  t.after(async () => {
    await l4lb.close();
    await idle.close();
  });
  const sockets = await Promise.all(Array.from({ length: 10 }, () => connect(l4lb.port)));
  await waitFor(() => idle.sockets.size === 10, 5000, 'all connected through');
  let ended = 0;
  for (const s of sockets) {
    s.on('error', () => {});
    s.resume();
    s.on('end', () => {
      ended++;
      s.destroy();
    });
  }
  const exited = once(l4lb.child, 'exit');
  l4lb.child.kill('SIGINT');
  await waitFor(() => l4lb.logs().some((l) => l.msg === 'draining'), 5000, 'draining starts');
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(ended, 0, 'the first signal lets connections be');
  const t0 = Date.now();
  l4lb.child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 5_000, `exited ${Date.now() - t0}ms after the second signal, far before the 60s drain`);
  await waitFor(() => ended === 10, 5000, 'every connection closed');
});
