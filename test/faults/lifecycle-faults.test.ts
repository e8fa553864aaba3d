/**
 * Fault injection, lifecycle: a reload under load and SIGTERM under load. Nothing lost (every
 * transfer intact, nothing refused during reloads), nothing leaked (after the reloads, and a
 * clean exit after SIGTERM: a leaked socket or timer would keep the process alive).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { echoServer, waitFor } from '../support/net.js';
import { assertNoLeaks, config, listener, pool, startL4lb } from './harness.js';
import { echoOnce, pacedEcho, steadyStream } from './traffic.js';
import { FAULT_WORKERS } from './workers.js';

const T = { timeout: 60_000 };

for (const workers of FAULT_WORKERS) {
  const w = ` (workers=${workers})`;

  test(`a reload under load: transfers stay intact, nothing is refused, nothing leaks${w}`, T, async (t) => {
    const servers = await Promise.all([echoServer(), echoServer(), echoServer()]);
    const [a, b, c] = servers.map((s) => s.port);
    const variants = [
      config([listener('main', 'p')], [pool('p', [a, b])]),
      config([listener('main', 'p'), listener('side', 'p')], [pool('p', [b, c], { balance: 'least-connections' })]),
      config([listener('main', 'p')], [pool('p', [{ address: `127.0.0.1:${c}`, weight: 5 }, a])]),
    ];
    const l4lb = await startL4lb(variants[0], { workers });
    t.after(async () => {
      await l4lb.close();
      await Promise.all(servers.map((s) => s.close()));
    });
    await echoOnce(l4lb.port);
    const base = await l4lb.probe();
    const transfers = Array.from({ length: 40 }, () => pacedEcho(l4lb.port, { chunks: 60, chunkSize: 8 * 1024, intervalMs: 20 }));
    const stream = steadyStream(() => l4lb.port, 3);
    t.after(() => stream.stop());
    for (let i = 1; i <= 6; i++) assert.ok((await l4lb.reload(variants[i % variants.length])).ok, `reload ${i}`);
    const results = await Promise.all(transfers);
    const s = await stream.stop();
    assert.deepEqual(results.filter((r) => !r.intact), []);
    assert.equal(s.refused, 0);
    assert.equal(s.resetEmpty, 0);
    assert.equal(s.failed, 0, s.errors.join(', '));
    // Back to the first config: the side listener from the second one is gone, with its socket.
    assert.ok((await l4lb.reload(variants[0])).ok);
    await assertNoLeaks(l4lb, base);
  });

  test(`SIGTERM under load: in-flight transfers finish intact, late arrivals are refused, exit 0${w}`, T, async (t) => {
    const e = await echoServer();
    const l4lb = await startL4lb(config([listener('main', 'p')], [pool('p', [e.port])], { shutdown: { drainTimeout: '20s' } }), { workers });
    t.after(async () => {
      await l4lb.close();
      await e.close();
    });
    const transfers = Array.from({ length: 30 }, () => pacedEcho(l4lb.port, { chunks: 50, chunkSize: 8 * 1024, intervalMs: 20 }));
    const stream = steadyStream(() => l4lb.port, 3);
    t.after(() => stream.stop());
    await waitFor(() => e.sockets.size >= 30, 5000, 'transfers under way');
    const exited = once(l4lb.child, 'exit');
    const t0 = Date.now();
    l4lb.child.kill('SIGTERM');
    await waitFor(() => l4lb.logs().some((l) => l.msg === 'draining'), 5000, 'draining');
    const results = await Promise.all(transfers);
    const [code] = (await exited) as [number | null];
    const s = await stream.stop();
    assert.deepEqual(results.filter((r) => !r.intact), [], 'every in-flight transfer completed');
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 15_000, 'it exited when the work was done: nothing left holding the process');
    // Once the listening socket is closed, new connections are refused. One that completed its
    // handshake in the instant before, still in the kernel's accept backlog, is reset by the
    // kernel with nothing sent (resetEmpty): a fact of closing a socket, and no data is lost.
    assert.ok(s.refused > 0, 'connections after the drain started were refused');
    assert.equal(s.failed, 0, `no connection was cut: ${s.errors.join(', ')}`);
  });
}
