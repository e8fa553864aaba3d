/**
 * Replay on an empty response (`retryOnEmptyResponse`, docs/mirroring.md), beside a real
 * redis-server: a backend that accepts, reads the request and resets (or closes) costs a
 * client nothing with the option on (the GET is sent again to Redis), and an error with it
 * off. A request larger than `maxBytes`, or a backend that answered one byte before resetting,
 * is never replayed. Replays count against `retries`, and the access log and the metrics say
 * how many there were.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type net from 'node:net';
import { startProxy, type Proxy } from '../../src/proxy/proxy.js';
import { normalizeConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/observability/log.js';
import { MetricsRegistry } from '../../src/observability/metrics.js';
import type { AccessRecord } from '../../src/proxy/connection.js';
import { connect, startServer, waitFor, type TestServer } from '../support/net.js';
import { RedisServer } from '../support/redis.js';

interface TestContext {
  after(fn: () => unknown): void;
}

/** A backend that reads the first chunk of a request and then resets the connection (RST). */
function resetter(): Promise<TestServer> {
  return startServer((s) => s.once('data', () => s.resetAndDestroy()));
}

/** l4lb in this process: listener → pool `main` of `ports` (round-robin, no passive ejection). */
async function proxyWith(t: TestContext, ports: number[], replay: Record<string, unknown> | undefined, retries?: number) {
  const cfg = normalizeConfig(
    {
      log: { level: 'silent', access: 'off' },
      listeners: [{ name: 'web', listen: '127.0.0.1:0', pool: 'main', ...(retries !== undefined && { retries }) }],
      pools: [
        {
          name: 'main',
          backends: ports.map((p) => `127.0.0.1:${p}`),
          passive: { consecutiveFailures: 0 },
          ...(replay && { retryOnEmptyResponse: replay }),
        },
      ],
    },
    'test',
  );
  const records: AccessRecord[] = [];
  const proxy: Proxy = await startProxy(cfg, { logger: silentLogger(), onAccess: (r) => records.push(r) });
  t.after(() => proxy.close());
  return { proxy, port: proxy.addresses()[0].port, records };
}

/** RESP of a command. */
function resp(...args: string[]): string {
  return `*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`;
}

/**
 * Sends `request` on a new connection through l4lb and reads until `expected` arrived (resolves
 * true) or the connection ends or fails first (resolves false, with what came).
 */
async function exchange(port: number, request: string, expected: string): Promise<{ ok: boolean; got: string }> {
  const s: net.Socket = await connect(port);
  return new Promise((resolve) => {
    let got = '';
    const finish = (ok: boolean) => {
      s.destroy();
      resolve({ ok, got });
    };
    s.on('data', (c: Buffer) => {
      got += c.toString('latin1');
      if (got === expected) finish(true);
      else if (!expected.startsWith(got)) finish(false);
    });
    s.on('error', () => finish(false));
    s.on('end', () => finish(got === expected));
    s.write(request);
  });
}

async function gets(port: number, n: number): Promise<Array<{ ok: boolean; got: string }>> {
  const out = [];
  // A few at a time, so that the round-robin sends some of each batch to every backend.
  for (let i = 0; i < n; i += 4) {
    out.push(...(await Promise.all(Array.from({ length: Math.min(4, n - i) }, () => exchange(port, resp('GET', 'k'), '$5\r\nvalue\r\n')))));
  }
  return out;
}

test('with retryOnEmptyResponse every GET succeeds beside a backend that reads the request and resets, or closes', async (t) => {
  const redis = await RedisServer.start();
  t.after(() => redis.close());
  assert.equal(await redis.command('SET', 'k', 'value'), '+OK\r\n');
  const reset = await resetter();
  t.after(() => reset.close());
  const closer = await startServer((s) => s.once('data', () => s.end()));
  t.after(() => closer.close());
  const { proxy, port, records } = await proxyWith(t, [reset.port, closer.port, redis.port], { maxBytes: '16KiB' });

  const results = await gets(port, 30);
  assert.deepEqual(results.filter((r) => !r.ok), [], 'every GET got its value');
  const dead = reset.accepted + closer.accepted;
  assert.ok(reset.accepted > 0 && closer.accepted > 0, `reset ${reset.accepted}, closed ${closer.accepted}`);
  await waitFor(() => records.length === 30, 5000, 'access lines');
  const replays = records.reduce((a, r) => a + (r.replays ?? 0), 0);
  assert.equal(replays, dead, 'one replay per connection a failing backend took');
  for (const r of records) {
    assert.equal(r.backend, `127.0.0.1:${redis.port}`, 'every connection ended on Redis');
    assert.equal(r.tries, 1 + r.replays!, 'each replay is a try');
    assert.equal(r.bytesDown, '$5\r\nvalue\r\n'.length);
  }
  const l = proxy.status().listeners[0];
  assert.equal(l.replays, dead);
  const text = await new MetricsRegistry(async () => proxy.status()).render();
  assert.match(text, new RegExp(`^l4lb_replays_total\\{listener="web"\\} ${dead}$`, 'm'));
  // A backend that closed before answering counts as a failed connect for passive health.
  const failures = Object.fromEntries(proxy.status().pools[0].backends.map((b) => [b.name, b.failures]));
  assert.equal(failures[`127.0.0.1:${reset.port}`], reset.accepted);
  assert.equal(failures[`127.0.0.1:${closer.port}`], closer.accepted);
});

test('without retryOnEmptyResponse the clients routed to the resetting backend see errors', async (t) => {
  const redis = await RedisServer.start();
  t.after(() => redis.close());
  await redis.command('SET', 'k', 'value');
  const reset = await resetter();
  t.after(() => reset.close());
  const { proxy, port, records } = await proxyWith(t, [reset.port, redis.port], undefined);
  const results = await gets(port, 20);
  const failed = results.filter((r) => !r.ok).length;
  assert.ok(reset.accepted > 0);
  assert.equal(failed, reset.accepted, 'every connection to the resetting backend failed');
  await waitFor(() => records.length === 20, 5000, 'access lines');
  assert.ok(records.every((r) => r.replays === undefined));
  assert.equal(proxy.status().listeners[0].replays, 0);
});

test('a request larger than maxBytes is never replayed', async (t) => {
  const redis = await RedisServer.start();
  t.after(() => redis.close());
  const reset = await resetter();
  t.after(() => reset.close());
  const { proxy, port } = await proxyWith(t, [reset.port, redis.port], { maxBytes: '1KiB' });
  const big = 'v'.repeat(4096);
  const results = [];
  for (let i = 0; i < 12; i += 4) {
    results.push(...(await Promise.all(Array.from({ length: 4 }, (_, j) => exchange(port, resp('SET', `big${i + j}`, big), '+OK\r\n')))));
  }
  assert.ok(reset.accepted > 0);
  assert.equal(results.filter((r) => !r.ok).length, reset.accepted, 'what the resetting backend took failed');
  assert.equal(proxy.status().listeners[0].replays, 0);
  assert.equal(Number((await redis.command('DBSIZE')).slice(1)), 12 - reset.accepted, 'no SET reached Redis twice or by replay');
});

test('a backend that answered one byte before resetting is never replayed', async (t) => {
  const redis = await RedisServer.start();
  t.after(() => redis.close());
  await redis.command('SET', 'k', 'value');
  const oneByte = await startServer((s) =>
    s.once('data', () => s.write('$', () => setTimeout(() => s.resetAndDestroy(), 50))),
  );
  t.after(() => oneByte.close());
  const { proxy, port } = await proxyWith(t, [oneByte.port, redis.port], { maxBytes: '16KiB' });
  const results = await gets(port, 12);
  assert.ok(oneByte.accepted > 0);
  const failed = results.filter((r) => !r.ok);
  assert.equal(failed.length, oneByte.accepted);
  for (const r of failed) assert.equal(r.got, '$', 'the client got the one byte, then the reset');
  assert.equal(proxy.status().listeners[0].replays, 0);
});

test('replays count against retries: with every backend resetting, a client tries at most 1 + retries backends', async (t) => {
  const resets = await Promise.all([resetter(), resetter(), resetter()]);
  t.after(() => Promise.all(resets.map((r) => r.close())));
  const { port, records } = await proxyWith(t, resets.map((r) => r.port), { maxBytes: '16KiB' }, 1);
  const r = await exchange(port, resp('GET', 'k'), '$5\r\nvalue\r\n');
  assert.equal(r.ok, false);
  await waitFor(() => records.length === 1, 5000, 'access line');
  assert.equal(records[0].tries, 2);
  assert.equal(records[0].replays, 1);
  assert.equal(resets.reduce((a, s) => a + s.accepted, 0), 2);
});
