/**
 * Per-source limits shared through a real redis-server: several l4lb instances (one in this
 * process, others `l4lb --config` processes, one of them with `workers: 2`) count every
 * connection of a source together; and what happens when Redis is killed, paused or an
 * instance dies.
 *
 * Clients connect from distinct loopback addresses (all of 127.0.0.0/8 is loopback on Linux),
 * so each address is a source of its own. The backend greets every connection with `ok\n`:
 * a connection that reads it was admitted; one closed without it was refused.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProxy, type Proxy } from '../../src/proxy/proxy.js';
import { ProxyStatusSource } from '../../src/admin/proxy-source.js';
import { MetricsRegistry } from '../../src/observability/metrics.js';
import { silentLogger } from '../../src/observability/log.js';
import { autoLeaseSize } from '../../src/admission/shared-source-limits.js';
import { spawnL4lb, startServer, waitFor, type CliProcess, type TestServer } from '../support/net.js';
import { RedisServer } from '../support/redis.js';
import { captureLogger, configFrom } from '../discovery/support.js';

const TIMEOUT = { timeout: 120_000 };
/** A dead holder's slots cannot be free before most of its lease TTL passed (renewals come every third). */
const SLOT_MIN_SHARE = 0.5;

/** A backend that greets and holds each connection until the client closes it. */
function greeter(): Promise<TestServer> {
  return startServer((s) => {
    s.on('error', () => {});
    s.write('ok\n');
    s.on('end', () => s.end());
  });
}

/** An open client connection that was admitted, or `undefined` when l4lb refused it. */
async function open(port: number, localAddress: string, waitMs = 5000): Promise<net.Socket | undefined> {
  const s = net.connect({ port, host: '127.0.0.1', localAddress });
  s.on('error', () => {});
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`no answer from :${port} within ${waitMs}ms (from ${localAddress})`));
    }, waitMs);
    s.once('data', () => {
      clearTimeout(timer);
      resolve(s);
    });
    s.once('close', () => {
      clearTimeout(timer);
      resolve(undefined);
    });
  });
}

/** One connection that is closed at once: whether it was admitted. */
async function attempt(port: number, localAddress: string): Promise<boolean> {
  const s = await open(port, localAddress);
  s?.destroy();
  return s !== undefined;
}

/**
 * The config of every instance. The store timeout is 1 s unless a test is about the timeout: on a
 * loaded machine the default 50 ms is sometimes missed, and the store would then be away (as it
 * should) in a test about something else.
 */
function yaml(o: { port: number; redis: string; workers?: number; leaseTtl?: string; timeout?: string; rateListener?: boolean }): string {
  const shared = `shared: { redis: "${o.redis}", prefix: "t:", leaseTtl: ${o.leaseTtl ?? '10s'}, timeout: ${o.timeout ?? '1s'} }`;
  return `
workers: ${o.workers ?? 1}
listeners:
  - name: conc
    listen: 127.0.0.1:0
    pool: app
    sourceLimits: { maxConnections: 10, ${shared} }
${
  o.rateListener === false
    ? ''
    : `  - name: rate
    listen: 127.0.0.1:0
    pool: app
    sourceLimits: { ratePerSecond: 20, burst: 20, ${shared} }
`
}pools:
  - name: app
    backends: [ "127.0.0.1:${o.port}" ]
log: { level: info, access: "off" }
`;
}

/** Starts an `l4lb --config` process; `ports` are its listeners in config order. */
async function cli(dir: string, name: string, text: string, listeners: number): Promise<CliProcess> {
  const file = join(dir, `${name}.yaml`);
  await writeFile(file, text);
  return spawnL4lb(['--config', file], { listeners });
}

/** Pids of the processes whose log says their store is up: `connected`, or `back` after a fall-back. */
function sharingPids(stderr: string): Set<number> {
  const pids = new Set<number>();
  for (const line of stderr.split('\n')) {
    if (!line.includes('limits are shared')) continue;
    pids.add((JSON.parse(line) as { pid: number }).pid);
  }
  return pids;
}

function portsOf(c: CliProcess): number[] {
  return c.addresses.map((a) => Number(a.slice(a.lastIndexOf(':') + 1)));
}

/**
 * Two instances on one Redis: the backend, the Redis, a directory for `b`'s config file, and
 * `a` (in process) and `b` (an `l4lb` process) once the test starts them. All go after it.
 */
interface TwoInstances {
  backend: TestServer;
  redis: RedisServer;
  dir: string;
  sockets: net.Socket[];
  a?: Proxy;
  b?: CliProcess;
}

async function twoInstances(t: TestContext, stopB: NodeJS.Signals): Promise<TwoInstances> {
  const backend = await greeter();
  const redis = await RedisServer.start();
  const dir = await mkdtemp(join(tmpdir(), 'l4lb-shared-'));
  const f: TwoInstances = { backend, redis, dir, sockets: [] };
  t.after(async () => {
    for (const s of f.sockets) s.destroy();
    await f.a?.close();
    await f.b?.stop(stopB);
    await backend.close();
    await redis.close();
    await rm(dir, { recursive: true, force: true });
  });
  return f;
}

test('two instances (one with workers: 2) sharing a Redis hold a source to its rate and its maxConnections across all their processes', TIMEOUT, async (t) => {
  const f = await twoInstances(t, 'SIGTERM');
  const { backend, redis, dir, sockets } = f;
  const text = (workers: number) => yaml({ port: backend.port, redis: redis.url, workers });
  const { logger, lines } = captureLogger('info');
  const a = (f.a = await startProxy(configFrom(text(1)), { logger }));
  const b = (f.b = await cli(dir, 'b', text(2), 2));
  const [aConc, aRate] = a.addresses().map((x) => x.port);
  const [bConc, bRate] = portsOf(b);
  await waitFor(() => a.sourceStores[0]?.state === 'up', 5000, 'the in-process instance to reach Redis');
  await waitFor(() => sharingPids(b.stderr()).size >= 2, 20_000, 'both workers of the other instance to reach Redis');
  assert.ok(lines.some((l) => /limits are shared/.test(String(l.msg))), 'the store connection is logged');
  // One connection per process: this process, and each of the two workers.
  assert.equal(await redis.clients(), 3, 'one Redis connection per process');

  // --- rate: 20/s, burst 20, from one source spread over the three processes for ~5 s ---
  const processes = 3;
  const lease = autoLeaseSize(20, 20, 0);
  const ports = [aRate, bRate];
  const tries: Promise<boolean>[] = [];
  const t0 = performance.now();
  for (let i = 0; i < 500; i++) {
    tries.push(attempt(ports[i % 2], '127.0.0.21'));
    await new Promise((r) => setTimeout(r, 10));
  }
  const results = await Promise.all(tries);
  const admitted = results.filter(Boolean).length;
  const viaB = results.filter((ok, i) => ok && i % 2 === 1).length;
  const seconds = (performance.now() - t0) / 1000;
  // docs/deployment.md: at most burst + rate × seconds + leaseSize per process.
  const bound = Math.floor(20 + 20 * seconds + processes * lease);
  t.diagnostic(`rate: ${admitted} of 500 admitted (${viaB} through the 2-worker instance) in ${seconds.toFixed(2)} s across ${processes} processes; bound ${bound}`);
  assert.ok(admitted <= bound, `${admitted} admitted in ${seconds.toFixed(1)} s; the shared limit allows at most ${bound}`);
  // Three processes with local limits only would admit up to three times the limit.
  assert.ok(admitted >= 20, `${admitted} admitted: at least the burst gets through`);
  // Another source is not affected.
  for (let i = 0; i < 4; i++) assert.equal(await attempt(ports[i % 2], '127.0.0.22'), true, 'another source is admitted');

  // --- concurrency: 10 per source, across the instances ---
  const conc = [aConc, bConc];
  const held = await Promise.all(Array.from({ length: 30 }, (_, i) => open(conc[i % 2], '127.0.0.23')));
  const inUse = held.filter((s): s is net.Socket => s !== undefined);
  sockets.push(...inUse);
  assert.equal(inUse.length, 10, `${inUse.length} of 30 connections of one source admitted across the instances`);
  for (let i = 0; i < 4; i++) {
    const s = await open(conc[i % 2], '127.0.0.24');
    assert.ok(s, 'another source is admitted while the first is at its maximum');
    sockets.push(s);
  }
  // Closing them frees the slots for any instance.
  for (const s of inUse) s.destroy();
  await waitFor(async () => (await attempt(bConc, '127.0.0.23')) && (await attempt(aConc, '127.0.0.23')), 10_000, 'the slots to be free again');
});

test('Redis killed mid-run: connections go on under local limits, the status shows the store away, and a restarted Redis brings shared limits back', TIMEOUT, async (t) => {
  const backend = await greeter();
  const redis = await RedisServer.start();
  const proxies: Proxy[] = [];
  const sockets: net.Socket[] = [];
  t.after(async () => {
    for (const s of sockets) s.destroy();
    for (const p of proxies) await p.close();
    await backend.close();
    await redis.close();
  });
  const { logger, lines } = captureLogger('info');
  const cfg = configFrom(yaml({ port: backend.port, redis: redis.url, rateListener: false }));
  proxies.push(await startProxy(cfg, { logger }), await startProxy(cfg, { logger: silentLogger() }));
  const [a, b] = proxies;
  const [pa, pb] = proxies.map((p) => p.addresses()[0].port);
  await waitFor(() => proxies.every((p) => p.sourceStores[0].state === 'up'), 5000, 'both instances to reach Redis');
  const status = new ProxyStatusSource(a);
  t.after(() => status.close());

  // Shared: 10 on one instance, and the other refuses the 11th.
  for (let i = 0; i < 10; i++) sockets.push((await open(pa, '127.0.0.31'))!);
  assert.equal(await attempt(pb, '127.0.0.31'), false, 'the 11th connection is refused by the other instance');
  assert.deepEqual(status.snapshot().process.sourceLimitStore, { processes: 1, away: 0, errors: 0, fallbacks: 0 });

  await redis.kill();
  await waitFor(() => a.sourceStores[0].state === 'away' && b.sourceStores[0].state === 'away', 5000, 'the store to be seen away');
  // Local limits: each instance counts its own; b has none of the source's connections.
  const local: net.Socket[] = [];
  for (let i = 0; i < 10; i++) {
    const s = await open(pb, '127.0.0.31');
    assert.ok(s, `connection ${i + 1} admitted under b's local limit`);
    local.push(s);
  }
  assert.equal(await attempt(pb, '127.0.0.31'), false, "b's local limit holds");
  assert.equal(await attempt(pa, '127.0.0.31'), false, "a's local limit holds (it has 10)");
  assert.equal(await attempt(pa, '127.0.0.32'), true, 'another source goes on');
  const away = status.snapshot().process.sourceLimitStore!;
  assert.equal(away.away, 1);
  assert.equal(away.fallbacks, 1);
  assert.ok(away.errors >= 1);
  const metrics = await new MetricsRegistry(() => Promise.resolve(status.snapshot())).render();
  assert.match(metrics, /^l4lb_source_limit_store_away 1$/m);
  assert.match(metrics, /^l4lb_source_limit_store_fallbacks_total 1$/m);
  const awayLines = lines.filter((l) => l.msg === 'source-limit store away: local limits apply until it is back');
  assert.equal(awayLines.length, 1, 'the fall-back is logged once');
  assert.equal(awayLines[0].level, 40);

  // Redis comes back (empty): shared limits again, with every live connection registered.
  await redis.restart();
  await waitFor(() => a.sourceStores[0].state === 'up' && b.sourceStores[0].state === 'up', 10_000, 'both instances to be back on the store');
  assert.equal(lines.filter((l) => l.msg === 'source-limit store back: limits are shared again').length, 1, 'the recovery is logged once');
  assert.equal(status.snapshot().process.sourceLimitStore!.away, 0);
  // 20 live connections are registered against a maximum of 10: both instances refuse.
  assert.equal(await attempt(pa, '127.0.0.31'), false);
  assert.equal(await attempt(pb, '127.0.0.31'), false);
  for (const s of local) s.destroy();
  for (const s of sockets.splice(0)) s.destroy();
  // Once they are gone, the source gets its 10 again, across both instances (one may refuse
  // for a moment while the other gives back the slots it held), and not one more.
  await waitFor(
    async () => {
      const s = await open(sockets.length % 2 ? pa : pb, '127.0.0.31');
      if (s) sockets.push(s);
      return sockets.length >= 10;
    },
    10_000,
    'the source to get its 10 connections again',
  );
  assert.equal(await attempt(pb, '127.0.0.31'), false, 'shared limits are back');
  assert.equal(await attempt(pa, '127.0.0.31'), false, 'shared limits are back');
});

test('Redis paused (SIGSTOP): a new connection waits at most the store timeout, then local limits apply without waiting', TIMEOUT, async (t) => {
  const backend = await greeter();
  const redis = await RedisServer.start();
  let a: Proxy | undefined;
  t.after(async () => {
    redis.resume();
    await a?.close();
    await backend.close();
    await redis.close();
  });
  a = await startProxy(configFrom(yaml({ port: backend.port, redis: redis.url, timeout: '50ms' })), { logger: silentLogger() });
  const [, rate] = a.addresses().map((x) => x.port);
  await waitFor(() => a!.sourceStores[0].state === 'up', 5000, 'the store to be up');

  redis.pause();
  // Each is a new source: each would need the store. The first waits for it (timeout 50 ms).
  const waits: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    assert.equal(await attempt(rate, `127.0.0.${41 + i}`), true, 'admitted under the local limits');
    waits.push(performance.now() - t0);
  }
  assert.equal(a.sourceStores[0].state, 'away');
  // Generous margins for a loaded machine; without the timeout the first would never be answered.
  assert.ok(waits[0] < 1000, `the first connection took ${waits[0].toFixed(0)} ms (store timeout 50 ms)`);
  for (const w of waits.slice(1)) assert.ok(w < 1000, `later connections do not wait for the store: ${waits.map((x) => x.toFixed(0)).join(', ')} ms`);

  redis.resume();
  await waitFor(() => a!.sourceStores[0].state === 'up', 10_000, 'the store to come back after SIGCONT');
});

test('an instance killed with SIGKILL: its connections stop counting within the lease TTL', TIMEOUT, async (t) => {
  const f = await twoInstances(t, 'SIGKILL');
  const { backend, redis, dir, sockets } = f;
  const leaseTtlMs = 3000;
  const text = yaml({ port: backend.port, redis: redis.url, leaseTtl: `${leaseTtlMs}ms`, rateListener: false });
  const a = (f.a = await startProxy(configFrom(text), { logger: silentLogger() }));
  const b = (f.b = await cli(dir, 'b', text, 1));
  const pa = a.addresses()[0].port;
  const [pb] = portsOf(b);
  await waitFor(() => a.sourceStores[0].state === 'up', 5000, 'the store to be up');
  await waitFor(() => sharingPids(b.stderr()).size >= 1, 20_000, 'the other instance to reach Redis');

  for (let i = 0; i < 10; i++) {
    const s = await open(pb, '127.0.0.51');
    assert.ok(s, `connection ${i + 1} through the instance to be killed`);
    sockets.push(s);
  }
  assert.equal(await attempt(pa, '127.0.0.51'), false, 'the source is at its maximum');
  // The process dies without giving anything back; its clients' sockets go with it.
  await b.stop('SIGKILL');
  const killedAt = performance.now();
  assert.equal(await attempt(pa, '127.0.0.51'), false, 'a dead holder still counts until its lease expires');
  await waitFor(async () => (await attempt(pa, '127.0.0.51')) === true, leaseTtlMs + 5000, 'the dead holder to stop counting');
  const tookMs = performance.now() - killedAt;
  assert.ok(tookMs <= leaseTtlMs + 5000, `${tookMs.toFixed(0)} ms`);
  assert.ok(tookMs >= SLOT_MIN_SHARE * leaseTtlMs, `freed after ${tookMs.toFixed(0)} ms: before the lease could expire`);
});
