/**
 * UDP listeners in multi-process mode: real `l4lb --config FILE` processes with `workers: 2`,
 * in both ways of sharing a listening socket. `reuseport` (Node ≥ 22.12): every worker binds
 * its own socket and the kernel keeps each client address and port on one worker. `shared`
 * (Node 20, or forced): the first worker alone serves the UDP listeners. Either way one
 * client's datagrams stay in one session, and the admin API adds up over the workers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { StatusSnapshot } from '../../src/admin/status.js';
import { reusePortSupported } from '../../src/cluster/ports.js';
import { Dnsmasq } from '../discovery/support.js';
import { runL4lb, spawnL4lb, waitFor } from '../support/net.js';
import { accessLines, adminGet, startCluster, type Cluster } from '../cluster/helpers.js';
import { UdpClient, udpEcho } from './support.js';

const run = promisify(execFile);
const sha = (parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest('hex');

const reuse = await reusePortSupported();
/**
 * `reuseport` needs dgram's `reusePort` (Node ≥ 22.12): on Node 20 there is nothing of it to
 * run, so its tests are registered only where it exists (CI runs the suite on 24 and 26 too),
 * and on every runtime the test below checks which mode a cluster picks by itself.
 */
const MODES = reuse ? (['reuseport', 'shared'] as const) : (['shared'] as const);

test(`a cluster with a UDP listener picks ${reuse ? 'reuseport' : 'shared'} mode by itself on this Node (${process.version}), and serves the listener`, async (t) => {
  const echo = await udpEcho();
  t.after(() => echo.close());
  const c = await startCluster({
    listeners: [{ name: 'u', listen: '127.0.0.1:0', protocol: 'udp', pool: 'p' }],
    pools: [{ name: 'p', backends: [{ name: 'echo', address: `127.0.0.1:${echo.port}` }] }],
    admin: { listen: '127.0.0.1:0' },
  });
  t.after(() => c.close());
  assert.equal((await c.waitLine('l4lb cluster started')).mode, reuse ? 'reuseport' : 'shared');
  const u = await UdpClient.open();
  t.after(() => u.close());
  const payload = randomBytes(512);
  await u.send(udpPort(c), payload);
  assert.equal(sha(await u.waitReplies(1)), sha([payload]));
});

/** The port of the cluster's first listener (a UDP one: `listening on HOST:PORT udp`). */
function udpPort(c: Cluster): number {
  const m = /:(\d+) udp$/.exec(c.cli.addresses[0]);
  assert.ok(m, `not a UDP listener: ${c.cli.addresses[0]}`);
  return Number(m[1]);
}

async function status(c: Cluster): Promise<StatusSnapshot> {
  return (await adminGet(`${await c.adminUrl()}/api/v1/status`)) as StatusSnapshot;
}

for (const mode of MODES) {
  const env = { L4LB_CLUSTER_MODE: mode };

  test(`${mode}: 40 UDP clients through 2 workers: each gets exactly its own datagrams back (SHA-256), in one session, and status and /metrics add up over the workers`, async (t) => {
    const echo = await udpEcho();
    t.after(() => echo.close());
    const c = await startCluster({
      listeners: [{ name: 'u', listen: '127.0.0.1:0', protocol: 'udp', pool: 'p', timeouts: { idle: '4s' } }],
      pools: [{ name: 'p', backends: [{ name: 'echo', address: `127.0.0.1:${echo.port}` }] }],
      admin: { listen: '127.0.0.1:0' },
    }, env);
    t.after(() => c.close());
    const port = udpPort(c);
    const pids = await c.workerPids();
    assert.equal((await c.waitLine('l4lb cluster started')).mode, mode);

    const clients = await Promise.all(Array.from({ length: 40 }, () => UdpClient.open()));
    t.after(() => Promise.all(clients.map((u) => u.close())));
    const sent = clients.map(() => Array.from({ length: 5 }, () => randomBytes(randomInt(1, 2_000))));
    // Each client waits for each reply before its next datagram (40 in flight at most): a burst
    // of 200 could overflow a socket buffer on the way, and UDP would rightly drop it.
    await Promise.all(clients.map(async (u, i) => {
      for (let k = 0; k < 5; k++) {
        await u.send(port, sent[i][k]);
        await u.waitReplies(k + 1, 15_000);
      }
    }));
    clients.forEach((u, i) => {
      assert.equal(u.replies.length, 5, `client ${i}`);
      assert.equal(sha(u.replies), sha(sent[i]), `client ${i} got its own datagrams, in order`);
    });
    // One backend socket per client: no client's datagrams were split over two sessions.
    assert.equal(echo.senders.size, 40);
    assert.equal(echo.received, 200);

    const live = await status(c);
    const l = live.listeners.find((x) => x.name === 'u')!;
    assert.equal(l.protocol, 'udp');
    assert.equal(l.active, 40, 'sessions open, summed over the workers');
    assert.equal(l.accepted, 40);
    assert.equal(l.datagramsUp, 200);
    assert.equal(l.datagramsDown, 200);

    // Sessions end by the idle timeout, each with one access line from the worker it lived in.
    await waitFor(() => accessLines(c).length >= 40, 15_000, '40 access lines');
    const lines = accessLines(c);
    assert.equal(lines.length, 40);
    for (const a of lines) {
      assert.equal(a.reason, 'idle_timeout');
      assert.equal(a.datagramsUp, 5);
      assert.equal(a.datagramsDown, 5);
    }
    const served = new Set(lines.map((a) => a.pid));
    if (mode === 'reuseport') assert.deepEqual([...served].sort(), [...pids].sort(), 'the kernel spread the clients over both workers');
    else assert.deepEqual([...served], [pids[0]], 'the first worker alone serves UDP in shared mode');

    const bytes = sent.flat().reduce((n, m) => n + m.length, 0);
    const after = await status(c);
    const la = after.listeners.find((x) => x.name === 'u')!;
    assert.equal(la.active, 0);
    assert.equal(la.accepted, 40);
    assert.deepEqual(la.closed, { idle_timeout: 40 });
    assert.equal(la.bytesUp, bytes);
    assert.equal(la.bytesDown, bytes);
    const b = after.pools[0].backends[0];
    assert.equal(b.total, 40);
    assert.equal(b.datagramsIn, 200);
    assert.equal(b.datagramsOut, 200);
    assert.equal(b.bytesIn, bytes);
    const metrics = (await adminGet(`${await c.adminUrl()}/metrics`)) as string;
    for (const line of [
      'l4lb_udp_sessions_total{listener="u"} 40',
      'l4lb_udp_sessions_active{listener="u"} 0',
      'l4lb_udp_sessions_ended_total{listener="u",reason="idle_timeout"} 40',
      'l4lb_udp_datagrams_total{listener="u",direction="up"} 200',
      'l4lb_udp_datagrams_total{listener="u",direction="down"} 200',
      'l4lb_backend_udp_datagrams_total{pool="p",backend="echo",direction="up"} 200',
      'l4lb_backend_udp_datagrams_total{pool="p",backend="echo",direction="down"} 200',
      `l4lb_listener_bytes_total{listener="u",direction="up"} ${bytes}`,
    ]) {
      assert.ok(metrics.includes(line), `missing: ${line}`);
    }
  });

  test(`${mode}: dig through 2 workers to two dnsmasq servers: correct answers from both, one session per query (responses: 1)`, async (t) => {
    const a = await Dnsmasq.start({ hosts: { 'svc.test': ['10.0.0.1'] } });
    t.after(() => a.close());
    const b = await Dnsmasq.start({ hosts: { 'svc.test': ['10.0.0.2'] } });
    t.after(() => b.close());
    const c = await startCluster({
      listeners: [{ name: 'dns', listen: '127.0.0.1:0', protocol: 'udp', pool: 'dns', udp: { responses: 1 } }],
      pools: [{ name: 'dns', backends: [a.server, b.server] }],
      admin: { listen: '127.0.0.1:0' },
    }, env);
    t.after(() => c.close());
    const port = udpPort(c);
    const answers: string[] = [];
    for (let i = 0; i < 8; i++) {
      const { stdout } = await run('dig', ['+short', '+tries=1', '+time=3', '-p', String(port), '@127.0.0.1', 'svc.test']);
      answers.push(stdout.trim());
    }
    assert.ok(answers.every((x) => x === '10.0.0.1' || x === '10.0.0.2'), answers.join(','));
    // Each worker balances round robin on its own; one that serves two queries uses both servers.
    assert.deepEqual(new Set(answers), new Set(['10.0.0.1', '10.0.0.2']), answers.join(','));
    if (mode === 'shared') {
      for (let i = 1; i < answers.length; i++) assert.notEqual(answers[i], answers[i - 1], `one worker alternates: ${answers.join(',')}`);
    }
    await waitFor(() => accessLines(c).length >= 8, 10_000, '8 access lines');
    assert.ok(accessLines(c).every((l) => l.reason === 'responses_done' && l.datagramsUp === 1 && l.datagramsDown === 1));
    const l = (await status(c)).listeners.find((x) => x.name === 'dns')!;
    assert.equal(l.accepted, 8);
    assert.equal(l.active, 0);
    assert.deepEqual(l.closed, { responses_done: 8 });
    assert.equal(l.datagramsUp, 8);
    assert.equal(l.datagramsDown, 8);
  });

  test(`${mode}: reload keeps a live UDP session on its backend in every worker; drain takes no new session and lets live ones end`, async (t) => {
    const a = await udpEcho('A:');
    const b = await udpEcho('B:');
    t.after(() => Promise.all([a.close(), b.close()]));
    const cfg = (backend: number) => ({
      listeners: [{ name: 'u', listen: '127.0.0.1:0', protocol: 'udp', pool: 'p', timeouts: { idle: '5s' } }],
      pools: [{ name: 'p', backends: [`127.0.0.1:${backend}`] }],
    });
    const c = await startCluster(cfg(a.port), env);
    t.after(() => c.close());
    const port = udpPort(c);
    const old = await UdpClient.open();
    t.after(() => old.close());
    await old.send(port, 'x');
    assert.equal((await old.waitReplies(1))[0].toString(), 'A:x');

    c.write(cfg(b.port));
    c.cli.child.kill('SIGHUP');
    await c.waitLine('config reloaded');
    await old.send(port, 'y');
    assert.equal((await old.waitReplies(2))[1].toString(), 'A:y', 'the live session stays on its backend');
    const fresh = await Promise.all(Array.from({ length: 8 }, () => UdpClient.open()));
    t.after(() => Promise.all(fresh.map((u) => u.close())));
    await Promise.all(fresh.map((u) => u.send(port, 'z')));
    for (const u of fresh) assert.equal((await u.waitReplies(1))[0].toString(), 'B:z', 'new sessions use the new pool in every worker');

    const exited = once(c.cli.child, 'exit');
    c.cli.child.kill('SIGTERM');
    await c.waitLine('listeners closed');
    await old.send(port, 'w');
    assert.equal((await old.waitReplies(3))[2].toString(), 'A:w', 'a live session is served while draining');
    const late = await UdpClient.open();
    t.after(() => late.close());
    await late.send(port, 'no');
    await assert.rejects(late.waitReplies(1, 700), /timed out/, 'no new session while draining');
    // Live sessions end by their idle timeout (5 s), well within the drain timeout; then all exit.
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0);
    const ends = accessLines(c);
    assert.equal(ends.filter((l) => l.reason === 'idle_timeout').length, 9, JSON.stringify(ends.map((l) => l.reason)));
  });

  test(`${mode}: a UDP port in use is refused at start with the address and the reason`, async (t) => {
    const holder = dgram.createSocket('udp4');
    t.after(() => new Promise<void>((r) => holder.close(() => r())));
    holder.bind(0, '127.0.0.1');
    await once(holder, 'listening');
    const port = holder.address().port;
    const r = await runL4lb(['--udp', `127.0.0.1:${port}`, '--workers', '2', '127.0.0.1:1'], { env });
    assert.equal(r.code, 1, r.stderr);
    assert.match(r.stderr, new RegExp(`cannot listen on udp 127\\.0\\.0\\.1:${port}: address already in use`));
  });
}

test('l4lb --udp with --workers 2 serves datagrams from the command line', async (t) => {
  const echo = await udpEcho('E:');
  t.after(() => echo.close());
  const cli = await spawnL4lb(['--udp', '127.0.0.1:0', '--workers', '2', '--access-log', 'off', `127.0.0.1:${echo.port}`]);
  t.after(async () => {
    if (cli.child.exitCode === null && cli.child.signalCode === null) {
      cli.child.kill('SIGKILL');
      await once(cli.child, 'exit');
    }
  });
  const m = /^127\.0\.0\.1:(\d+) udp$/.exec(cli.addresses[0]);
  assert.ok(m, cli.addresses[0]);
  const u = await UdpClient.open();
  t.after(() => u.close());
  await u.send(Number(m[1]), 'ping');
  assert.equal((await u.waitReplies(1))[0].toString(), 'E:ping');
});
