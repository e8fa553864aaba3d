/**
 * Multi-process mode: health decided once and shared, passive ejections shared, the admin
 * API showing sums over the workers and reaching every worker.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { refusedPort, waitFor } from '../support/net.js';
import type { StatusSnapshot } from '../../src/admin/status.js';
import {
  accessLines, adminGet, adminPost, backends, batch, listener, namedBackend, startCluster, whoAnswers,
} from './helpers.js';

/** Generous time for the primary to push a state change to the workers (it looks every 100 ms). */
const PUSH_MS = 500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the primary alone runs health checks, and no worker uses a backend it marks down', async (t) => {
  const a = await namedBackend('a');
  const b = await namedBackend('b');
  t.after(() => Promise.all([a.close(), b.close()]));
  const c = await startCluster({
    listeners: [listener('main', 'web')],
    pools: [{
      name: 'web',
      backends: backends(a, b),
      healthCheck: { send: 'PING\n', expect: 'PONG', interval: '150ms', timeout: '100ms', rise: 1, fall: 2 },
    }],
  });
  t.after(() => c.close());
  const bAddr = `127.0.0.1:${b.port}`;
  const stateLines = (state: string) => c.logs().filter((l) => l.backend === 'b' && l.state === state);

  assert.deepEqual(new Set(await batch(40, 8, () => whoAnswers(c.port))), new Set(['a', 'b']));
  b.healthy = false;
  await waitFor(() => stateLines('down').length > 0, 5000, 'b marked down');
  await sleep(PUSH_MS);
  const seen = b.data;
  assert.deepEqual(new Set(await batch(100, 10, () => whoAnswers(c.port))), new Set(['a']));
  assert.equal(b.data, seen, 'no data connection reached b');
  const down = stateLines('down');
  assert.equal(down[0].backendAddress, bAddr, 'the name in backend, the address beside it');
  assert.equal(down.length, 1, 'marked down once');
  assert.equal(down[0].pid, c.pid, 'by the primary');

  b.healthy = true;
  await waitFor(() => stateLines('up').length > 0, 5000, 'b marked up');
  await sleep(PUSH_MS);
  const before = accessLines(c).length;
  assert.deepEqual(new Set(await batch(100, 10, () => whoAnswers(c.port))), new Set(['a', 'b']));
  await waitFor(() => accessLines(c).length >= before + 100, 5000, 'access lines');
  const usingB = new Set(accessLines(c).slice(before).filter((l) => l.backend === 'b' && l.backendAddress === bAddr).map((l) => l.pid));
  assert.equal(usingB.size, 2, 'both workers use b again');
});

test('an ejection one worker makes is applied by all and logged once', async (t) => {
  const a = await namedBackend('a');
  t.after(() => a.close());
  const dead = `127.0.0.1:${await refusedPort()}`;
  const c = await startCluster({
    listeners: [listener('main', 'web')],
    pools: [{
      name: 'web',
      backends: [...backends(a), { name: 'dead', address: dead }],
      passive: { consecutiveFailures: 2, baseEjection: '30s' },
    }],
  });
  t.after(() => c.close());
  const ejections = () => c.logs().filter((l) => l.backend === 'dead' && l.backendAddress === dead && /ejected/.test(String(l.msg)));
  const connectFailures = () => c.logs().filter((l) => l.backend === 'dead' && l.backendAddress === dead && l.code === 'L4LB_ERR_CONNECT_REFUSED' && l.msg !== 'access');

  for (let i = 0; i < 60 && ejections().length === 0; i++) assert.equal(await whoAnswers(c.port), 'a');
  await waitFor(() => ejections().length > 0, 5000, 'ejection');
  await sleep(PUSH_MS);
  const failures = connectFailures().length;
  assert.ok(failures >= 2);
  assert.deepEqual(new Set(await batch(100, 10, () => whoAnswers(c.port))), new Set(['a']));
  await sleep(100);
  assert.equal(connectFailures().length, failures, 'no worker tries the ejected backend any more');
  assert.equal(ejections().length, 1);
  assert.equal(ejections()[0].pid, c.pid);
});

test('the admin API shows sums over the workers and its changes reach every worker', async (t) => {
  const a = await namedBackend('a');
  const b = await namedBackend('b');
  const d = await namedBackend('d');
  t.after(() => Promise.all([a.close(), b.close(), d.close()]));
  const c = await startCluster({
    listeners: [listener('main', 'web')],
    pools: [{ name: 'web', backends: backends(a, b) }],
    admin: { listen: '127.0.0.1:0' },
  });
  t.after(() => c.close());
  const api = `${await c.adminUrl()}/api/v1`;

  await batch(120, 12, () => whoAnswers(c.port));
  const s1 = (await adminGet(`${api}/status`)) as StatusSnapshot;
  assert.equal(s1.process.workers, 2);
  assert.equal(s1.process.pid, c.pid);
  assert.equal(s1.listeners[0].accepted, 120);
  assert.equal(s1.pools[0].backends.reduce((n, x) => n + x.total, 0), 120);
  const metrics = (await adminGet(`${await c.adminUrl()}/metrics`)) as string;
  assert.match(metrics, /^l4lb_connections_accepted_total\{listener="main"\} 120$/m);

  // Counters of a worker that dies are kept.
  const [victim] = await c.workerPids();
  process.kill(victim, 'SIGKILL');
  await c.waitLine('worker restarted');
  const s2 = (await adminGet(`${api}/status`)) as StatusSnapshot;
  assert.equal(s2.listeners[0].accepted, 120);
  assert.equal(s2.process.workers, 2);

  await adminPost(`${api}/pools/web/backends/a/disable`);
  assert.deepEqual(new Set(await batch(60, 10, () => whoAnswers(c.port))), new Set(['b']));
  await adminPost(`${api}/pools/web/backends`, { name: 'd', address: `127.0.0.1:${d.port}` });
  const removed = await fetch(`${api}/pools/web/backends/b`, { method: 'DELETE' });
  assert.equal(removed.status, 200, await removed.text());
  const before = accessLines(c).length;
  assert.deepEqual(new Set(await batch(100, 10, () => whoAnswers(c.port))), new Set(['d']));
  await waitFor(() => accessLines(c).length >= before + 100, 5000, 'access lines');
  assert.equal(new Set(accessLines(c).slice(before).map((l) => l.pid)).size, 2, 'both workers follow the API');

  const s3 = (await adminGet(`${api}/status`)) as StatusSnapshot;
  assert.equal(s3.listeners[0].accepted, 280);
  const web = s3.pools[0];
  assert.deepEqual(web.backends.map((x) => [x.name, x.state]), [['a', 'disabled'], ['d', 'up']]);
  assert.equal(web.backends.find((x) => x.name === 'd')!.total, 100);
});
