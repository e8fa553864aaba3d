/**
 * Multi-process mode end to end: real `l4lb --config FILE` processes with `workers: 2`.
 * Connections, byte-exact relay, reload, drain and worker restarts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { connect, exchange, runL4lb, waitFor } from '../support/net.js';
import {
  accessLines, backends, batch, listener, namedBackend, running, startCluster, transfer, whoAnswers,
} from './helpers.js';

test('connections are served by both workers, none by the primary', async (t) => {
  const a = await namedBackend('a');
  t.after(() => a.close());
  const c = await startCluster({ listeners: [listener('main', 'web')], pools: [{ name: 'web', backends: backends(a) }] });
  t.after(() => c.close());
  const workers = await c.workerPids();
  assert.equal(workers.length, 2);

  const answers = await batch(200, 20, () => whoAnswers(c.port));
  assert.deepEqual(new Set(answers), new Set(['a']));
  await waitFor(() => accessLines(c).length >= 200, 5000, '200 access lines');
  const pids = new Set(accessLines(c).map((l) => l.pid));
  assert.equal(pids.size, 2, `served by ${[...pids].join(', ')}`);
  assert.deepEqual([...pids].sort(), [...workers].sort());
  assert.ok(!pids.has(c.pid));
});

test('bytes are relayed exactly through the cluster', async (t) => {
  const echo = net.createServer({ allowHalfOpen: true }, (s) => s.pipe(s));
  echo.listen(0, '127.0.0.1');
  await new Promise((r) => echo.once('listening', r));
  t.after(() => new Promise((r) => echo.close(r)));
  const echoPort = (echo.address() as net.AddressInfo).port;
  const c = await startCluster({
    listeners: [listener('main', 'echo')],
    pools: [{ name: 'echo', backends: [{ address: `127.0.0.1:${echoPort}` }] }],
  });
  t.after(() => c.close());

  const results = await Promise.all(
    Array.from({ length: 6 }, async () => {
      const s = await connect(c.port);
      try {
        return await exchange(s, 3 * 1024 * 1024);
      } finally {
        s.destroy();
      }
    }),
  );
  for (const r of results) {
    assert.equal(r.receivedBytes, r.sentBytes);
    assert.equal(r.receivedSha, r.sentSha);
  }
});

test('SIGHUP reaches every worker while long transfers go on', async (t) => {
  const a = await namedBackend('a');
  const b = await namedBackend('b');
  t.after(() => Promise.all([a.close(), b.close()]));
  const base = { listeners: [listener('main', 'web')] };
  const c = await startCluster({ ...base, pools: [{ name: 'web', backends: backends(a) }] });
  t.after(() => c.close());

  const long = Array.from({ length: 6 }, () => transfer(c.port, 2 * 1024 * 1024, 2500));
  await waitFor(() => a.data >= 6, 5000, 'transfers started');
  c.write({ ...base, pools: [{ name: 'web', backends: backends(b) }] });
  c.cli.child.kill('SIGHUP');
  const line = await c.waitLine('config reloaded');
  assert.equal(line.pid, c.pid, 'one line, from the primary');
  assert.equal(line.workers, 2);

  const answers = await batch(200, 20, () => whoAnswers(c.port));
  assert.deepEqual(new Set(answers), new Set(['b']), 'new connections go to the new set only');
  const served = new Set(accessLines(c).filter((l) => String(l.backendAddress).endsWith(`:${b.port}`)).map((l) => l.pid));
  assert.equal(served.size, 2, 'both workers use the new set');

  for (const r of await Promise.all(long)) {
    assert.equal(r.backend, 'a');
    assert.equal(r.echoedBytes, 2 * 1024 * 1024);
    assert.equal(r.echoedSha, r.sentSha);
  }
  assert.equal(c.lines('config reloaded').length, 1);
});

test('a reload whose new listener cannot bind changes nothing in any worker', async (t) => {
  const a = await namedBackend('a');
  const b = await namedBackend('b');
  const squatter = net.createServer();
  squatter.listen(0, '127.0.0.1');
  await new Promise((r) => squatter.once('listening', r));
  t.after(() => Promise.all([a.close(), b.close(), new Promise((r) => squatter.close(r))]));
  const taken = (squatter.address() as net.AddressInfo).port;
  const c = await startCluster({ listeners: [listener('main', 'web')], pools: [{ name: 'web', backends: backends(a) }] });
  t.after(() => c.close());

  c.write({
    listeners: [listener('main', 'web'), { name: 'extra', listen: `127.0.0.1:${taken}`, pool: 'web' }],
    pools: [{ name: 'web', backends: backends(b) }],
  });
  c.cli.child.kill('SIGHUP');
  const failed = await c.waitLine('reload failed; the old config keeps serving');
  assert.match(String(failed.err), /address already in use/);
  const answers = await batch(40, 10, () => whoAnswers(c.port));
  assert.deepEqual(new Set(answers), new Set(['a']));
  assert.equal(c.lines('config reloaded').length, 0);
});

test('SIGTERM drains every worker: transfers in flight complete and the primary exits 0', async (t) => {
  const a = await namedBackend('a');
  t.after(() => a.close());
  const c = await startCluster({ listeners: [listener('main', 'web')], pools: [{ name: 'web', backends: backends(a) }] });
  t.after(() => c.close());

  const long = Array.from({ length: 6 }, () => transfer(c.port, 1024 * 1024, 1500));
  await waitFor(() => a.data >= 6, 5000, 'transfers started');
  c.cli.child.kill('SIGTERM');
  await c.waitLine('worker draining', 2);
  // The primary's line, not the workers': in shared mode it holds the socket until then.
  await c.waitLine('listeners closed');
  const refused = await new Promise<boolean>((resolve) => {
    const s = net.connect(c.port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', () => resolve(true));
  });
  assert.ok(refused, 'no new connection is accepted while draining');
  for (const r of await Promise.all(long)) {
    assert.equal(r.echoedBytes, 1024 * 1024);
    assert.equal(r.echoedSha, r.sentSha);
  }
  const [code] = await new Promise<[number | null]>((r) => c.cli.child.once('exit', (code) => r([code])));
  assert.equal(code, 0);
  assert.equal(c.lines('worker stopped').length, 2);
  assert.equal(c.lines('l4lb stopped').length, 1);
});

test('a killed worker is restarted and the listener keeps serving', async (t) => {
  const a = await namedBackend('a');
  t.after(() => a.close());
  const c = await startCluster({ listeners: [listener('main', 'web')], pools: [{ name: 'web', backends: backends(a) }] });
  t.after(() => c.close());
  const [victim, survivor] = await c.workerPids();

  process.kill(victim, 'SIGKILL');
  const exited = await c.waitLine('worker exited unexpectedly; restarting it');
  assert.equal(exited.workerPid, victim);
  assert.equal(exited.signal, 'SIGKILL');
  // While the worker is down, the other one serves.
  assert.deepEqual(new Set(await batch(30, 5, () => whoAnswers(c.port))), new Set(['a']));

  const restarted = await c.waitLine('worker restarted');
  const fresh = restarted.workerPid as number;
  assert.ok(fresh !== victim && fresh !== survivor);
  const before = accessLines(c).length;
  assert.deepEqual(new Set(await batch(200, 20, () => whoAnswers(c.port))), new Set(['a']));
  await waitFor(() => accessLines(c).length >= before + 200, 5000, 'access lines');
  const pids = new Set(accessLines(c).slice(before).map((l) => l.pid));
  assert.ok(pids.has(fresh), `the new worker serves too (served by ${[...pids].join(', ')})`);
  assert.ok(!pids.has(victim));
});

test('workers drain and exit when the primary dies', async (t) => {
  const a = await namedBackend('a');
  t.after(() => a.close());
  const c = await startCluster({ listeners: [listener('main', 'web')], pools: [{ name: 'web', backends: backends(a) }] });
  t.after(() => c.close());
  const pids = await c.workerPids();
  assert.ok(pids.every(running));

  c.cli.child.kill('SIGKILL');
  await waitFor(() => !pids.some(running), 10_000, 'orphaned workers to exit');
});

test('connection caps hold for the cluster as a whole', async (t) => {
  const a = await namedBackend('a');
  t.after(() => a.close());
  const c = await startCluster({
    listeners: [listener('main', 'web')],
    pools: [{ name: 'web', backends: [{ ...backends(a)[0], maxConnections: 2 }] }],
  });
  t.after(() => c.close());

  const clients = await Promise.all(Array.from({ length: 8 }, () => connect(c.port)));
  t.after(() => clients.forEach((s) => s.destroy()));
  for (const s of clients) {
    s.on('error', () => {});
    s.write('hello\n');
  }
  await waitFor(() => a.sockets.size >= 1, 5000, 'a first connection at the backend');
  await new Promise((r) => setTimeout(r, 500));
  assert.ok(a.sockets.size <= 2, `${a.sockets.size} connections at a backend capped at 2`);
});

test('a port in use is refused at start, even when its holder allows sharing', async (t) => {
  // On Node with SO_REUSEPORT this is what a second l4lb's worker looks like.
  const holder = net.createServer();
  holder.listen({ host: '127.0.0.1', port: 0, reusePort: true });
  await new Promise((r) => holder.once('listening', r));
  t.after(() => new Promise((r) => holder.close(r)));
  const port = (holder.address() as net.AddressInfo).port;

  const r = await runL4lb(['--workers', '2', '--listen', `127.0.0.1:${port}`, '127.0.0.1:1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /address already in use \(L4LB_ERR_LISTEN\)/);
  assert.equal(r.stdout, '');
});
