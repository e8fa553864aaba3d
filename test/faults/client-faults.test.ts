/**
 * Fault injection, client side: a slow-reading client (l4lb's memory stays bounded), half-close
 * in each direction, and clients that reset mid-transfer. Nothing lost, nothing leaked, for
 * each `workers` value.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect, echoServer, startServer, waitFor, exchange, type StreamResult } from '../support/net.js';
import { assertNoLeaks, config, listener, pool, startL4lb } from './harness.js';
import { echoOnce, isPatternPrefix, pattern } from './traffic.js';
import { FAULT_WORKERS } from './workers.js';

const T = { timeout: 60_000 };
const KiB = 1024;
const MiB = 1024 * KiB;

for (const workers of FAULT_WORKERS) {
  const w = ` (workers=${workers})`;

  test(`slow-reading clients: l4lb's memory stays bounded and every byte arrives in the end${w}`, T, async (t) => {
    const SIZE = 32 * MiB;
    const sentSha = new Map<net.Socket, string>();
    // The backend writes as fast as l4lb lets it (honouring backpressure), then FIN.
    const fast = await startServer((s) => {
      const h = createHash('sha256');
      let sent = 0;
      const pump = () => {
        while (sent < SIZE) {
          const chunk = pattern(64 * KiB, sent);
          h.update(chunk);
          sent += chunk.length;
          if (!s.write(chunk)) return void s.once('drain', pump);
        }
        sentSha.set(s, h.digest('hex'));
        s.end();
      };
      pump();
    });
    const l4lb = await startL4lb(config([listener('main', 'p')], [pool('p', [fast.port])]), { workers });
    t.after(async () => {
      await l4lb.close();
      await fast.close();
    });
    const warm = await connect(l4lb.port);
    warm.resume();
    await once(warm, 'end');
    warm.destroy();
    const base = await l4lb.probe();

    // Three clients that read nothing for a while: whatever l4lb buffers shows now.
    const clients = await Promise.all([0, 1, 2].map(() => connect(l4lb.port)));
    for (const c of clients) c.pause();
    await new Promise((r) => setTimeout(r, 1500));
    const stalled = await l4lb.probe();
    const grew = stalled.arrayBuffers - base.arrayBuffers;
    assert.ok(grew < 16 * MiB, `l4lb holds ${(grew / MiB).toFixed(1)} MiB more buffers for 3 stalled readers of 32 MiB`);
    assert.ok(stalled.rss - base.rss < 96 * MiB, `RSS grew ${((stalled.rss - base.rss) / MiB).toFixed(1)} MiB`);

    // Then they read, slowly (a pause every MiB), to the end: all of it, in order.
    const results = await Promise.all(
      clients.map(
        (c) =>
          new Promise<{ bytes: number; sha: string }>((resolve, reject) => {
            const h = createHash('sha256');
            let bytes = 0;
            let nextPause = MiB;
            c.on('data', (chunk: Buffer) => {
              h.update(chunk);
              bytes += chunk.length;
              if (bytes >= nextPause) {
                nextPause += MiB;
                c.pause();
                setTimeout(() => c.resume(), 5);
              }
            });
            c.on('end', () => resolve({ bytes, sha: h.digest('hex') }));
            c.on('error', reject);
            c.resume();
          }),
      ),
    );
    const expected = [...sentSha.values()].at(-1)!;
    for (const r of results) {
      assert.equal(r.bytes, SIZE);
      assert.equal(r.sha, expected, 'the same pattern every time');
    }
    for (const c of clients) c.destroy();
    await assertNoLeaks(l4lb, base);
  });

  test(`half-close in each direction: what follows a FIN still arrives, both ways, intact${w}`, T, async (t) => {
    // Client FIN first: the backend reads to the end, then answers 1 MiB and closes.
    let replyOfClientFirst: Promise<StreamResult> | undefined;
    const clientFirst = await startServer((s) => {
      const recv = createHash('sha256');
      let got = 0;
      s.on('data', (c: Buffer) => {
        got += c.length;
        recv.update(c);
      });
      s.on('end', () => {
        const reply = Buffer.concat([pattern(MiB)]);
        s.end(reply);
        replyOfClientFirst = Promise.resolve({ sentBytes: MiB, sentSha: createHash('sha256').update(reply).digest('hex'), receivedBytes: got, receivedSha: recv.digest('hex') });
      });
    });
    // Backend FIN first: it sends 1 MiB and its FIN at once, then keeps reading to the end.
    let backendFirst: Promise<StreamResult> | undefined;
    const serverFirst = await startServer((s) => {
      backendFirst = exchange(s, MiB);
    });
    const l4lb = await startL4lb(
      config([listener('cf', 'cf'), listener('sf', 'sf')], [pool('cf', [clientFirst.port]), pool('sf', [serverFirst.port])]),
      { workers },
    );
    t.after(async () => {
      await l4lb.close();
      await Promise.all([clientFirst.close(), serverFirst.close()]);
    });
    const base = await l4lb.probe();

    for (let i = 0; i < 5; i++) {
      // Client → FIN, then the reply comes back.
      const c = await connect(l4lb.ports[0]);
      const mine = await exchange(c, MiB);
      c.destroy();
      await waitFor(() => replyOfClientFirst !== undefined);
      const theirs = await replyOfClientFirst!;
      replyOfClientFirst = undefined;
      assert.equal(theirs.receivedBytes, MiB);
      assert.equal(theirs.receivedSha, mine.sentSha, 'client → backend, sent before the FIN');
      assert.equal(mine.receivedBytes, MiB);
      assert.equal(mine.receivedSha, theirs.sentSha, 'backend → client, sent after the client FIN');

      // Backend → FIN first; the client sends only after it has seen that FIN.
      const d = await connect(l4lb.ports[1]);
      const recv = createHash('sha256');
      let got = 0;
      d.on('data', (x: Buffer) => {
        got += x.length;
        recv.update(x);
      });
      await once(d, 'end');
      const after = pattern(MiB, 7);
      await new Promise<void>((r) => d.end(after, () => r()));
      const b = await backendFirst!;
      backendFirst = undefined;
      d.destroy();
      assert.equal(got, MiB);
      assert.equal(recv.digest('hex'), b.sentSha, 'backend → client, before its FIN');
      assert.equal(b.receivedBytes, MiB);
      assert.equal(b.receivedSha, createHash('sha256').update(after).digest('hex'), 'client → backend, after the backend FIN');
    }
    await assertNoLeaks(l4lb, base);
  });

  test(`clients that reset mid-transfer: the backend side is closed promptly and got a clean prefix${w}`, T, async (t) => {
    const received: Array<{ data: Buffer[]; closed: boolean }> = [];
    const sink = await startServer((s) => {
      const rec = { data: [] as Buffer[], closed: false };
      received.push(rec);
      s.on('data', (c: Buffer) => rec.data.push(c));
      s.on('close', () => (rec.closed = true));
      s.on('end', () => s.end());
    });
    const good = await echoServer();
    const l4lb = await startL4lb(config([listener('sink', 's'), listener('good', 'g')], [pool('s', [sink.port]), pool('g', [good.port])]), { workers });
    t.after(async () => {
      await l4lb.close();
      await Promise.all([sink.close(), good.close()]);
    });
    await echoOnce(l4lb.ports[1]);
    const base = await l4lb.probe();
    const N = 20;
    await Promise.all(
      Array.from({ length: N }, async (_, i) => {
        const c = await connect(l4lb.ports[0]);
        c.on('error', () => {});
        let off = 0;
        const timer = setInterval(() => {
          c.write(pattern(16 * KiB, off));
          off += 16 * KiB;
        }, 5);
        await new Promise((r) => setTimeout(r, 100 + i * 10));
        clearInterval(timer);
        c.resetAndDestroy();
      }),
    );
    await waitFor(() => received.length === N && received.every((r) => r.closed), 5000, 'every backend connection closed');
    for (const r of received) {
      const got = Buffer.concat(r.data);
      // Each client wrote for 100 ms or more before its reset: the backend got some of it.
      assert.ok(got.length > 0, 'the backend got the bytes sent before the reset');
      assert.ok(isPatternPrefix(got), `the backend got a clean prefix of what was sent (${got.length} bytes)`);
    }
    assert.ok((await echoOnce(l4lb.ports[1], 64 * KiB)).intact, 'l4lb still serves');
    await assertNoLeaks(l4lb, base);
  });
}
