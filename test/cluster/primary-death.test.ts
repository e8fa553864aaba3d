/**
 * A primary that dies (`kill -9`: an OOM kill, a bug, an operator's mistake) must not cut
 * traffic: its workers drain what they carry, bounded by `shutdown.drainTimeout`, then exit
 * (docs/cluster.md, "Stop and restarts"). Runs the built CLI with `--workers 2`; every
 * transfer's bytes are checked with SHA-256 in both directions.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { spawnL4lb, startServer, waitFor } from '../support/net.js';
import { running } from './helpers.js';

const TRANSFERS = 10;
const CHUNKS = 30;
const CHUNK_BYTES = 64 * 1024;
const CHUNK_EVERY_MS = 100;

/** What one side of a transfer sent and received. */
interface Leg {
  sentSha: string;
  sentBytes: number;
  receivedSha: string;
  receivedBytes: number;
}

/**
 * Sends CHUNKS random chunks, one every CHUNK_EVERY_MS, then FIN, while hashing what arrives
 * until the peer's FIN. Rejects on a socket error (a reset is what this test is about).
 */
function pacedLeg(s: net.Socket): Promise<Leg> {
  const sent = createHash('sha256');
  const received = createHash('sha256');
  let sentBytes = 0;
  let receivedBytes = 0;
  return new Promise((resolve, reject) => {
    let sendDone = false;
    let recvDone = false;
    const finish = () => {
      if (sendDone && recvDone) resolve({ sentSha: sent.digest('hex'), sentBytes, receivedSha: received.digest('hex'), receivedBytes });
    };
    s.on('data', (c: Buffer) => {
      receivedBytes += c.length;
      received.update(c);
    });
    s.on('end', () => {
      recvDone = true;
      finish();
    });
    s.on('error', (err) => {
      clearInterval(timer);
      reject(err);
    });
    let n = 0;
    const timer = setInterval(() => {
      const buf = randomBytes(CHUNK_BYTES);
      sent.update(buf);
      sentBytes += buf.length;
      s.write(buf);
      if (++n === CHUNKS) {
        clearInterval(timer);
        s.end();
        sendDone = true;
        finish();
      }
    }, CHUNK_EVERY_MS);
  });
}

test('kill -9 of the primary: the workers finish every transfer in flight (SHA-256 both ways), then exit', async (t) => {
  const backendLegs: Promise<Leg>[] = [];
  const backend = await startServer((s) => backendLegs.push(pacedLeg(s)));
  t.after(() => backend.close());
  const l4lb = await spawnL4lb(['--workers', '2', '--access-log', 'off', `127.0.0.1:${backend.port}`]);
  let workers: number[] = [];
  t.after(async () => {
    if (l4lb.child.exitCode === null && l4lb.child.signalCode === null) await l4lb.stop('SIGKILL');
    // Whatever outlived the test is killed here, so no orphan is left behind.
    for (const pid of workers) {
      if (running(pid)) process.kill(pid, 'SIGKILL');
    }
  });
  await waitFor(() => /"l4lb cluster started"/.test(l4lb.stderr()), 10_000, 'the cluster started line');
  const started = l4lb
    .stderr()
    .split('\n')
    .filter((l) => l.includes('"l4lb cluster started"'))
    .map((l) => JSON.parse(l) as { pids: number[] })[0];
  workers = started.pids;
  assert.equal(workers.length, 2);

  const clientLegs = Array.from({ length: TRANSFERS }, () => {
    const s = net.connect({ port: l4lb.port, host: '127.0.0.1', allowHalfOpen: true });
    return new Promise<net.Socket>((resolve, reject) => {
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    }).then(pacedLeg);
  });
  await waitFor(() => backendLegs.length === TRANSFERS, 5000, 'every transfer at the backend');
  // A third of the way into the transfers.
  await new Promise((r) => setTimeout(r, (CHUNKS * CHUNK_EVERY_MS) / 3));
  l4lb.child.kill('SIGKILL');
  await new Promise((r) => l4lb.child.once('exit', r));
  // Each worker says how many connections it carries when it starts to drain. The kernel spreads
  // accepts between the workers as it likes (all ten may land on one), and a worker that carries
  // none is right to exit at once: the ones that carry connections must outlive the primary.
  await waitFor(() => drainingLines(l4lb.stderr()).length === workers.length, 5000, 'a draining line from each worker');
  const draining = drainingLines(l4lb.stderr());
  assert.equal(draining.reduce((n, l) => n + l.active, 0), TRANSFERS, 'the workers carry every transfer between them');
  for (const l of draining) {
    if (l.active > 0) assert.ok(running(l.pid), `worker ${l.pid} outlives the primary while it carries ${l.active} connection(s)`);
  }

  const clients = await Promise.allSettled(clientLegs);
  const failed = clients.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
  assert.deepEqual(failed, [], 'no transfer failed');
  const backends = await Promise.all(backendLegs);
  const done = clients.map((r) => (r as PromiseFulfilledResult<Leg>).value);
  const want = CHUNKS * CHUNK_BYTES;
  for (const leg of [...done, ...backends]) {
    assert.equal(leg.sentBytes, want);
    assert.equal(leg.receivedBytes, want);
  }
  // Random data: each hash names one transfer's one direction.
  assert.deepEqual(new Set(done.map((l) => l.sentSha)), new Set(backends.map((l) => l.receivedSha)), 'client → backend intact');
  assert.deepEqual(new Set(backends.map((l) => l.sentSha)), new Set(done.map((l) => l.receivedSha)), 'backend → client intact');

  await waitFor(() => !workers.some(running), 10_000, 'the workers to exit once drained');
  assert.match(l4lb.stderr(), /the primary went away: draining/);
});

/** The 'worker draining' lines of the workers' log: which process, how many connections it carried. */
function drainingLines(stderr: string): { pid: number; active: number }[] {
  return stderr
    .split('\n')
    .filter((l) => l.includes('"worker draining"'))
    .map((l) => JSON.parse(l) as { pid: number; active: number });
}
