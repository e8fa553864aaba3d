/**
 * Fault injection, backend side: a backend that refuses, black-holes, accepts then resets,
 * dies mid-stream, all backends down, a flapping backend. Every case checks that nothing is
 * lost (what arrives is exactly what was sent, or a clean prefix of it then a close) and that
 * nothing leaks in l4lb (sockets, descriptors, timers, heap), for each `workers` value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blackHole, connect, echoServer, holdPort, refusedPort, startServer, waitFor } from '../support/net.js';
import { assertNoLeaks, config, listener, pool, startL4lb } from './harness.js';
import { dyingBackend, echoOn, echoOnce, flappingBackend, inBatches, isPatternPrefix, pattern, readToEnd, type Transfer } from './traffic.js';
import { FAULT_WORKERS } from './workers.js';

const T = { timeout: 60_000 };
const KiB = 1024;
const MiB = 1024 * KiB;

/** A connection l4lb accepted and then closed without any backend data: nothing came back. */
function closedEmpty(r: Transfer, what: string): void {
  assert.equal(r.received, 0, `${what}: nothing came back`);
  assert.equal(r.intact, false, `${what}: the echo cannot be complete`);
  assert.notEqual(r.error, 'ECONNREFUSED', `${what}: l4lb itself accepted`);
}

function allIntact(results: Transfer[], what: string): void {
  const bad = results.filter((r) => !r.intact);
  assert.equal(bad.length, 0, `${what}: ${bad.length} broken, e.g. ${JSON.stringify(bad[0])}`);
}

for (const workers of FAULT_WORKERS) {
  const w = ` (workers=${workers})`;

  test(`a refusing backend is skipped; with no backend left the client is closed at once${w}`, T, async (t) => {
    const good = await echoServer();
    const [dead, dead2] = [await refusedPort(), await refusedPort()];
    const l4lb = await startL4lb(
      config([listener('mixed', 'mixed'), listener('dead', 'dead')], [pool('mixed', [dead, good.port]), pool('dead', [dead2])]),
      { workers },
    );
    t.after(async () => {
      await l4lb.close();
      await good.close();
    });
    await echoOnce(l4lb.port);
    const base = await l4lb.probe();
    allIntact(await inBatches(60, 10, () => echoOnce(l4lb.port, 64 * KiB)), 'through a pool with a refusing backend');
    for (const r of await inBatches(10, 5, () => echoOnce(l4lb.ports[1]))) {
      closedEmpty(r, 'only a refusing backend');
      assert.ok(r.ms < 3000, `closed after ${r.ms}ms`);
    }
    await assertNoLeaks(l4lb, base);
  });

  test(`a black-holed backend (accept queue full) is given up after the connect timeout; the next serves${w}`, T, async (t) => {
    const hole = await blackHole();
    const good = await echoServer();
    const connectTimeout = { timeouts: { connect: '300ms' } };
    const l4lb = await startL4lb(
      config(
        [listener('mixed', 'mixed', connectTimeout), listener('hole', 'hole', connectTimeout)],
        [pool('mixed', [hole.port, good.port]), pool('hole', [hole.port])],
      ),
      { workers },
    );
    t.after(async () => {
      await l4lb.close();
      await Promise.all([hole.close(), good.close()]);
    });
    await echoOnce(l4lb.ports[1]).catch(() => {});
    const base = await l4lb.probe();
    allIntact(await inBatches(30, 10, () => echoOnce(l4lb.port, 64 * KiB)), 'through a pool with a black hole');
    for (const r of await inBatches(6, 6, () => echoOnce(l4lb.ports[1]))) {
      closedEmpty(r, 'only a black hole');
      assert.ok(r.ms >= 250 && r.ms < 5000, `closed after ${r.ms}ms (connect timeout 300ms)`);
    }
    await assertNoLeaks(l4lb, base);
  });

  test(`a backend that accepts then resets: its clients are closed with nothing, others are unaffected${w}`, T, async (t) => {
    const resetter = await startServer((s) => s.resetAndDestroy());
    const good = await echoServer();
    const l4lb = await startL4lb(config([listener('reset', 'r'), listener('good', 'g')], [pool('r', [resetter.port]), pool('g', [good.port])]), {
      workers,
    });
    t.after(async () => {
      await l4lb.close();
      await Promise.all([resetter.close(), good.close()]);
    });
    await echoOnce(l4lb.ports[1]);
    const base = await l4lb.probe();
    const [reset, fine] = await Promise.all([
      inBatches(20, 5, () => echoOnce(l4lb.ports[0], 16 * KiB)),
      inBatches(40, 5, () => echoOnce(l4lb.ports[1], 64 * KiB)),
    ]);
    for (const r of reset) {
      closedEmpty(r, 'reset by the backend');
      assert.ok(r.ms < 5000, `closed after ${r.ms}ms`);
    }
    allIntact(fine, 'the healthy listener meanwhile');
    await assertNoLeaks(l4lb, base);
  });

  test(`a backend that dies mid-stream: the client gets every byte sent before, then a close${w}`, T, async (t) => {
    const SIZE = 4 * MiB;
    const dying = await dyingBackend(SIZE);
    // And one that resets mid-stream: what arrives must be a clean prefix.
    const resetting = await startServer((s) => {
      s.write(pattern(MiB), () => setTimeout(() => s.resetAndDestroy(), 5));
    });
    const good = await echoServer();
    const l4lb = await startL4lb(
      config([listener('dies', 'd'), listener('resets', 'r'), listener('good', 'g')], [pool('d', [dying.port]), pool('r', [resetting.port]), pool('g', [good.port])]),
      { workers },
    );
    t.after(async () => {
      dying.close();
      await l4lb.close();
      await Promise.all([resetting.close(), good.close()]);
    });
    await echoOnce(l4lb.ports[2]);
    const base = await l4lb.probe();

    const s = await connect(l4lb.ports[0]);
    const got = await readToEnd(s);
    s.destroy();
    await dying.exited;
    assert.equal(got.data.length, SIZE, 'every byte the backend wrote before it died');
    assert.ok(isPatternPrefix(got.data), 'in order, unchanged');
    assert.equal(got.how, 'end', 'then an orderly close');

    const cut = await inBatches(10, 5, async () => {
      const c = await connect(l4lb.ports[1]);
      const r = await readToEnd(c);
      c.destroy();
      return r;
    });
    for (const r of cut) {
      assert.ok(r.data.length <= MiB, 'never more than was sent');
      assert.ok(isPatternPrefix(r.data), `a clean prefix (${r.data.length} bytes)`);
    }
    await assertNoLeaks(l4lb, base);
  });

  test(`with every backend down clients are closed at once; when one comes back it serves again${w}`, T, async (t) => {
    const MAX_EJECTION_MS = 400;
    const a = await echoServer();
    const b = await echoServer();
    const ports = [a.port, b.port];
    const l4lb = await startL4lb(
      config([listener('main', 'p')], [pool('p', ports, { passive: { consecutiveFailures: 2, baseEjection: '200ms', maxEjection: `${MAX_EJECTION_MS}ms` } })]),
      { workers },
    );
    let back: { close(): Promise<void> } | undefined;
    t.after(async () => {
      await l4lb.close();
      await back?.close();
    });
    await echoOnce(l4lb.port);
    const base = await l4lb.probe();
    await Promise.all([a.close(), b.close()]);
    // Down, their ports stay held: a test file running alongside must not get one for a server.
    const [heldA, heldB] = [holdPort(ports[0]), holdPort(ports[1])];
    t.after(() => heldB.release());
    for (const r of await inBatches(10, 5, () => echoOnce(l4lb.port))) {
      closedEmpty(r, 'all backends down');
      assert.ok(r.ms < 3000, `closed after ${r.ms}ms`);
    }
    // Every failed connect to it happened before this (l4lb closed those clients after them),
    // so every ejection of it ends by now + maxEjection, in every process.
    heldA.release();
    back = await echoOn(ports[0]);
    const ejectionsOver = Date.now() + MAX_EJECTION_MS;
    await waitFor(async () => (await echoOnce(l4lb.port)).intact, 10_000, 'served again once a backend is back');
    // One worker serving again does not lift another's ejection (an ejection runs its time),
    // and under load the primary's merged ejection can reach a worker after that worker served:
    // with workers > 1, some worker may still hold it ejected for up to maxEjection.
    await new Promise((r) => setTimeout(r, Math.max(0, ejectionsOver - Date.now())));
    allIntact(await inBatches(20, 5, () => echoOnce(l4lb.port, 64 * KiB)), 'after the recovery');
    await assertNoLeaks(l4lb, base);
  });

  test(`a flapping backend: transfers complete intact while it goes up and down${w}`, T, async (t) => {
    const stable = await echoServer();
    const flappy = await flappingBackend(100);
    const l4lb = await startL4lb(
      // No passive ejection: every connection may land on the flapping backend, up or down.
      config([listener('main', 'p')], [pool('p', [flappy.port, stable.port], { passive: { consecutiveFailures: 0 } })], {
        log: { level: 'info', access: 'stderr' },
      }),
      { workers },
    );
    t.after(async () => {
      await l4lb.close();
      await flappy.stop();
      await stable.close();
    });
    await echoOnce(l4lb.port);
    const base = await l4lb.probe();
    const results = await inBatches(200, 8, () => echoOnce(l4lb.port, 32 * KiB));
    assert.ok(flappy.accepted() > 0, 'the flapping backend took part');
    // Going down closes the backend's listening socket, and the kernel resets connections
    // still in its accept backlog: those were connected, so l4lb cannot retry them (bytes may
    // already be on their way). Such a connection must end cleanly with nothing received, and
    // the access log must blame the backend. Every other transfer is intact.
    const broken = results.filter((r) => !r.intact);
    for (const r of broken) assert.equal(r.received, 0, `a broken transfer received nothing: ${JSON.stringify(r)}`);
    await waitFor(() => l4lb.logs().filter((l) => l.msg === 'access').length >= 201, 5000, 'access lines');
    const resetByBackend = l4lb.logs().filter(
      (l) => l.msg === 'access' && l.bytesDown === 0 && (l.reason === 'backend_reset' || l.reason === 'backend_error'),
    );
    assert.ok(broken.length <= resetByBackend.length, `${broken.length} broken, ${resetByBackend.length} reset by the backend`);
    assert.ok(broken.length <= results.length / 10, `${broken.length} of ${results.length} cut by the backend going down`);
    await assertNoLeaks(l4lb, base);
  });
}
