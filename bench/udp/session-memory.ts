/**
 * Memory per UDP session: RSS growth of an `l4lb --udp` process while N sessions are open
 * (each from its own client port, one datagram each way), divided by N.
 *
 *   node dist/bench/udp/session-memory.js [SESSIONS]     (default 4000)
 *
 * Runs everything on loopback: a UDP echo backend and the clients live in this process, l4lb in
 * a child. The number printed is what docs/operations.md ("UDP") quotes.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import dgram from 'node:dgram';

const ROOT = join(fileURLToPath(import.meta.url), '..', '..', '..', '..');
const SESSIONS = Number(process.argv[2] ?? 4000);

async function rss(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const echo = dgram.createSocket('udp4');
  echo.on('message', (m, r) => echo.send(m, r.port, r.address));
  echo.bind(0, '127.0.0.1');
  await once(echo, 'listening');
  const child = spawn(process.execPath, [join(ROOT, 'bin', 'l4lb.js'), '--udp', '127.0.0.1:0', '--idle-timeout', '10m', '--access-log', 'off', `127.0.0.1:${echo.address().port}`], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  try {
    const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
    const port = Number(/:(\d+) udp$/.exec(line)![1]);
    // Warm up: one session through every code path, then let the heap settle.
    const clients: dgram.Socket[] = [];
    const open = async (n: number) => {
      let replies = 0;
      const batch: dgram.Socket[] = [];
      for (let i = 0; i < n; i++) {
        const c = dgram.createSocket('udp4');
        c.on('message', () => replies++);
        c.bind(0, '127.0.0.1');
        batch.push(c);
      }
      await Promise.all(batch.map((c) => once(c, 'listening')));
      for (const c of batch) c.send('hello, session', port, '127.0.0.1');
      for (let waited = 0; replies < n && waited < 20_000; waited += 20) await sleep(20);
      clients.push(...batch);
      return replies;
    };
    await open(200);
    await sleep(1_000);
    const before = await rss(child.pid!);
    const got = await open(SESSIONS);
    await sleep(1_000);
    const after = await rss(child.pid!);
    const perSession = (after - before) / SESSIONS;
    console.log(JSON.stringify({ sessions: SESSIONS, replies: got, rssBefore: before, rssAfter: after, bytesPerSession: Math.round(perSession) }));
    for (const c of clients) c.close();
  } finally {
    child.kill('SIGKILL');
    echo.close();
  }
}

await main();
