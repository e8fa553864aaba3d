/**
 * @module bench/udp/session-memory — memory per open UDP session of an `l4lb --udp` process,
 * over several rounds, per Node runtime, with the UDP fast path on and off.
 *
 *   node dist/bench/udp/session-memory.js [--sessions N] [--rounds R] [--node 20,24,26]
 *                                         [--fast-path on|off|both] [--json]
 *
 * Each round starts a fresh l4lb (`--idle-timeout 10m`, so no session ends during the round)
 * with bench/udp/memory-probe.js loaded, opens {@link WARM_UP} sessions through every code path
 * and lets them stay, then collects garbage in l4lb and reads `process.memoryUsage()`, opens N
 * more sessions (each from its own client port, one datagram each way), checks through the
 * admin API that all of them are still open, collects garbage and reads it again. Per session:
 * the growth of RSS, of V8's heap (used, and reserved), of `external` (memory V8 objects hold
 * outside the heap) and the rest of RSS ("native": RSS less the heap's resident pages and
 * `external`: libuv handles, Node's C++ wrappers, malloc's overhead).
 * Printed: median and range over the rounds. Everything runs on loopback: a UDP echo backend
 * and the clients live in this process.
 *
 * docs/performance.md ("UDP session memory") and docs/operations.md ("UDP") quote it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import dgram from 'node:dgram';
import { currentNode, nodeRuntime, type NodeRuntime } from '../tools.js';

const HERE = join(fileURLToPath(import.meta.url), '..');
const ROOT = join(HERE, '..', '..', '..');
/** Sessions opened (and kept) before the first reading. */
const WARM_UP = 500;
/** Client sockets opened at once. */
const BATCH = 200;
/** The echo backend's receive buffer: a batch of new sessions arrives at once. */
const ECHO_BUFFER_BYTES = 4 * 1024 * 1024;
/** How long one batch may wait for its replies. */
const REPLY_WAIT_MS = 20_000;

interface Memory {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  heapPhysical: number;
  external: number;
}

/** Bytes per session of one round. */
interface Round {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  native: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A started l4lb with the memory probe: its UDP port, its admin URL and its `memory` lines. */
class Measured {
  readonly child: ChildProcess;
  port = 0;
  admin = '';
  readonly #memory: ((m: Memory) => void)[] = [];

  private constructor(child: ChildProcess) {
    this.child = child;
  }

  static async start(rt: NodeRuntime, fastPath: boolean, backendPort: number): Promise<Measured> {
    const probe = pathToFileURL(join(HERE, 'memory-probe.js')).href;
    const args = ['--expose-gc', '--import', probe, join(ROOT, 'bin', 'l4lb.js'), '--udp', '127.0.0.1:0', '--admin', '127.0.0.1:0',
      '--idle-timeout', '10m', '--access-log', 'off', '--log-level', 'warn', `127.0.0.1:${backendPort}`];
    const env = { ...process.env, L4LB_FAST_PATH: fastPath ? '1' : '0' };
    const child = spawn(rt.bin, args, { stdio: ['ignore', 'pipe', 'inherit'], env });
    const m = new Measured(child);
    const ready = new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`l4lb exited (${code}) before it was ready`)));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const udp = /listening on .*:(\d+) udp$/.exec(line);
        if (udp) m.port = Number(udp[1]);
        const admin = /^admin on (\S+)/.exec(line);
        if (admin) m.admin = admin[1].replace(/\/$/, '');
        if (line.startsWith('memory ')) m.#memory.shift()?.(JSON.parse(line.slice(7)) as Memory);
        if (m.port !== 0 && m.admin !== '') resolve();
      });
    });
    await ready;
    return m;
  }

  /** Memory after garbage collection. */
  memory(): Promise<Memory> {
    const p = new Promise<Memory>((resolve) => this.#memory.push(resolve));
    this.child.kill('SIGUSR2');
    return p;
  }

  /** Open sessions of the UDP listener, from the admin API. */
  async activeSessions(): Promise<number> {
    const res = await fetch(`${this.admin}/api/v1/status`);
    const s = (await res.json()) as { listeners: { protocol?: string; active: number }[] };
    return s.listeners.find((l) => l.protocol === 'udp')?.active ?? -1;
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = once(this.child, 'exit');
    this.child.kill('SIGKILL');
    await exited;
  }
}

/** Client sockets, bound once and reused by every round (each round's l4lb is new). */
class Clients {
  readonly #sockets: dgram.Socket[] = [];
  #replies = 0;

  async ensure(n: number): Promise<void> {
    while (this.#sockets.length < n) {
      const batch: dgram.Socket[] = [];
      for (let i = 0; i < BATCH && this.#sockets.length + batch.length < n; i++) {
        const c = dgram.createSocket('udp4');
        c.on('message', () => this.#replies++);
        c.bind(0, '127.0.0.1');
        batch.push(c);
      }
      await Promise.all(batch.map((c) => once(c, 'listening')));
      this.#sockets.push(...batch);
    }
  }

  /** Sends one datagram from sockets [from, to) to `port`, in batches; resolves with the replies. */
  async open(from: number, to: number, port: number): Promise<number> {
    let got = 0;
    for (let i = from; i < to; i += BATCH) {
      const end = Math.min(to, i + BATCH);
      this.#replies = 0;
      for (let j = i; j < end; j++) this.#sockets[j].send('hello, session', port, '127.0.0.1');
      for (let waited = 0; this.#replies < end - i && waited < REPLY_WAIT_MS; waited += 10) await sleep(10);
      got += this.#replies;
    }
    return got;
  }

  close(): void {
    for (const c of this.#sockets) c.close();
  }
}

async function round(rt: NodeRuntime, fastPath: boolean, sessions: number, clients: Clients, backendPort: number): Promise<Round> {
  const l4lb = await Measured.start(rt, fastPath, backendPort);
  try {
    const warm = await clients.open(0, WARM_UP, l4lb.port);
    if (warm !== WARM_UP) throw new Error(`warm-up: ${warm} of ${WARM_UP} replies`);
    await sleep(200);
    const before = await l4lb.memory();
    const got = await clients.open(WARM_UP, WARM_UP + sessions, l4lb.port);
    if (got !== sessions) throw new Error(`${got} of ${sessions} replies`);
    await sleep(200);
    const after = await l4lb.memory();
    const active = await l4lb.activeSessions();
    if (active !== WARM_UP + sessions) throw new Error(`${active} sessions open, expected ${WARM_UP + sessions}`);
    const per = (k: keyof Memory) => (after[k] - before[k]) / sessions;
    return {
      rss: per('rss'),
      heapUsed: per('heapUsed'),
      heapTotal: per('heapTotal'),
      external: per('external'),
      native: per('rss') - per('heapPhysical') - per('external'),
    };
  } finally {
    await l4lb.stop();
  }
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      sessions: { type: 'string', default: '4000' },
      rounds: { type: 'string', default: '5' },
      node: { type: 'string' },
      'fast-path': { type: 'string', default: 'both' },
      json: { type: 'boolean', default: false },
    },
  });
  const sessions = Number(values.sessions);
  const rounds = Number(values.rounds);
  const fp = values['fast-path'];
  if (!(sessions > 0) || !(rounds > 0) || !['on', 'off', 'both'].includes(fp)) {
    process.stderr.write('usage: session-memory.js [--sessions N] [--rounds R] [--node 20,24,26] [--fast-path on|off|both] [--json]\n');
    process.exit(2);
  }
  const runtimes = values.node === undefined ? [currentNode()] : values.node.split(',').map((m) => nodeRuntime(Number(m)));
  const modes = fp === 'both' ? [true, false] : [fp === 'on'];

  const echo = dgram.createSocket({ type: 'udp4', recvBufferSize: ECHO_BUFFER_BYTES });
  echo.on('message', (m, r) => echo.send(m, r.port, r.address));
  echo.bind(0, '127.0.0.1');
  await once(echo, 'listening');
  const clients = new Clients();
  await clients.ensure(WARM_UP + sessions);
  const results = [];
  try {
    if (!values.json) process.stdout.write(`bytes per open session, ${sessions} sessions after ${WARM_UP}, ${rounds} rounds: median (min–max)\n`);
    for (const rt of runtimes) {
      for (const fastPath of modes) {
        const rs: Round[] = [];
        for (let i = 0; i < rounds; i++) rs.push(await round(rt, fastPath, sessions, clients, echo.address().port));
        const stat = (k: keyof Round) => {
          const v = rs.map((r) => r[k]);
          return { median: Math.round(median(v)), min: Math.round(Math.min(...v)), max: Math.round(Math.max(...v)) };
        };
        const r = { node: rt.version, fastPath, sessions, rounds, rss: stat('rss'), heapUsed: stat('heapUsed'), heapTotal: stat('heapTotal'), external: stat('external'), native: stat('native') };
        results.push(r);
        if (values.json) continue;
        const f = (s: { median: number; min: number; max: number }) => `${s.median} (${s.min}–${s.max})`;
        process.stdout.write(
          `${rt.version} fast path ${fastPath ? 'on ' : 'off'}  rss ${f(r.rss)}  heapUsed ${f(r.heapUsed)}  heapTotal ${f(r.heapTotal)}  external ${f(r.external)}  native ${f(r.native)}\n`,
        );
      }
    }
    if (values.json) process.stdout.write(`${JSON.stringify(results)}\n`);
  } finally {
    clients.close();
    echo.close();
  }
}

await main();
