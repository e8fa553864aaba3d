/**
 * The data path's guarantees over real sockets: byte-exact relay both ways at once,
 * half-close both ways, backpressure, teardown on errors without leaks, accepting
 * never waits on connecting, and the failure paths.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { startProxy } from '../../src/proxy/proxy.js';
import { configFromBackends } from '../../src/config/quick.js';
import { silentLogger } from '../../src/observability/log.js';
import type { AccessRecord } from '../../src/proxy/connection.js';
import type { TimeoutsConfig } from '../../src/config/types.js';
import {
  startServer, exchange, connect, readAll, request, refusedPort, blackHole, waitFor, echoServer, type StreamResult,
} from '../support/net.js';

const MiB = 1024 * 1024;

/**
 * Starts a proxy in-process with a silent logger, capturing access records; `timeouts`
 * overrides the listener's timeouts.
 */
async function proxyFor(
  ports: number[],
  o: Parameters<typeof configFromBackends>[1] = {},
  timeouts: Partial<TimeoutsConfig> = {},
) {
  const cfg = configFromBackends(ports.map((p) => `127.0.0.1:${p}`), { accessLog: 'off', ...o });
  Object.assign(cfg.listeners[0].timeouts, timeouts);
  const records: AccessRecord[] = [];
  const proxy = await startProxy(cfg, { logger: silentLogger(), onAccess: (r) => records.push(r) });
  return { proxy, port: proxy.addresses()[0].port, records };
}

function activeHandles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) counts[r] = (counts[r] ?? 0) + 1;
  return counts;
}

test('it relays 64 MiB each way at once, byte-exact, with SHA-256 checked at both ends', async (t) => {
  const SIZE = 64 * MiB;
  let backendSide: Promise<StreamResult> | undefined;
  const backend = await startServer((s) => {
    backendSide = exchange(s, SIZE);
  });
  const { proxy, port } = await proxyFor([backend.port]);
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  const client = await connect(port);
  const clientSide = await exchange(client, SIZE);
  const b = await backendSide!;
  client.destroy();
  assert.equal(clientSide.sentBytes, SIZE);
  assert.equal(b.receivedBytes, SIZE);
  assert.equal(b.receivedSha, clientSide.sentSha, 'client → backend hash');
  assert.equal(clientSide.receivedBytes, SIZE);
  assert.equal(clientSide.receivedSha, b.sentSha, 'backend → client hash');
});

test('a client that half-closes still receives the full reply', async (t) => {
  // The backend reads everything until FIN, then answers with 4 MiB and closes.
  let got = 0;
  const backend = await startServer((s) => {
    s.on('data', (c: Buffer) => (got += c.length));
    s.on('end', () => {
      s.write(Buffer.alloc(4 * MiB, 7));
      s.end(`total ${got}\n`);
    });
  });
  const { proxy, port } = await proxyFor([backend.port]);
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  const c = await connect(port);
  const reply = readAll(c);
  c.end(Buffer.alloc(MiB, 1));
  const buf = await reply;
  c.destroy();
  assert.equal(buf.length, 4 * MiB + `total ${MiB}\n`.length);
  assert.ok(buf.subarray(4 * MiB).toString().startsWith(`total ${MiB}`));
});

test('a backend that closes first lets the client keep sending until it is done', async (t) => {
  // The backend sends a banner and FIN at once, then keeps reading; it reports the count.
  let backendGot: Promise<number> | undefined;
  const backend = await startServer((s) => {
    s.end('banner\n');
    backendGot = new Promise((r) => {
      let n = 0;
      s.on('data', (c: Buffer) => (n += c.length));
      s.on('end', () => r(n));
    });
  });
  const { proxy, port, records } = await proxyFor([backend.port]);
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  const c = await connect(port);
  const reply = readAll(c);
  assert.equal((await reply).toString(), 'banner\n');
  // The client's direction is still open: send 2 MiB after receiving the backend's FIN.
  c.end(Buffer.alloc(2 * MiB, 3));
  assert.equal(await backendGot!, 2 * MiB);
  await waitFor(() => records.length === 1, 5000, 'access record');
  assert.equal(records[0].closedFirst, 'backend');
  assert.equal(records[0].reason, 'backend_closed');
  assert.equal(records[0].bytesUp, 2 * MiB);
});

test('a half-closed connection is closed after the fin timeout', async (t) => {
  // The backend never answers or closes; the client half-closes and waits.
  const backend = await startServer(() => {});
  const { proxy, port, records } = await proxyFor([backend.port], {}, { clientFinMs: 300 });
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  const c = await connect(port);
  c.on('error', () => {});
  const t0 = Date.now();
  c.end('bye');
  await once(c, 'close');
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 250 && elapsed < 5000, `closed after ${elapsed}ms`);
  await waitFor(() => records.length === 1);
  assert.equal(records[0].reason, 'client_fin_timeout');
});

test('an idle connection is closed after the idle timeout', async (t) => {
  const backend = await startServer(() => {});
  const { proxy, port, records } = await proxyFor([backend.port], {}, { idleMs: 300 });
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  const c = await connect(port);
  c.on('error', () => {});
  c.resume();
  const t0 = Date.now();
  await once(c, 'end'); // the proxy closed its side
  c.destroy();
  assert.ok(Date.now() - t0 >= 250, 'not before the idle timeout');
  await waitFor(() => records.length === 1);
  assert.equal(records[0].reason, 'idle_timeout');
});

test('errors on one side tear down the other, and nothing leaks after many connections', async (t) => {
  // Three kinds of backend behaviour, round robin: echo, reset after the first bytes,
  // and close immediately. Clients also reset some connections themselves.
  let n = 0;
  const backend = await startServer((s) => {
    const kind = n++ % 3;
    if (kind === 0) s.pipe(s);
    else if (kind === 1) s.once('data', () => s.resetAndDestroy());
    else s.resume().end();
  });
  const { proxy, port } = await proxyFor([backend.port]);
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  const before = activeHandles();
  const N = 300;
  const jobs = [];
  for (let i = 0; i < N; i++) {
    jobs.push(
      (async () => {
        const c = await connect(port);
        c.on('error', () => {});
        if (i % 5 === 4) {
          c.write('x');
          await new Promise((r) => setTimeout(r, 5));
          c.resetAndDestroy();
          return;
        }
        c.resume();
        c.end('hello');
        await once(c, 'close');
      })(),
    );
    if (jobs.length >= 50) await Promise.all(jobs.splice(0));
  }
  await Promise.all(jobs);
  await waitFor(() => proxy.activeConnections() === 0, 10_000, 'all connections closed');
  const listener = [...proxy.listeners.values()][0];
  assert.equal(listener.stats.active, 0);
  assert.equal(listener.stats.accepted, N);
  const b = [...proxy.pools.values()][0].backends[0];
  assert.equal(b.active, 0, 'backend active count back to 0');
  await waitFor(() => backend.sockets.size === 0, 5000, 'backend sockets closed');
  await waitFor(() => {
    const after = activeHandles();
    return (after.TCPSocketWrap ?? 0) <= (before.TCPSocketWrap ?? 0) && (after.Timeout ?? 0) <= (before.Timeout ?? 0) + 1;
  }, 5000, 'sockets and timers released');
});

test('a refused backend is skipped and the next one is tried', async (t) => {
  const dead = await refusedPort();
  const backend = await echoServer();
  const { proxy, port, records } = await proxyFor([dead, backend.port]);
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  for (let i = 0; i < 4; i++) assert.equal(await request(port, `ping ${i}`), `ping ${i}`);
  await waitFor(() => records.length === 4);
  assert.ok(records.some((r) => r.tries === 2), 'some connections needed a retry');
  assert.ok(records.every((r) => r.backendAddress === `127.0.0.1:${backend.port}`));
});

test('with every backend down the client is closed promptly and the access log says why', async (t) => {
  const a = await refusedPort();
  const b = await refusedPort();
  const { proxy, port, records } = await proxyFor([a, b]);
  t.after(() => proxy.close());
  const c = await connect(port);
  c.on('error', () => {});
  c.resume();
  const t0 = Date.now();
  await once(c, 'end');
  c.destroy();
  assert.ok(Date.now() - t0 < 2000);
  await waitFor(() => records.length === 1);
  assert.equal(records[0].reason, 'backend_connect_refused');
  assert.equal(records[0].tries, 2);
});

test('a black-holed backend times out within connect timeout × tries, and does not delay other clients', async (t) => {
  const hole = await blackHole();
  const good = await echoServer();
  // Two listeners: one whose only backend is black-holed, one healthy, in one proxy.
  const cfg = configFromBackends([`127.0.0.1:${hole.port}`], { accessLog: 'off', connectTimeoutMs: 500 });
  const extra = configFromBackends([`127.0.0.1:${good.port}`]);
  cfg.listeners.push({ ...extra.listeners[0], name: 'good', pool: 'good' });
  cfg.pools.push({ ...extra.pools[0], name: 'good' });
  const records: AccessRecord[] = [];
  const proxy = await startProxy(cfg, { logger: silentLogger(), onAccess: (r) => records.push(r) });
  t.after(async () => {
    await proxy.close();
    await hole.close();
    await good.close();
  });
  const [holeAddr, goodAddr] = proxy.addresses();
  // Start 20 connections stuck connecting to the black hole.
  const stuck = await Promise.all(Array.from({ length: 20 }, () => connect(holeAddr.port)));
  for (const s of stuck) {
    s.on('error', () => {});
    s.on('end', () => s.destroy());
    s.resume();
  }
  // Meanwhile other clients are served at once.
  const t0 = Date.now();
  for (let i = 0; i < 10; i++) assert.equal(await request(goodAddr.port, `x${i}`), `x${i}`);
  assert.ok(Date.now() - t0 < 400, `healthy clients served in ${Date.now() - t0}ms while 20 dials hang`);
  await Promise.all(stuck.map((s) => once(s, 'close')));
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= 400 && elapsed < 3000, `stuck clients closed after ${elapsed}ms (timeout 500ms × 1 try)`);
  await waitFor(() => records.filter((r) => r.reason === 'backend_connect_timeout').length === 20);
});

test('the client is served by round robin across backends', async (t) => {
  const servers = await Promise.all(['a', 'b', 'c'].map((n) => startServer((s) => s.end(n))));
  const { proxy, port } = await proxyFor(servers.map((s) => s.port));
  t.after(async () => {
    await proxy.close();
    await Promise.all(servers.map((s) => s.close()));
  });
  const seen = [];
  for (let i = 0; i < 6; i++) seen.push(await request(port, ''));
  // Round robin starts at a random backend (so workers do not all start at the first),
  // then rotates: every window of three sees each backend once.
  assert.deepEqual([...seen.slice(0, 3)].sort(), ['a', 'b', 'c']);
  assert.deepEqual(seen.slice(3), seen.slice(0, 3));
});

test('a listen address already in use is reported with L4LB_ERR_LISTEN', async (t) => {
  const taken = net.createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.after(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  await assert.rejects(
    startProxy(configFromBackends(['127.0.0.1:1'], { listen: `127.0.0.1:${port}` }), { logger: silentLogger() }),
    (err: Error & { code?: string }) => err.code === 'L4LB_ERR_LISTEN' && /address already in use/.test(err.message),
  );
});

test('it listens on IPv6 loopback when asked', async (t) => {
  const backend = await echoServer();
  const proxy = await startProxy(configFromBackends([`127.0.0.1:${backend.port}`], { listen: '[::1]:0', accessLog: 'off' }), {
    logger: silentLogger(),
  });
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  const a = proxy.addresses()[0];
  assert.match(a.address, /^\[::1\]:\d+$/);
  const s = net.connect({ host: '::1', port: a.port, allowHalfOpen: true });
  await once(s, 'connect');
  const reply = readAll(s);
  s.end('v6');
  assert.equal((await reply).toString(), 'v6');
});
