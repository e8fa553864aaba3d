/**
 * Connection accounting under faults: every connection a listener accepts is counted once, as
 * rejected, closed or active, so `accepted = rejected + closed + active` holds at every moment,
 * not only once things have settled. The counters are sampled through the admin API while
 * connections are refused (ACL, listener limit, bad or missing PROXY header), fail to reach a
 * backend (refused), reset from either side, and end normally, all at once.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { connect, echoServer, refusedPort, startServer, waitFor } from '../support/net.js';
import { config, listener, pool, startL4lb } from './harness.js';
import { pattern } from './traffic.js';
import { FAULT_WORKERS } from './workers.js';

const T = { timeout: 90_000 };
/** Pause between two samples: short, so they land between many events, yet not a busy loop. */
const SAMPLE_GAP_MS = 2;
const KiB = 1024;

interface ListenerCounters {
  name: string;
  accepted: number;
  active: number;
  closed: Record<string, number>;
  rejected: Record<string, number>;
}

const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0);

/** Opens a connection and sends `data` (if any), then leaves it to `then`. */
async function client(port: number, then: (s: net.Socket) => Promise<void> | void): Promise<void> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  try {
    await once(s, 'connect');
  } catch {
    return;
  }
  await then(s);
}

/** Waits until `s` is closed (or `ms` passed; answering a FIN with one), then destroys it. */
async function closed(s: net.Socket, ms = 5000): Promise<void> {
  s.on('end', () => s.end());
  s.resume();
  await Promise.race([once(s, 'close'), new Promise((r) => setTimeout(r, ms))]);
  s.destroy();
}

for (const workers of FAULT_WORKERS) {
  const w = ` (workers=${workers})`;

  test(`accepted = rejected + closed + active at every sample while refusals, failed dials and resets happen${w}`, T, async (t) => {
    const echo = await echoServer();
    // Resets every connection on its first bytes (backend_reset).
    const resetting = await startServer((s) => s.once('data', () => s.resetAndDestroy()));
    const refused = await refusedPort();
    const l4lb = await startL4lb(
      config(
        [
          listener('echo', 'echo'),
          listener('refused', 'refused', { retries: 1 }),
          listener('deny', 'echo', { aclDefault: 'deny' }),
          listener('limited', 'echo', { maxConnections: 2, overLimit: 'reject' }),
          listener('proxy', 'echo', { acceptProxy: { trusted: ['127.0.0.1/32'] }, timeouts: { preread: '300ms' } }),
          listener('reset', 'reset'),
        ],
        [pool('echo', [echo.port]), pool('refused', [refused]), pool('reset', [resetting.port])],
        { admin: { listen: '127.0.0.1:0' } },
      ),
      { workers },
    );
    t.after(async () => {
      await l4lb.close();
      await Promise.all([echo.close(), resetting.close()]);
    });
    const [echoPort, refusedLPort, denyPort, limitedPort, proxyPort, resetPort] = l4lb.ports;
    const statusUrl = `${await l4lb.adminUrl()}/api/v1/status`;

    // Sample the counters as fast as the admin API answers, until the traffic is over.
    const bad: string[] = [];
    let samples = 0;
    let busySamples = 0;
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        const res = await fetch(statusUrl);
        const status = (await res.json()) as { listeners: ListenerCounters[] };
        samples++;
        let active = 0;
        for (const l of status.listeners) {
          active += l.active;
          const parts = sum(l.rejected) + sum(l.closed) + l.active;
          if (l.accepted !== parts) bad.push(`${l.name}: accepted ${l.accepted} ≠ ${parts} = rejected ${JSON.stringify(l.rejected)} + closed ${JSON.stringify(l.closed)} + active ${l.active}`);
        }
        if (active > 0) busySamples++;
        await new Promise((r) => setTimeout(r, SAMPLE_GAP_MS));
      }
    })();

    const rounds = 6;
    for (let round = 0; round < rounds; round++) {
      // Two connections fill `limited`; the others are refused (listener_limit) while they stay.
      const holders = await Promise.all([0, 1].map(() => connect(limitedPort)));
      await Promise.all([
        // Normal exchanges and clients that reset mid-transfer.
        ...Array.from({ length: 6 }, (_, i) =>
          client(echoPort, async (s) => {
            s.write(pattern(64 * KiB));
            await new Promise((r) => setTimeout(r, 20 + i * 10));
            if (i % 2 === 0) s.resetAndDestroy();
            else {
              s.end();
              await closed(s);
            }
          }),
        ),
        // Backends that refuse (with a retry on the same one).
        ...Array.from({ length: 3 }, () => client(refusedLPort, (s) => closed(s))),
        // ACL refusals.
        ...Array.from({ length: 3 }, () => client(denyPort, (s) => closed(s))),
        // Over the listener limit.
        ...Array.from({ length: 3 }, () => client(limitedPort, (s) => closed(s, 1000))),
        // A bad PROXY header, no header at all (preread timeout), and a good one.
        client(proxyPort, (s) => {
          s.write('GARBAGE HEADER\r\n');
          return closed(s);
        }),
        client(proxyPort, (s) => closed(s)),
        client(proxyPort, async (s) => {
          s.write('PROXY TCP4 192.0.2.1 192.0.2.2 1234 80\r\nhello');
          await new Promise((r) => setTimeout(r, 50));
          s.end();
          await closed(s);
        }),
        // The backend resets.
        ...Array.from({ length: 3 }, () =>
          client(resetPort, (s) => {
            s.write('x');
            return closed(s);
          }),
        ),
      ]);
      for (const h of holders) h.destroy();
    }

    // Everything ends: the last samples see the settled counters too.
    let last: ListenerCounters[] = [];
    await waitFor(
      async () => {
        last = ((await (await fetch(statusUrl)).json()) as { listeners: ListenerCounters[] }).listeners;
        return last.every((l) => l.active === 0);
      },
      10_000,
      'every connection closed',
    );
    sampling = false;
    await sampler;

    assert.deepEqual(bad, [], 'the counters add up at every sample');
    assert.ok(samples >= 20, `sampled ${samples} times`);
    assert.ok(busySamples >= 5, `${busySamples} samples caught connections in progress`);
    // The faults did happen: each way out was taken.
    const of = (name: string) => last.find((l) => l.name === name)!;
    assert.ok((of('deny').rejected.acl ?? 0) >= rounds * 3, 'ACL refusals');
    assert.ok((of('proxy').rejected.bad_proxy_header ?? 0) >= rounds, 'bad PROXY headers');
    assert.ok((of('proxy').rejected.preread_timeout ?? 0) >= rounds, 'preread timeouts');
    // The first refusals eject the backend (passive health): later clients find no backend.
    const refusedClosed = of('refused').closed;
    assert.ok((refusedClosed.backend_connect_refused ?? 0) >= 1, 'refused dials');
    assert.equal((refusedClosed.backend_connect_refused ?? 0) + (refusedClosed.no_backend ?? 0), rounds * 3, 'refused dials, then no backend');
    assert.ok((of('echo').closed.client_reset ?? 0) >= 1, 'client resets');
    assert.ok((of('reset').closed.backend_reset ?? 0) >= 1, 'backend resets');
    for (const l of last) assert.equal(l.accepted, sum(l.rejected) + sum(l.closed), `${l.name} settled`);
  });
}
