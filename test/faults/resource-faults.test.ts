/**
 * Fault injection, resources: running out of file descriptors (EMFILE) under
 * `prlimit --nofile`, and 5000 idle connections held then closed. Existing connections keep
 * working, nothing spins, l4lb recovers, nothing leaks; for each `workers` value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { connect, echoServer, waitFor } from '../support/net.js';
import { assertNoLeaks, config, listener, pool, startL4lb } from './harness.js';
import { echoOnce, inBatches, roomyEchoServer } from './traffic.js';
import { FAULT_WORKERS } from './workers.js';

const T = { timeout: 90_000 };
const MiB = 1024 * 1024;

/** Connects, sends `ping`, and says whether l4lb served it (echo) or closed it. */
async function ping(port: number): Promise<{ socket: net.Socket; served: boolean }> {
  const socket = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  socket.on('error', () => {});
  const served = await new Promise<boolean>((resolve) => {
    let got = '';
    const timer = setTimeout(() => resolve(false), 5000);
    socket.on('data', (c: Buffer) => {
      got += c.toString();
      if (got === 'ping') {
        clearTimeout(timer);
        resolve(true);
      }
    });
    for (const ev of ['end', 'close', 'error']) {
      socket.once(ev, () => {
        clearTimeout(timer);
        resolve(false);
      });
    }
    socket.once('connect', () => socket.write('ping'));
  });
  if (!served) socket.destroy();
  return { socket, served };
}

for (const workers of FAULT_WORKERS) {
  const w = ` (workers=${workers})`;

  test(`out of file descriptors: no crash, no spin, open connections keep working, it recovers${w}`, T, async (t) => {
    const e = await echoServer();
    // Node and l4lb need about 20 descriptors; the rest allows a dozen proxied connections.
    const l4lb = await startL4lb(config([listener('main', 'p')], [pool('p', [e.port])]), { workers, nofile: 48 });
    const held: net.Socket[] = [];
    t.after(async () => {
      for (const s of held) s.destroy();
      await l4lb.close();
      await e.close();
    });
    assert.ok((await echoOnce(l4lb.port)).intact);
    const base = await l4lb.probe();

    // Fill every descriptor (of every process): some connections are served, the rest closed.
    const tries = await inBatches(40 * workers, 4, () => ping(l4lb.port));
    for (const r of tries) if (r.served) held.push(r.socket);
    assert.ok(held.length >= 3, `${held.length} connections served before the limit`);
    assert.ok(held.length < tries.length, 'the limit was reached');

    // While at the limit, keep knocking for a second: they are closed, and l4lb does not spin.
    const cpu0 = l4lb.cpuTicks();
    const t0 = Date.now();
    const knocks = [];
    while (Date.now() - t0 < 1000) {
      knocks.push(echoOnce(l4lb.port, 64));
      await new Promise((r) => setTimeout(r, 10));
    }
    const ticks = l4lb.cpuTicks() - cpu0;
    const knocked = await Promise.all(knocks);
    // With one process nothing at all can be served; with several, one may still find room
    // for a connection that another could not take.
    const servedAtLimit = knocked.filter((k) => k.intact).length;
    if (workers === 1) assert.equal(servedAtLimit, 0, 'nothing is served while out of descriptors');
    else assert.ok(servedAtLimit < knocked.length, `${servedAtLimit} of ${knocked.length} served at the limit`);
    assert.ok(ticks < 50, `l4lb used ${ticks} ticks (1/100 s) of CPU in the second at the limit: it does not spin`);

    // The connections already open keep working.
    for (const s of held) {
      const back = new Promise<string>((resolve) => {
        let got = '';
        const on = (c: Buffer) => {
          got += c.toString();
          if (got.length >= 5) {
            s.removeListener('data', on);
            resolve(got);
          }
        };
        s.on('data', on);
      });
      s.write('again');
      assert.equal(await back, 'again');
    }

    // It is logged, rate-limited: a line (with a count), not one per connection. A failed
    // backend dial says so at once; when accepts alone hit the limit (libuv then closes the
    // connections without telling Node), the periodic descriptor count says so within 5s.
    const isFdLine = (l: Record<string, unknown>) => /file descriptors/.test(String(l.msg));
    await waitFor(() => l4lb.logs().some(isFdLine), 10_000, 'a log line about descriptors');
    const lines = l4lb.logs().filter(isFdLine);
    assert.ok(lines.length <= 2 * workers, `${lines.length} log lines for ${tries.length - held.length + knocked.length} failures`);

    // Descriptors free up: new connections are served again (the backend was not blamed).
    for (const s of held.splice(0)) s.destroy();
    await waitFor(async () => (await echoOnce(l4lb.port)).intact, 10_000, 'served again once descriptors are free');
    assert.ok((await inBatches(20, 4, () => echoOnce(l4lb.port, 16 * 1024))).every((r) => r.intact));
    await assertNoLeaks(l4lb, base);
  });

  test(`5000 idle connections are held, still answer, and are all released when closed${w}`, T, async (t) => {
    const e = await roomyEchoServer();
    const l4lb = await startL4lb(config([listener('main', 'p')], [pool('p', [e.port])]), { workers });
    const clients: net.Socket[] = [];
    t.after(async () => {
      for (const s of clients) s.destroy();
      await l4lb.close();
      await e.close();
    });
    assert.ok((await echoOnce(l4lb.port)).intact);
    const base = await l4lb.probe();
    const N = 5000;
    let failed = 0;
    await inBatches(N, 100, async () => {
      const s = await connect(l4lb.port);
      s.on('error', () => {});
      s.on('close', () => failed++);
      clients.push(s);
    });
    await waitFor(() => e.sockets.size === N || failed > 0, 60_000, `${N} connections through to the backend`);
    assert.equal(failed, 0, `${failed} connections were closed while held (${e.sockets.size} reached the backend)`);
    const full = await l4lb.probe();
    const perConn = (full.rss - base.rss) / N;
    assert.ok(full.fds - base.fds >= 2 * N, `two descriptors per connection (${full.fds - base.fds})`);
    assert.ok(full.rss - base.rss < 200 * MiB, `RSS grew ${((full.rss - base.rss) / MiB).toFixed(1)} MiB (${Math.round(perConn)} bytes per idle connection)`);
    // A sample still answers.
    for (const s of clients.filter((_, i) => i % 100 === 0)) {
      const got = new Promise<string>((resolve) => s.once('data', (c: Buffer) => resolve(c.toString())));
      s.write('hi');
      assert.equal(await got, 'hi');
    }
    for (const s of clients.splice(0)) s.destroy();
    await waitFor(() => e.sockets.size === 0, 30_000, 'every backend connection closed');
    await assertNoLeaks(l4lb, base, { heap: 32 * MiB }, 30_000);
  });
}
