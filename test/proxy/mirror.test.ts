/**
 * Traffic mirroring with real servers (docs/mirroring.md): a real redis-server behind l4lb and
 * another as its mirror. At percent 100 a redis-benchmark write load leaves the mirror with the
 * primary's keys; at percent 10 about a tenth of the connections is mirrored; a mirror paused
 * with SIGSTOP or killed mid-run costs the primary nothing (every reply arrives, the drops are
 * counted); a reload adds, changes and removes a mirror; a drain does not wait for mirror
 * connections; the metrics show what was mirrored and dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { once } from 'node:events';
import { startProxy, type Proxy } from '../../src/proxy/proxy.js';
import { normalizeConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/observability/log.js';
import { MetricsRegistry } from '../../src/observability/metrics.js';
import type { AccessRecord } from '../../src/proxy/connection.js';
import { connect, readAll, refusedPort, startServer, waitFor, type TestServer } from '../support/net.js';
import { RedisServer } from '../support/redis.js';
import type { StatusSnapshot } from '../../src/admin/status.js';
import { accessLines, adminGet, backends, batch, listener, namedBackend, startCluster, whoAnswers } from '../cluster/helpers.js';

const run = promisify(execFile);

interface TestContext {
  after(fn: () => unknown): void;
}

/** l4lb in this process: listener `web` → pool `main` (`mainBackends`), optionally mirrored to pool `shadow`. */
async function proxyWith(
  t: TestContext,
  mainBackends: number[],
  shadowBackends: number[],
  mirror: Record<string, unknown> | undefined,
): Promise<{ proxy: Proxy; port: number; records: AccessRecord[]; config: (m: Record<string, unknown> | undefined) => ReturnType<typeof normalizeConfig> }> {
  const config = (m: Record<string, unknown> | undefined) =>
    normalizeConfig(
      {
        log: { level: 'silent', access: 'off' },
        listeners: [{ name: 'web', listen: '127.0.0.1:0', pool: 'main' }],
        pools: [
          { name: 'main', backends: mainBackends.map((p) => `127.0.0.1:${p}`), ...(m && { mirror: m }) },
          { name: 'shadow', backends: shadowBackends.map((p) => `127.0.0.1:${p}`) },
        ],
      },
      'test',
    );
  const records: AccessRecord[] = [];
  const proxy = await startProxy(config(mirror), { logger: silentLogger(), onAccess: (r) => records.push(r) });
  t.after(() => proxy.close());
  return { proxy, port: proxy.addresses()[0].port, records, config };
}

/** A mirror backend that reads and discards, and closes after the client's FIN. */
function sinkServer(): Promise<TestServer> {
  return startServer((s) => {
    s.resume();
    s.on('end', () => s.end());
  });
}

function mirrorOf(proxy: Proxy) {
  return proxy.status().pools[0].mirror;
}

/** Every key of a Redis server (redis-cli --scan), sorted. */
async function keysOf(r: RedisServer): Promise<string[]> {
  const { stdout } = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(r.port), '--scan'], { maxBuffer: 64 * 1024 * 1024 });
  return stdout.split('\n').filter(Boolean).sort();
}

/** RESP for SET key value. */
function setCommand(key: string, value: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`*3\r\n$3\r\nSET\r\n$${key.length}\r\n${key}\r\n$${value.length}\r\n`), value, Buffer.from('\r\n')]);
}

/**
 * One client connection through l4lb sending `count` SETs of `valueSize` bytes at once
 * (pipelined); resolves once every reply is `+OK`, then closes. Rejects on anything else.
 */
async function setMany(port: number, prefix: string, count: number, valueSize: number): Promise<void> {
  const s = await connect(port);
  const value = Buffer.alloc(valueSize, 0x61);
  let replies = '';
  const done = new Promise<void>((resolve, reject) => {
    s.on('data', (c: Buffer) => {
      replies += c.toString('latin1');
      if (replies.length >= count * 5) {
        if (replies === '+OK\r\n'.repeat(count)) resolve();
        else reject(new Error(`unexpected replies: ${replies.slice(0, 200)}`));
      }
    });
    s.on('error', reject);
    s.on('end', () => reject(new Error(`closed after ${replies.length / 5} of ${count} replies`)));
  });
  for (let i = 0; i < count; i++) s.write(setCommand(`${prefix}:${i}`, value));
  await done;
  s.end();
  s.destroy();
}

test('redis-benchmark SETs through l4lb at percent 100 leave the mirror Redis with the same keys as the primary', async (t) => {
  const primary = await RedisServer.start();
  t.after(() => primary.close());
  const shadow = await RedisServer.start();
  t.after(() => shadow.close());
  const { proxy, port } = await proxyWith(t, [primary.port], [shadow.port], { pool: 'shadow', percent: 100 });

  await run('redis-benchmark', ['-h', '127.0.0.1', '-p', String(port), '-t', 'set', '-r', '100000', '-n', '20000', '-q'], { timeout: 180_000 });
  await waitFor(() => mirrorOf(proxy)?.active === 0, 30_000, 'mirror connections done');

  const keys = await keysOf(primary);
  assert.ok(keys.length > 10_000, `the benchmark wrote ${keys.length} distinct keys`);
  assert.deepEqual(await keysOf(shadow), keys, 'the mirror has exactly the primary’s keys');
  const m = mirrorOf(proxy)!;
  assert.deepEqual(m.dropped, {}, 'nothing dropped');
  assert.ok(m.connections >= 50, `${m.connections} connections mirrored (redis-benchmark opens 50)`);
});

test('at percent 10 a share near a tenth of 400 connections is mirrored', async (t) => {
  const N = 400;
  const primary = await startServer((s) => s.pipe(s));
  t.after(() => primary.close());
  const shadow = await sinkServer();
  t.after(() => shadow.close());
  const { proxy, port } = await proxyWith(t, [primary.port], [shadow.port], { pool: 'shadow', percent: 10 });
  for (let batch = 0; batch < N; batch += 50) {
    await Promise.all(
      Array.from({ length: 50 }, async () => {
        const s = await connect(port);
        const reply = readAll(s);
        s.end('ping\n');
        assert.equal((await reply).toString(), 'ping\n');
        s.destroy();
      }),
    );
  }
  await waitFor(() => mirrorOf(proxy)?.active === 0, 10_000, 'mirror connections done');
  const m = mirrorOf(proxy)!;
  // Binomial(400, 0.1): mean 40, standard deviation 6; 15..70 is beyond four of them each way.
  assert.ok(m.connections >= 15 && m.connections <= 70, `${m.connections} of ${N} mirrored`);
  assert.equal(shadow.accepted, m.connections, 'one mirror connection per mirrored connection');
  assert.deepEqual(m.dropped, {});
  assert.equal(m.bytes, m.connections * 'ping\n'.length);
});

test('a mirror paused with SIGSTOP costs the primary no error and no stall: the mirror is dropped (buffer_full)', async (t) => {
  const CLIENTS = 4;
  const SETS = 300;
  const VALUE = 100 * 1024; // 30 MB per connection: beyond the kernel's socket buffers and the mirror's 256 KiB
  const primary = await RedisServer.start();
  t.after(() => primary.close());
  const shadow = await RedisServer.start();
  t.after(() => shadow.close()); // SIGCONT, then kill
  const { proxy, port, records } = await proxyWith(t, [primary.port], [shadow.port], { pool: 'shadow', percent: 100, bufferSize: '256KiB' });
  shadow.pause();

  // Completing at all while the mirror is stopped shows the primary never waited for it.
  await Promise.all(Array.from({ length: CLIENTS }, (_, i) => setMany(port, `c${i}`, SETS, VALUE)));
  const keys = await keysOf(primary);
  assert.equal(keys.length, CLIENTS * SETS);
  await waitFor(() => records.length === CLIENTS, 5000, 'access lines');
  const m = mirrorOf(proxy)!;
  assert.equal(m.connections, CLIENTS);
  assert.equal(m.dropped.buffer_full, CLIENTS, `dropped: ${JSON.stringify(m.dropped)}`);
  assert.equal(m.active, 0, 'dropped mirror connections are closed');
  for (const r of records) {
    assert.equal(r.mirrorDropped, 'buffer_full');
    assert.ok(r.mirrorBytes! < r.bytesUp, 'the mirror got only part of it');
  }
});

test('a mirror killed mid-run costs the primary no error: drops are counted, every primary write lands', async (t) => {
  const ROUNDS = 12;
  const PER_ROUND = 8;
  const primary = await RedisServer.start();
  t.after(() => primary.close());
  const shadow = await RedisServer.start();
  t.after(() => shadow.close());
  const { proxy, port } = await proxyWith(t, [primary.port], [shadow.port], { pool: 'shadow', percent: 100 });
  let killed: Promise<void> | undefined;
  for (let round = 0; round < ROUNDS; round++) {
    const clients = Array.from({ length: PER_ROUND }, (_, i) => setMany(port, `r${round}c${i}`, 200, 1024));
    // Mid-round: some mirror connections are open and carrying data when the mirror dies.
    if (round === ROUNDS / 2) killed = shadow.kill();
    // The later rounds start once it is gone: a SIGKILLed process on a loaded machine can take
    // a few rounds to exit, and its listening socket accepts until then.
    await Promise.all([...clients, killed]);
  }
  assert.equal((await keysOf(primary)).length, ROUNDS * PER_ROUND * 200);
  await waitFor(() => mirrorOf(proxy)?.active === 0, 10_000, 'mirror connections done');
  const m = mirrorOf(proxy)!;
  assert.equal(m.connections, ROUNDS * PER_ROUND);
  const dropped = Object.values(m.dropped).reduce((a, b) => a + b, 0);
  // Every connection of the rounds after the kill found no mirror to reach (refused, then ejected).
  assert.ok(dropped >= (ROUNDS / 2 - 1) * PER_ROUND, `dropped: ${JSON.stringify(m.dropped)}`);
  assert.ok((m.dropped.connect_failed ?? 0) >= 1, `a refused mirror connect counts as connect_failed: ${JSON.stringify(m.dropped)}`);
});

test('a reload adds, changes and removes a mirror; existing connections keep theirs', async (t) => {
  const primary = await startServer((s) => s.pipe(s));
  t.after(() => primary.close());
  const shadow = await sinkServer();
  t.after(() => shadow.close());
  const { proxy, port, config } = await proxyWith(t, [primary.port], [shadow.port], undefined);
  const ping = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const s = await connect(port);
      const reply = readAll(s);
      s.end('x');
      await reply;
      s.destroy();
    }
  };
  await ping(3);
  assert.equal(shadow.accepted, 0);
  assert.equal(mirrorOf(proxy), undefined);

  // A connection relaying across the reload that adds the mirror is not mirrored...
  const open = await connect(port);
  const openReply = readAll(open);
  const echoed = once(open, 'data');
  open.write('a');
  await echoed; // relaying: its sides were made before the reload
  await proxy.reload(config({ pool: 'shadow', percent: 100 }));
  await ping(3);
  await waitFor(() => shadow.accepted === 3, 5000, 'three mirrored');
  open.end('y');
  assert.equal((await openReply).toString(), 'ay');
  open.destroy();
  // ...and one open across the reload that removes it keeps its mirror.
  const kept = await connect(port);
  await waitFor(() => shadow.accepted === 4, 5000, 'the fourth mirror connection');
  await proxy.reload(config({ pool: 'shadow', percent: 0 }));
  await ping(3);
  assert.equal(mirrorOf(proxy)?.percent, 0);
  await proxy.reload(config(undefined));
  await ping(2);
  const keptReply = readAll(kept);
  kept.end('kept');
  assert.equal((await keptReply).toString(), 'kept');
  kept.destroy();
  await waitFor(() => shadow.sockets.size === 0, 5000, 'mirror connections closed');
  assert.equal(shadow.accepted, 4, 'no mirror at percent 0 or once removed');
  assert.equal(mirrorOf(proxy), undefined);
});

test('drain does not wait for mirror connections, and closes them', async (t) => {
  const primary = await startServer((s) => s.pipe(s));
  t.after(() => primary.close());
  // A mirror that reads nothing and never closes: its connection would last the grace time.
  const shadow = await startServer((s) => s.pause());
  t.after(() => shadow.close());
  const { proxy, port } = await proxyWith(t, [primary.port], [shadow.port], { pool: 'shadow', percent: 100 });
  const s = await connect(port);
  const reply = readAll(s);
  s.end('bye');
  assert.equal((await reply).toString(), 'bye');
  s.destroy();
  await waitFor(() => proxy.activeConnections() === 0, 5000, 'the primary closed');
  assert.equal(mirrorOf(proxy)?.active, 1, 'the mirror connection is still open');
  const started = performance.now();
  await proxy.drain(20_000, 0);
  assert.ok(performance.now() - started < 10_000, 'the drain did not wait for the mirror');
  // Counted down when the mirror socket reports it closed (the paused peer reads nothing to notice).
  await waitFor(() => mirrorOf(proxy)?.active === 0 && proxy.mirrors.size === 0, 5000, 'the mirror connection closed');
});

test('the metrics and the access log show mirrored bytes and drops by reason', async (t) => {
  const primary = await startServer((s) => s.pipe(s));
  t.after(() => primary.close());
  const dead = await refusedPort();
  const { proxy, port, records } = await proxyWith(t, [primary.port], [dead], { pool: 'shadow', percent: 100 });
  const s = await connect(port);
  const reply = readAll(s);
  s.write('hello');
  await waitFor(() => mirrorOf(proxy)?.dropped.connect_failed === 1, 5000, 'the mirror connect failed');
  s.end();
  assert.equal((await reply).toString(), 'hello');
  s.destroy();
  await waitFor(() => records.length === 1 && mirrorOf(proxy)?.active === 0, 5000, 'closed');
  const text = await new MetricsRegistry(async () => proxy.status()).render();
  assert.match(text, /^l4lb_mirror_connections_total\{pool="main"\} 1$/m);
  assert.match(text, /^l4lb_mirror_dropped_total\{pool="main",reason="connect_failed"\} 1$/m);
  assert.match(text, /^l4lb_mirror_bytes_total\{pool="main"\} 0$/m);
  assert.match(text, /^l4lb_mirror_connections_active\{pool="main"\} 0$/m);
  assert.equal(records[0].mirrorDropped, 'connect_failed');
  assert.equal(records[0].mirrorBytes, 0);
  assert.equal(records[0].bytesUp, 5);
  // The failed mirror connect counts against the mirror backend's passive health, as any connect.
  assert.equal(proxy.status().pools[1].backends[0].failures, 1);
});

test('with two workers every worker mirrors, and the admin API and metrics show the sums', async (t) => {
  const a = await namedBackend('a');
  t.after(() => a.close());
  const shadow = await sinkServer();
  t.after(() => shadow.close());
  const c = await startCluster({
    listeners: [listener('main', 'web')],
    pools: [
      { name: 'web', backends: backends(a), mirror: { pool: 'shadow', percent: 100 } },
      { name: 'shadow', backends: [`127.0.0.1:${shadow.port}`] },
    ],
    admin: { listen: '127.0.0.1:0' },
  });
  t.after(() => c.close());
  await batch(40, 8, () => whoAnswers(c.port));
  await waitFor(() => shadow.accepted === 40 && shadow.sockets.size === 0, 10_000, 'forty mirror connections, all closed');
  const api = await c.adminUrl();
  await waitFor(
    async () => ((await adminGet(`${api}/api/v1/status`)) as StatusSnapshot).pools[0].mirror?.connections === 40,
    5000,
    'the workers reported their mirror counters',
  );
  const m = ((await adminGet(`${api}/api/v1/status`)) as StatusSnapshot).pools[0].mirror!;
  assert.equal(m.pool, 'shadow');
  assert.deepEqual(m.dropped, {});
  assert.ok(m.bytes > 0);
  const metrics = (await adminGet(`${api}/metrics`)) as string;
  assert.match(metrics, /^l4lb_mirror_connections_total\{pool="web"\} 40$/m);
  await waitFor(() => accessLines(c).length === 40, 5000, 'access lines');
  assert.ok(accessLines(c).every((l) => typeof l.mirrorBytes === 'number'), 'access lines carry mirrorBytes');
});
