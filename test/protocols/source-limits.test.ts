/**
 * Per-source limits over real sockets, with clients bound to different loopback sources:
 * concurrent connections per source and new connections per second (token bucket). One noisy
 * source is refused while another still gets in. (IPv6 /64 grouping is covered by the unit
 * tests: only ::1 exists on loopback.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { echoServer, waitFor } from '../support/net.js';
import { assertCountsBalance, closed, recordWhere, sleep, startL4lb, tempDir } from './support.js';

/** An open connection through the echo pool, or null when l4lb refused it. */
async function open(port: number, localAddress: string): Promise<net.Socket | null> {
  const c = net.connect({ port, host: '127.0.0.1', localAddress });
  c.on('error', () => {});
  await once(c, 'connect');
  // Admitted: the echo comes back. Refused: l4lb closes without a byte.
  const echoed = new Promise<boolean>((resolve) => {
    c.once('data', () => resolve(true));
    void closed(c).then(() => resolve(false));
  });
  c.write('hi');
  if (await echoed) return c;
  c.destroy();
  return null;
}

test('maxConnections per source refuses the third connection of one source but not another source', async (t) => {
  const dir = await tempDir(t);
  const backend = await echoServer();
  t.after(() => backend.close());
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - { name: capped, listen: 127.0.0.1:0, pool: echo, sourceLimits: { maxConnections: 2 } }
pools:
  - { name: echo, backends: [127.0.0.1:${backend.port}] }
`,
  );
  const port = l4.port();
  const stats = l4.listener().stats;
  const sockets: net.Socket[] = [];
  t.after(() => sockets.forEach((s) => s.destroy()));
  const keep = (s: net.Socket | null) => {
    assert.ok(s, 'admitted');
    sockets.push(s);
    return s;
  };

  const first = keep(await open(port, '127.0.0.2'));
  keep(await open(port, '127.0.0.2'));
  assert.equal(await open(port, '127.0.0.2'), null, 'the third from 127.0.0.2 is refused');
  assert.equal(stats.rejected.get('source_concurrency'), 1);
  assert.equal(l4.log.warns('source_concurrency').at(-1)?.client, '127.0.0.2');
  assert.equal(backend.accepted, 2, 'the refused one never reached the backend');

  keep(await open(port, '127.0.0.3'));

  first.end();
  await waitFor(() => stats.active === 2, 5000, 'the closed connection released');
  keep(await open(port, '127.0.0.2'));
  assert.equal(stats.rejected.get('source_concurrency'), 1);
});

test('ratePerSecond with a burst lets the burst through, refuses the rest, then refills', async (t) => {
  const dir = await tempDir(t);
  const backend = await echoServer();
  t.after(() => backend.close());
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - { name: rated, listen: 127.0.0.1:0, pool: echo, sourceLimits: { ratePerSecond: 5, burst: 5 } }
pools:
  - { name: echo, backends: [127.0.0.1:${backend.port}] }
`,
  );
  const port = l4.port();
  const stats = l4.listener().stats;
  const N = 12;
  const results = await Promise.all(Array.from({ length: N }, () => open(port, '127.0.0.2')));
  const admitted = results.filter((s) => s !== null);
  admitted.forEach((s) => s.destroy());
  // 5 from the bucket; a slow machine may refill one or two more while the 12 arrive.
  assert.ok(admitted.length >= 5 && admitted.length <= 7, `${admitted.length} admitted`);
  assert.equal(stats.rejected.get('source_rate'), N - admitted.length);

  const other = await open(port, '127.0.0.3');
  assert.ok(other, 'another source has its own bucket');
  other.destroy();

  await sleep(1100); // refills 5 tokens
  const later = await Promise.all(Array.from({ length: 3 }, () => open(port, '127.0.0.2')));
  for (const s of later) {
    assert.ok(s, 'admitted again after the refill');
    s.destroy();
  }
});

test('behind a PROXY sender, per-source limits count the clients the headers name', async (t) => {
  const dir = await tempDir(t);
  const backend = await echoServer();
  t.after(() => backend.close());
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - name: behind-proxy
    listen: 127.0.0.1:0
    pool: echo
    acceptProxy: { trusted: [127.0.0.1/32] }
    sourceLimits: { maxConnections: 1 }
pools:
  - { name: echo, backends: [127.0.0.1:${backend.port}] }
`,
  );
  const sockets: net.Socket[] = [];
  t.after(() => sockets.forEach((s) => s.destroy()));
  /** All from 127.0.0.1 (the trusted sender), each naming a client. */
  async function asClient(client: string): Promise<boolean> {
    const c = net.connect({ port: l4.port(), host: '127.0.0.1' });
    c.on('error', () => {});
    sockets.push(c);
    await once(c, 'connect');
    const echoed = new Promise<boolean>((resolve) => {
      c.once('data', () => resolve(true));
      void closed(c).then(() => resolve(false));
    });
    c.write(`PROXY TCP4 ${client} 127.0.0.1 5000 80\r\nhi`);
    return echoed;
  }
  assert.equal(await asClient('10.0.0.1'), true);
  assert.equal(await asClient('10.0.0.2'), true, 'another client behind the same sender');
  assert.equal(await asClient('10.0.0.1'), false, 'the second connection of 10.0.0.1');
  const stats = l4.listener().stats;
  assert.equal(stats.rejected.get('source_concurrency'), 1);
  const rec = await recordWhere(l4, (r) => r.reason === 'source_limit');
  assert.equal(rec.client, '10.0.0.1');
  assertCountsBalance(l4.listener());
});
