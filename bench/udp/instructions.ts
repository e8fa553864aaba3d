/**
 * @module bench/udp/instructions — user-space instructions l4lb executes per UDP query (or per
 * datagram in per-datagram mode), counted by callgrind: repeatable on a loaded machine, where
 * CPU time is not.
 *
 *   node dist/bench/udp/instructions.js [--mode session|responses-1|per-datagram]
 *        [--warm-up N] [--queries N] [--node 20|24|26] [--fast-path on|off] [--keep DIR] [--l4lb DIR]
 *
 * l4lb runs under `valgrind --tool=callgrind --instr-atstart=no` with two UDP backends in this
 * process (echo servers; silent sinks in per-datagram mode) and 32 client sockets here keeping
 * 32 queries in flight (closed loop: a query goes when one is answered). After `--warm-up`
 * answered queries (V8 has optimised the path by then; under valgrind that takes many), the
 * load pauses, instrumentation is switched on (`callgrind_control -i on`), `--queries` more are
 * answered, and it is switched off and dumped. Printed: instructions (all of l4lb's threads)
 * per query, i.e. per datagram each way in the session modes, per datagram in per-datagram
 * mode; `--keep DIR` keeps the callgrind output for `callgrind_annotate`; `--l4lb DIR` measures
 * the l4lb built in checkout DIR (a before/after pair in one sitting).
 *
 * Modes: `session` (each client socket is one session, reused), `responses-1` (`udp.responses:
 * 1`: a session per query), `per-datagram` (`udp.perDatagram: true`: no session, no reply).
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import dgram from 'node:dgram';
import { currentNode, nodeRuntime } from '../tools.js';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..', '..');
/** Client sockets, and so queries in flight. */
const SOCKETS = 32;
/** Socket buffers of the clients and backends. */
const BUFFER_BYTES = 4 * 1024 * 1024;
/** With no answer for this long, every socket sends again (a datagram was lost). */
const STALL_MS = 2_000;
/** A query for `svc.test`, as bench/udp/load.ts sends. */
const QUERY = Buffer.from('0000010000010000000000000373766304746573740000010001', 'hex');

type Mode = 'session' | 'responses-1' | 'per-datagram';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function config(mode: Mode, backends: number[]): string {
  const udp = mode === 'responses-1' ? '{ responses: 1 }' : mode === 'per-datagram' ? '{ perDatagram: true }' : '{}';
  return [
    'log: { level: warn, access: off }',
    'listeners:',
    '  - name: u',
    '    listen: 127.0.0.1:0',
    '    protocol: udp',
    '    pool: p',
    `    udp: ${udp}`,
    '    timeouts: { idle: 10m }',
    'pools:',
    '  - name: p',
    '    backends:',
    ...backends.map((p) => `      - 127.0.0.1:${p}`),
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      mode: { type: 'string', default: 'session' },
      'warm-up': { type: 'string', default: '50000' },
      queries: { type: 'string', default: '20000' },
      node: { type: 'string' },
      'fast-path': { type: 'string', default: 'on' },
      keep: { type: 'string' },
      l4lb: { type: 'string' },
    },
  });
  const mode = values.mode as Mode;
  const warmUp = Number(values['warm-up']);
  const queries = Number(values.queries);
  if (!['session', 'responses-1', 'per-datagram'].includes(mode) || !(warmUp >= 0) || !(queries > 0) || !['on', 'off'].includes(values['fast-path'])) {
    process.stderr.write('usage: instructions.js [--mode session|responses-1|per-datagram] [--warm-up N] [--queries N] [--node M] [--fast-path on|off] [--keep DIR] [--l4lb DIR]\n');
    process.exit(2);
  }
  const rt = values.node === undefined ? currentNode() : nodeRuntime(Number(values.node));
  const dir = values.keep ?? (await mkdtemp(join(tmpdir(), 'l4lb-udp-cg-')));
  await mkdir(dir, { recursive: true });

  let done = 0;
  let sent = 0;
  let target = 0;
  const clients: dgram.Socket[] = [];
  const backends: dgram.Socket[] = [];
  let port = 0;
  let next = 0;
  const send = (c: dgram.Socket) => {
    if (sent >= target) return;
    sent++;
    c.send(QUERY, port, '127.0.0.1');
  };
  for (let i = 0; i < 2; i++) {
    const b = dgram.createSocket({ type: 'udp4', recvBufferSize: BUFFER_BYTES });
    if (mode === 'per-datagram') {
      b.on('message', () => {
        done++;
        send(clients[next++ % SOCKETS]);
      });
    } else {
      b.on('message', (m, r) => b.send(m, r.port, r.address));
    }
    b.bind(0, '127.0.0.1');
    backends.push(b);
  }
  for (let i = 0; i < SOCKETS; i++) {
    const c = dgram.createSocket({ type: 'udp4', recvBufferSize: BUFFER_BYTES });
    if (mode !== 'per-datagram') {
      c.on('message', () => {
        done++;
        send(c);
      });
    }
    c.bind(0, '127.0.0.1');
    clients.push(c);
  }
  await Promise.all([...backends, ...clients].map((s) => once(s, 'listening')));
  const cfg = join(dir, 'l4lb.yaml');
  await writeFile(cfg, config(mode, backends.map((b) => b.address().port)));

  const child = spawn('valgrind', ['--tool=callgrind', '--smc-check=all-non-file', '--instr-atstart=no', `--callgrind-out-file=${join(dir, 'callgrind.out.%p')}`,
    rt.bin, join(values.l4lb ?? ROOT, 'bin', 'l4lb.js'), '--config', cfg], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, L4LB_FAST_PATH: values['fast-path'] === 'on' ? '1' : '0' },
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    port = await new Promise<number>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`l4lb under valgrind exited (${code}): ${stderr}`)));
      createInterface({ input: child.stdout! }).on('line', (line) => {
        const m = /listening on .*:(\d+) udp$/.exec(line);
        if (m) resolve(Number(m[1]));
      });
    });
    // Runs the closed loop until `n` more queries are answered; resends when everything stalls.
    const run = async (n: number) => {
      const goal = done + n;
      target = sent + n;
      for (const c of clients) send(c);
      let last = done;
      let still = 0;
      while (done < goal) {
        await sleep(100);
        if (done !== last) {
          last = done;
          still = 0;
        } else if ((still += 100) >= STALL_MS) {
          target += SOCKETS;
          for (const c of clients) send(c);
          still = 0;
        }
      }
      target = sent;
      await sleep(300);
    };
    const t0 = performance.now();
    await run(warmUp);
    const warmS = (performance.now() - t0) / 1000;
    execFileSync('callgrind_control', ['-i', 'on', String(child.pid)], { stdio: 'ignore' });
    const before = { done, sent };
    const t1 = performance.now();
    await run(queries);
    const measuredS = (performance.now() - t1) / 1000;
    execFileSync('callgrind_control', ['-i', 'off', String(child.pid)], { stdio: 'ignore' });
    execFileSync('callgrind_control', ['-d', String(child.pid)], { stdio: 'ignore' });
    const counted = done - before.done;
    const files = (await readdir(dir)).filter((f) => f.startsWith(`callgrind.out.${child.pid}`) && !f.endsWith(`.${child.pid}`));
    let ir = 0;
    for (const f of files) {
      const m = /^totals: (\d+)/m.exec(await readFile(join(dir, f), 'utf8'));
      if (m) ir += Number(m[1]);
    }
    process.stdout.write(
      `${JSON.stringify({ node: rt.version, mode, fastPath: values['fast-path'] === 'on', warmUp, queries: counted, resent: sent - before.sent - counted, instructions: ir, perQuery: Math.round(ir / counted), warmUpSeconds: Math.round(warmS), seconds: Math.round(measuredS), out: values.keep === undefined ? undefined : files.map((f) => join(dir, f)) })}\n`,
    );
  } finally {
    child.kill('SIGKILL');
    for (const s of [...clients, ...backends]) s.close();
    if (values.keep === undefined) await rm(dir, { recursive: true, force: true });
  }
}

await main();
