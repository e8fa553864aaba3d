/**
 * @module test/soak/soak — `npm run soak -- --duration 10m`: l4lb under mixed traffic for a long
 * time while backends are killed and restarted and the config is reloaded. Not part of
 * `npm test`.
 *
 * Every connection carries a header naming a seed and sizes; both directions are AES-CTR
 * keystreams of that seed, so each side verifies every byte as it arrives and knows exactly
 * what it should get. A connection ends as one of:
 * - completed: every byte both ways, then FIN both ways;
 * - aborted: the client reset it on purpose (what arrived must still be a clean prefix);
 * - failed: cut short for an explained reason: its backend was killed while it was open, or it
 *   never reached a backend (refused by a dying backend, all down);
 * - lost: cut short with no reason, or a byte differs — l4lb lost data.
 *
 * It prints progress and l4lb's RSS over time, and exits 1 when any byte was lost, when l4lb's
 * memory grew past a bound (RSS, and heap after GC) between the warm-up and the end, when more
 * than `--max-failed` percent of connections failed, or when l4lb did not stop cleanly.
 *
 * Options: --duration DUR (default 1m), --clients N (32), --workers N (1),
 * --max-rss-growth MiB (64), --max-heap-growth MiB (32), --max-failed PCT (5), --seed N,
 * --report-every DUR (10s).
 */
import net from 'node:net';
import { once } from 'node:events';
import { createCipheriv } from 'node:crypto';
import { parseArgs } from 'node:util';
import { parseDuration } from '../../src/util/duration.js';
import { startL4lb, config, listener, pool, type L4lb, type RawConfig } from '../faults/harness.js';

const MiB = 1024 * 1024;
const HEADER = 20;
const MAGIC = 0x534f414b; // "SOAK"

// ------------------------------------------------------------------------------------------
// Options.

const { values: opt } = parseArgs({
  options: {
    duration: { type: 'string', default: '1m' },
    clients: { type: 'string', default: '32' },
    workers: { type: 'string', default: '1' },
    'max-rss-growth': { type: 'string', default: '64' },
    'max-heap-growth': { type: 'string', default: '32' },
    'max-failed': { type: 'string', default: '5' },
    seed: { type: 'string' },
    'report-every': { type: 'string', default: '10s' },
  },
});
const durationMs = parseDuration(opt.duration!) ?? die(`--duration: "${opt.duration}" is not a duration`);
const reportMs = parseDuration(opt['report-every']!) ?? die('--report-every: not a duration');
const clients = Number(opt.clients);
const workers = Number(opt.workers);
const maxRssGrowth = Number(opt['max-rss-growth']) * MiB;
const maxHeapGrowth = Number(opt['max-heap-growth']) * MiB;
const maxFailedPct = Number(opt['max-failed']);
const seed0 = opt.seed !== undefined ? Number(opt.seed) : Math.floor(Math.random() * 2 ** 31);

function die(msg: string): never {
  process.stderr.write(`soak: ${msg}\n`);
  process.exit(2);
}

/** A small seeded PRNG (mulberry32): the same --seed gives the same traffic mix. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const rand = prng(seed0);
const between = (lo: number, hi: number) => Math.floor(lo + rand() * (hi - lo + 1));

/** The keystream of one direction of one connection, generated on demand. */
function keystream(seed: number, direction: 0 | 1): (n: number) => Buffer {
  const key = Buffer.alloc(16);
  key.writeUInt32BE(seed, 0);
  key.writeUInt32BE(direction, 4);
  const c = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return (n) => c.update(Buffer.alloc(n));
}

// ------------------------------------------------------------------------------------------
// Counters.

const stats = {
  attempted: 0,
  completed: 0,
  aborted: 0,
  failedKilled: 0,
  failedNotServed: 0,
  refused: 0,
  lost: 0,
  corrupt: 0,
  bytesVerified: 0,
  kills: 0,
  restarts: 0,
  reloads: 0,
  reloadFailures: 0,
};
const lostSamples: string[] = [];

// ------------------------------------------------------------------------------------------
// Backends: verify the upstream, send the downstream; can be killed (every socket reset) and
// restarted on the same port.

interface Rec {
  upLen: number;
  upReceived: number;
  upFin: boolean;
  mismatch: boolean;
  closed: boolean;
  killed: boolean;
}
const recs = new Map<number, Rec>();

class SoakBackend {
  port = 0;
  up = false;
  #server: net.Server | undefined;
  readonly #sockets = new Map<net.Socket, number | undefined>();

  async start(): Promise<void> {
    const server = net.createServer({ allowHalfOpen: true }, (s) => this.#serve(s));
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    this.port = (server.address() as net.AddressInfo).port;
    this.#server = server;
    this.up = true;
  }

  /** Crashes: stop listening and reset every open connection. */
  async kill(): Promise<void> {
    this.up = false;
    const server = this.#server!;
    const closed = new Promise((r) => server.close(r));
    for (const [s, seed] of this.#sockets) {
      if (seed !== undefined) recs.get(seed)!.killed = true;
      s.resetAndDestroy();
    }
    this.#sockets.clear();
    await closed;
  }

  #serve(s: net.Socket): void {
    this.#sockets.set(s, undefined);
    s.on('error', () => {});
    let head = Buffer.alloc(0);
    let rec: Rec | undefined;
    let expect: ((n: number) => Buffer) | undefined;
    s.on('close', () => {
      this.#sockets.delete(s);
      if (!rec) return;
      rec.closed = true;
      // The client side removes it when it classifies the connection; this catches the rest.
      const seed = head.readUInt32BE(4);
      setTimeout(() => recs.delete(seed), 30_000).unref();
    });
    s.on('data', (chunk: Buffer) => {
      if (!rec) {
        head = Buffer.concat([head, chunk]);
        if (head.length < HEADER) return;
        if (head.readUInt32BE(0) !== MAGIC) {
          stats.corrupt++;
          lostSamples.push('backend: bad header');
          s.destroy();
          return;
        }
        const seed = head.readUInt32BE(4);
        rec = { upLen: head.readUInt32BE(8), upReceived: 0, upFin: false, mismatch: false, closed: false, killed: false };
        recs.set(seed, rec);
        this.#sockets.set(s, seed);
        expect = keystream(seed, 0);
        sendDown(s, seed, head.readUInt32BE(12), head.readUInt32BE(16));
        chunk = head.subarray(HEADER);
      }
      if (chunk.length === 0) return;
      if (!expect!(chunk.length).equals(chunk)) rec.mismatch = true;
      else stats.bytesVerified += chunk.length;
      rec.upReceived += chunk.length;
    });
    s.on('end', () => {
      if (rec) rec.upFin = true;
    });
  }
}

/** Sends `len` bytes of the downstream keystream (paced when `paceMs` > 0), then FIN. */
function sendDown(s: net.Socket, seed: number, len: number, paceMs: number): void {
  const gen = keystream(seed, 1);
  let sent = 0;
  const step = paceMs > 0 ? 16 * 1024 : 64 * 1024;
  const pump = () => {
    while (sent < len && !s.destroyed) {
      const n = Math.min(step, len - sent);
      sent += n;
      const ok = s.write(gen(n));
      if (sent >= len) break;
      if (paceMs > 0) return void setTimeout(pump, paceMs);
      if (!ok) return void s.once('drain', pump);
    }
    if (!s.destroyed) s.end();
  };
  pump();
}

// ------------------------------------------------------------------------------------------
// Clients.

type Kind = 'short' | 'bulk' | 'slow' | 'abort';

function pickKind(): Kind {
  const r = rand();
  return r < 0.6 ? 'short' : r < 0.75 ? 'bulk' : r < 0.95 ? 'slow' : 'abort';
}

let nextSeed = seed0;

async function oneConnection(port: number): Promise<void> {
  const kind = pickKind();
  const seed = (nextSeed = (nextSeed + 1) >>> 0);
  const upLen = kind === 'bulk' ? between(MiB / 4, 4 * MiB) : kind === 'slow' ? between(32, 160) * 1024 : between(64, 16 * 1024);
  const downLen = kind === 'bulk' ? between(MiB / 4, 4 * MiB) : kind === 'slow' ? between(32, 160) * 1024 : between(64, 64 * 1024);
  const paceMs = kind === 'slow' ? 50 : 0;
  stats.attempted++;
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  const expect = keystream(seed, 1);
  const gen = keystream(seed, 0);
  let received = 0;
  let mismatch = false;
  let gotFin = false;
  let error: string | undefined;
  let upDone = false;
  s.on('data', (c: Buffer) => {
    if (!expect(c.length).equals(c)) mismatch = true;
    else stats.bytesVerified += c.length;
    received += c.length;
  });
  s.on('end', () => (gotFin = true));
  s.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message));
  // Not events.once: that rejects on 'error', and errors are expected and counted here.
  const closed = new Promise<void>((r) => s.once('close', () => r()));
  try {
    await once(s, 'connect');
  } catch {
    await closed;
    if (error === 'ECONNREFUSED') stats.refused++;
    else stats.failedNotServed++;
    return;
  }
  const header = Buffer.alloc(HEADER);
  header.writeUInt32BE(MAGIC, 0);
  header.writeUInt32BE(seed, 4);
  header.writeUInt32BE(upLen, 8);
  header.writeUInt32BE(downLen, 12);
  header.writeUInt32BE(paceMs, 16);
  s.write(header);
  // Upload (paced for slow ones); aborts reset part-way through.
  const abortAt = kind === 'abort' ? between(1, upLen) : Infinity;
  let sent = 0;
  const step = paceMs > 0 ? 16 * 1024 : 64 * 1024;
  await new Promise<void>((resolve) => {
    const pump = () => {
      while (sent < upLen && !s.destroyed) {
        const n = Math.min(step, upLen - sent);
        sent += n;
        const ok = s.write(gen(n));
        if (sent >= abortAt) {
          s.resetAndDestroy();
          return resolve();
        }
        if (sent >= upLen) break;
        if (paceMs > 0) return void setTimeout(pump, paceMs);
        if (!ok) return void s.once('drain', pump);
      }
      if (!s.destroyed) {
        s.end();
        upDone = true;
      }
      resolve();
    };
    s.once('close', () => resolve());
    pump();
  });
  // Wait for the end of the download; a client that is done closes its socket.
  await Promise.race([closed, new Promise<void>((r) => (gotFin ? r() : s.once('end', () => r())))]);
  s.destroy();
  await closed;

  // The backend side may still be catching up (our FIN in flight): give it a moment. A
  // connection that got nothing and left no trace at a backend never reached one.
  const deadline = Date.now() + 3000;
  while (Date.now() < deadline) {
    const r = recs.get(seed);
    if (r ? r.closed : received === 0) break;
    await new Promise((res) => setTimeout(res, 20));
  }
  const rec = recs.get(seed);
  recs.delete(seed);
  if (mismatch || rec?.mismatch) {
    stats.corrupt++;
    lostSamples.push(`seed ${seed}: bytes differ (${mismatch ? 'downstream' : 'upstream'})`);
  } else if (kind === 'abort') {
    stats.aborted++;
  } else if (upDone && gotFin && received === downLen && rec && rec.upFin && rec.upReceived === upLen) {
    stats.completed++;
  } else if (rec?.killed) {
    stats.failedKilled++;
  } else if (!rec && received === 0) {
    stats.failedNotServed++;
  } else {
    stats.lost++;
    if (lostSamples.length < 20) {
      lostSamples.push(
        `seed ${seed} (${kind}): down ${received}/${downLen}${gotFin ? ' FIN' : ''}, up ${rec?.upReceived ?? '-'}/${upLen}${rec?.upFin ? ' FIN' : ''}, error ${error ?? '-'}`,
      );
    }
  }
}

// ------------------------------------------------------------------------------------------
// The run.

function fmtBytes(n: number): string {
  return n >= 1024 * MiB ? `${(n / 1024 / MiB).toFixed(2)} GiB` : `${(n / MiB).toFixed(1)} MiB`;
}

async function rssOfTree(l4lb: L4lb): Promise<number> {
  return (await l4lb.probe()).rss;
}

async function main(): Promise<number> {
  const backends = [new SoakBackend(), new SoakBackend(), new SoakBackend()];
  for (const b of backends) await b.start();
  const ports = backends.map((b) => b.port);
  const base = (variant: number): RawConfig => {
    const weights = [
      [1, 1, 1],
      [3, 1, 1],
      [1, 2, 4],
    ][variant % 3];
    const listeners = [listener('main', 'p', { timeouts: { connect: '1s' } })];
    if (variant % 2 === 1) listeners.push(listener('side', 'p'));
    return config(listeners, [
      pool(
        'p',
        ports.map((p, i) => ({ address: `127.0.0.1:${p}`, weight: weights[i] })),
        { balance: variant % 3 === 2 ? 'least-connections' : 'weighted-round-robin', passive: { consecutiveFailures: 2, baseEjection: '500ms', maxEjection: '2s' } },
      ),
    ], { log: { level: 'info', access: 'off' }, shutdown: { drainTimeout: '20s', closeSpread: '1s' } });
  };
  const l4lb = await startL4lb(base(0), { workers });
  current = l4lb;
  const port = l4lb.port;
  console.log(`soak: l4lb pid ${l4lb.pid} on port ${port}, backends ${ports.join(', ')}; ${clients} clients for ${opt.duration}, seed ${seed0}, workers ${workers}`);

  const t0 = Date.now();
  const endAt = t0 + durationMs;
  const rssSamples: Array<{ s: number; rss: number }> = [];
  let running = true;

  // Traffic.
  const loops = Array.from({ length: clients }, async () => {
    while (running) await oneConnection(port);
  });

  // Chaos: kill a backend (never the last one up) and bring it back 1-3s later.
  const chaos = (async () => {
    while (running) {
      await sleep(between(4000, 9000));
      if (!running) break;
      const upOnes = backends.filter((b) => b.up);
      if (upOnes.length < 2) continue;
      const victim = upOnes[between(0, upOnes.length - 1)];
      await victim.kill();
      stats.kills++;
      await sleep(between(1000, 3000));
      await victim.start();
      stats.restarts++;
    }
  })();

  // Reloads: a different config every few seconds, by SIGHUP.
  const reloads = (async () => {
    let v = 0;
    while (running) {
      await sleep(between(3000, 7000));
      if (!running) break;
      const r = await l4lb.reload(base(++v));
      if (r.ok) stats.reloads++;
      else {
        stats.reloadFailures++;
        console.log(`soak: reload failed: ${JSON.stringify(r.line)}`);
      }
    }
  })();

  // Reports and RSS over time; the memory baseline is taken once warmed up.
  const warmAt = t0 + Math.min(Math.max(durationMs * 0.2, 10_000), durationMs / 2);
  let baseline: { rss: number; heap: number } | undefined;
  const report = async () => {
    const rss = await rssOfTree(l4lb);
    const s = Math.round((Date.now() - t0) / 1000);
    rssSamples.push({ s, rss });
    const failed = stats.failedKilled + stats.failedNotServed + stats.refused;
    console.log(
      `[${String(s).padStart(5)}s] attempted ${stats.attempted} completed ${stats.completed} failed ${failed} ` +
        `(backend killed ${stats.failedKilled}, not served ${stats.failedNotServed}, refused ${stats.refused}) aborted ${stats.aborted} ` +
        `lost ${stats.lost} corrupt ${stats.corrupt} | verified ${fmtBytes(stats.bytesVerified)} | l4lb RSS ${fmtBytes(rss)} | ` +
        `reloads ${stats.reloads} kills ${stats.kills}`,
    );
  };
  while (Date.now() < endAt) {
    const next = Math.min(endAt, Date.now() + reportMs);
    if (!baseline && warmAt <= next) {
      await sleep(Math.max(0, warmAt - Date.now()));
      const p = await l4lb.probe();
      baseline = { rss: p.rss, heap: p.heapUsed };
      console.log(`soak: memory baseline after warm-up: RSS ${fmtBytes(p.rss)}, heap after GC ${fmtBytes(p.heapUsed)}`);
    }
    await sleep(Math.max(0, next - Date.now()));
    await report();
  }

  // Stop: traffic ends, in-flight connections finish, backends all come back.
  running = false;
  await Promise.all([...loops, chaos, reloads]);
  for (const b of backends) if (!b.up) await b.start();
  await sleep(500);
  const end = await l4lb.probe();
  await report();
  const exitCode = await l4lb.stop('SIGTERM');
  await l4lb.close();
  for (const b of backends) if (b.up) await b.kill();

  // Verdict.
  const problems: string[] = [];
  const failed = stats.failedKilled + stats.failedNotServed + stats.refused;
  if (stats.lost > 0 || stats.corrupt > 0) problems.push(`${stats.lost + stats.corrupt} connection(s) lost or corrupted bytes`);
  const rssGrowth = end.rss - (baseline?.rss ?? end.rss);
  const heapGrowth = end.heapUsed - (baseline?.heap ?? end.heapUsed);
  if (rssGrowth > maxRssGrowth) problems.push(`RSS grew ${fmtBytes(rssGrowth)} after warm-up (bound ${fmtBytes(maxRssGrowth)})`);
  if (heapGrowth > maxHeapGrowth) problems.push(`heap after GC grew ${fmtBytes(heapGrowth)} after warm-up (bound ${fmtBytes(maxHeapGrowth)})`);
  if (stats.attempted > 0 && (100 * failed) / stats.attempted > maxFailedPct) {
    problems.push(`${((100 * failed) / stats.attempted).toFixed(2)}% of connections failed (bound ${maxFailedPct}%)`);
  }
  if (stats.refused > 0) problems.push(`${stats.refused} connection(s) refused while l4lb was listening`);
  if (exitCode !== 0) problems.push(`l4lb exited with ${exitCode} on SIGTERM`);
  if (stats.reloadFailures > 0) problems.push(`${stats.reloadFailures} reload(s) failed`);

  console.log('\nsoak summary');
  console.log(`  duration            ${opt.duration} (seed ${seed0}, ${clients} clients, workers ${workers})`);
  console.log(`  connections         attempted ${stats.attempted}, completed ${stats.completed}, failed ${failed}, aborted on purpose ${stats.aborted}`);
  console.log(`  failed, explained   backend killed mid-connection ${stats.failedKilled}, never reached a backend ${stats.failedNotServed}, refused ${stats.refused}`);
  console.log(`  lost / corrupt      ${stats.lost} / ${stats.corrupt}`);
  console.log(`  bytes verified      ${fmtBytes(stats.bytesVerified)}`);
  console.log(`  chaos               ${stats.kills} backend kills, ${stats.restarts} restarts, ${stats.reloads} reloads`);
  console.log(`  l4lb RSS over time  ${rssSamples.map((x) => `${x.s}s ${Math.round(x.rss / MiB)}M`).join(', ')}`);
  console.log(`  memory              RSS ${fmtBytes(baseline?.rss ?? 0)} → ${fmtBytes(end.rss)}, heap after GC ${fmtBytes(baseline?.heap ?? 0)} → ${fmtBytes(end.heapUsed)}`);
  console.log(`  l4lb exit code      ${exitCode}`);
  for (const s of lostSamples) console.log(`  ! ${s}`);
  if (problems.length > 0) {
    console.log(`\nFAIL: ${problems.join('; ')}`);
    return 1;
  }
  console.log('\nPASS');
  return 0;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** The l4lb under test, so that a crash of the soak itself does not leave it running. */
let current: L4lb | undefined;

async function crash(err: unknown): Promise<never> {
  console.error('soak: crashed:', err);
  await current?.close();
  process.exit(1);
}
process.on('uncaughtException', (err) => void crash(err));
process.on('unhandledRejection', (err) => void crash(err));
main().then((code) => process.exit(code), crash);
