/**
 * Backpressure: a client that reads slowly from a fast backend must not make l4lb
 * buffer without bound. l4lb runs as its own process so its RSS is its alone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startServer, spawnL4lb, connect, rssOf } from '../support/net.js';

const MiB = 1024 * 1024;

test('l4lb memory grows by less than 64 MiB while 512 MiB flows to a slow reader', async (t) => {
  const TOTAL = 512 * MiB;
  const chunk = Buffer.alloc(MiB);
  for (let i = 0; i < chunk.length; i++) chunk[i] = (i * 31 + 7) & 0xff;
  const expected = createHash('sha256');
  for (let sent = 0; sent < TOTAL; sent += MiB) expected.update(chunk);
  const expectedSha = expected.digest('hex');

  // The backend writes as fast as the proxy lets it.
  const backend = await startServer((s) => {
    let sent = 0;
    const pump = () => {
      while (sent < TOTAL) {
        sent += MiB;
        if (!s.write(chunk)) return void s.once('drain', pump);
      }
      s.end();
    };
    pump();
  });
  const l4lb = await spawnL4lb(['--log-level', 'warn', '--access-log', 'off', `127.0.0.1:${backend.port}`]);
  t.after(async () => {
    await l4lb.stop('SIGKILL');
    await backend.close();
  });
  const pid = l4lb.child.pid!;
  const baseline = await rssOf(pid);
  let peak = baseline;
  const sampler = setInterval(() => {
    rssOf(pid).then((r) => (peak = Math.max(peak, r)), () => {});
  }, 50);

  // The client reads slowly: it pauses for 2 ms after every 256 KiB.
  const c = await connect(l4lb.port);
  const hash = createHash('sha256');
  let got = 0;
  let sinceBreak = 0;
  await new Promise<void>((resolve, reject) => {
    c.on('data', (d: Buffer) => {
      hash.update(d);
      got += d.length;
      sinceBreak += d.length;
      if (sinceBreak >= 256 * 1024) {
        sinceBreak = 0;
        c.pause();
        setTimeout(() => c.resume(), 2);
      }
    });
    c.on('end', resolve);
    c.on('error', reject);
    c.end();
  });
  clearInterval(sampler);
  c.destroy();
  assert.equal(got, TOTAL);
  assert.equal(hash.digest('hex'), expectedSha);
  const growth = peak - baseline;
  assert.ok(growth < 64 * MiB, `RSS grew by ${(growth / MiB).toFixed(1)} MiB (baseline ${(baseline / MiB).toFixed(1)} MiB)`);
});
