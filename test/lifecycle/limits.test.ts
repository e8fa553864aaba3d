/**
 * Connection limits: per-listener and global `maxConnections` with `overLimit: reject | queue`,
 * and the per-pool wait queue for when every backend is at its own `maxConnections`
 * (overflow to other backends, FIFO, queue timeout, queue full).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { startProxy, type Proxy } from '../../src/proxy/proxy.js';
import { configFromBackends } from '../../src/config/quick.js';
import { silentLogger } from '../../src/observability/log.js';
import type { Config } from '../../src/config/types.js';
import type { AccessRecord } from '../../src/proxy/connection.js';
import { pino } from 'pino';
import { AcceptQueue, FdPressure, isFdExhausted } from '../../src/proxy/limits.js';
import { fastPathStatus } from '../../src/proxy/node-internals.js';
import { BackendQueue, type QueueWaiter } from '../../src/admission/queue.js';
import { connect, echoServer, waitFor, startServer, type TestServer } from '../support/net.js';
import { startL4lb, config, listener, pool } from '../faults/harness.js';

const T = { timeout: 30_000 };
/** How long a connection that should not be served is watched for a reply. */
const QUIET_MS = 300;

async function startWith(backends: TestServer[], tweak: (c: Config) => void) {
  const cfg = configFromBackends(backends.map((b) => `127.0.0.1:${b.port}`), { accessLog: 'off' });
  tweak(cfg);
  const records: AccessRecord[] = [];
  const proxy = await startProxy(cfg, { logger: silentLogger(), onAccess: (r) => records.push(r) });
  return { proxy, records, ports: proxy.addresses().map((a) => a.port) };
}

/** A client that says `ping` and tells whether and when it got the echo. */
async function pinger(port: number) {
  const s = await connect(port);
  let echoed = false;
  let ended = false;
  // Closed by l4lb: a FIN, or a reset when it never read the ping (a held connection).
  s.on('error', () => (ended = true));
  s.on('close', () => (ended = true));
  const echo = new Promise<void>((resolve) =>
    s.on('data', () => {
      echoed = true;
      resolve();
    }),
  );
  s.on('end', () => (ended = true));
  s.write('ping');
  return {
    s,
    echo,
    get echoed() {
      return echoed;
    },
    get ended() {
      return ended;
    },
  };
}

const quiet = () => new Promise((r) => setTimeout(r, QUIET_MS));

async function cleanup(proxy: Proxy, servers: TestServer[], sockets: net.Socket[]) {
  for (const s of sockets) s.destroy();
  await proxy.close();
  await Promise.all(servers.map((x) => x.close()));
}

test('overLimit reject: beyond the listener limit a connection is closed at once; a freed slot is reused', T, async (t) => {
  const e = await echoServer();
  const { proxy, ports } = await startWith([e], (c) => {
    c.listeners[0].maxConnections = 2;
    c.listeners[0].overLimit = 'reject';
  });
  const open: net.Socket[] = [];
  t.after(() => cleanup(proxy, [e], open));
  const a = await pinger(ports[0]);
  const b = await pinger(ports[0]);
  open.push(a.s, b.s);
  await Promise.all([a.echo, b.echo]);
  const c = await pinger(ports[0]);
  open.push(c.s);
  await waitFor(() => c.ended, 5000, 'the third connection closed');
  assert.equal(c.echoed, false);
  assert.equal([...proxy.listeners.values()][0].stats.rejected.get('listener_limit'), 1);
  a.s.destroy();
  await waitFor(() => proxy.activeConnections() === 1, 5000, 'slot freed');
  const d = await pinger(ports[0]);
  open.push(d.s);
  await d.echo;
});

test('overLimit queue: connections over the limit wait, then are served oldest first as slots free', T, async (t) => {
  const e = await echoServer();
  const { proxy, ports } = await startWith([e], (c) => {
    c.listeners[0].maxConnections = 2;
    c.listeners[0].overLimit = 'queue';
  });
  const open: net.Socket[] = [];
  t.after(() => cleanup(proxy, [e], open));
  const first = [await pinger(ports[0]), await pinger(ports[0])];
  open.push(...first.map((p) => p.s));
  await Promise.all(first.map((p) => p.echo));
  const waiting = [];
  for (let i = 0; i < 3; i++) {
    const p = await pinger(ports[0]);
    open.push(p.s);
    waiting.push(p);
  }
  await waitFor(() => proxy.heldConnections === 3, 5000, 'three held');
  await quiet();
  assert.deepEqual(waiting.map((p) => p.echoed || p.ended), [false, false, false], 'held connections are neither served nor closed');

  const servedOrder: number[] = [];
  waiting.forEach((p, i) => void p.echo.then(() => servedOrder.push(i)));
  first[0].s.destroy();
  await waiting[0].echo;
  await quiet();
  assert.deepEqual(servedOrder, [0], 'one slot, one connection served: the oldest');
  first[1].s.destroy();
  waiting[0].s.destroy();
  await Promise.all([waiting[1].echo, waiting[2].echo]);
  assert.deepEqual(servedOrder, [0, 1, 2]);
  assert.equal(proxy.heldConnections, 0);
  assert.equal([...proxy.listeners.values()][0].stats.rejected.size, 0, 'nothing was rejected');
});

test('the global limit holds connections of every queue listener and serves the oldest across listeners', T, async (t) => {
  const e = await echoServer();
  const { proxy, ports } = await startWith([e], (c) => {
    c.maxConnections = 1;
    c.listeners[0].overLimit = 'queue';
    c.listeners.push({ ...c.listeners[0], name: 'second' });
  });
  const open: net.Socket[] = [];
  t.after(() => cleanup(proxy, [e], open));
  const a = await pinger(ports[0]);
  open.push(a.s);
  await a.echo;
  const b = await pinger(ports[1]); // waits on the second listener
  open.push(b.s);
  await waitFor(() => proxy.heldConnections === 1, 5000, 'held on the second listener');
  const c = await pinger(ports[0]); // arrives later on the first
  open.push(c.s);
  await waitFor(() => proxy.heldConnections === 2, 5000, 'two held');
  a.s.destroy();
  await b.echo;
  await quiet();
  assert.equal(c.echoed, false, 'the later arrival still waits');
  b.s.destroy();
  await c.echo;
});

/** A listener with `maxConnections: 1` (overLimit queue) and one connection served: the next is held. */
async function oneServedOfOne(t: { after(fn: () => Promise<void>): void }) {
  const e = await echoServer();
  const { proxy, ports, records } = await startWith([e], (c) => {
    c.listeners[0].maxConnections = 1;
    c.listeners[0].overLimit = 'queue';
  });
  const open: net.Socket[] = [];
  t.after(() => cleanup(proxy, [e], open));
  const a = await pinger(ports[0]);
  open.push(a.s);
  await a.echo;
  return { proxy, ports, records, open };
}

test('a reload that raises the limit lets held connections in; a drain closes held ones at once', T, async (t) => {
  const { proxy, ports, open } = await oneServedOfOne(t);
  const held = [await pinger(ports[0]), await pinger(ports[0]), await pinger(ports[0])];
  open.push(...held.map((p) => p.s));
  await waitFor(() => proxy.heldConnections === 3, 5000, 'three held');
  const next = structuredClone(proxy.config);
  next.listeners[0].maxConnections = 3;
  await proxy.reload(next);
  await Promise.all([held[0].echo, held[1].echo]);
  await quiet();
  assert.equal(held[2].echoed, false, 'only up to the new limit');
  assert.equal(proxy.heldConnections, 1);
  const drained = proxy.drain(5_000, 0);
  await waitFor(() => held[2].ended, 5000, 'the held connection is closed when draining starts');
  assert.equal(held[2].echoed, false);
  for (const s of open) s.destroy();
  await drained;
});

test('a connection held on a plain listener that a reload makes a PROXY listener is refused, not relayed unchecked', T, async (t) => {
  const { proxy, ports, records, open } = await oneServedOfOne(t);
  // Accepted while the listener was plain: on the fast path, a raw socket, which cannot be preread.
  const held = await pinger(ports[0]);
  open.push(held.s);
  await waitFor(() => proxy.heldConnections === 1, 5000, 'one held');
  const next = structuredClone(proxy.config);
  next.listeners[0].maxConnections = 2;
  next.listeners[0].acceptProxy = { trusted: ['127.0.0.1/32'] };
  await proxy.reload(next);
  await waitFor(() => held.ended, 5000, 'the held connection is closed');
  assert.equal(held.echoed, false, 'its bytes never reached the backend');
  const stats = [...proxy.listeners.values()][0].stats;
  // Without the fast path it was a net.Socket: preread, and its 'ping' is no PROXY header.
  const reason = fastPathStatus().enabled ? 'listener_changed' : 'bad_proxy_header';
  assert.equal(stats.rejected.get(reason), 1);
  assert.equal(stats.accepted, [...stats.rejected.values()].reduce((x, y) => x + y, 0) + [...stats.closed.values()].reduce((x, y) => x + y, 0) + stats.active);
  assert.equal(records.filter((r) => r.reason === reason).length, fastPathStatus().enabled ? 0 : 1, 'access-logged only when admitted');
});

test('per-backend maxConnections: overflow to the other backend, then a FIFO queue with a timeout, then queue_full', T, async (t) => {
  const servers = [await echoServer(), await echoServer()];
  const { proxy, ports, records } = await startWith(servers, (c) => {
    for (const b of c.pools[0].backends) b.maxConnections = 1;
    c.pools[0].queue = { size: 2, timeoutMs: 1_000 };
  });
  const open: net.Socket[] = [];
  t.after(() => cleanup(proxy, servers, open));
  const a = await pinger(ports[0]);
  const b = await pinger(ports[0]);
  open.push(a.s, b.s);
  await Promise.all([a.echo, b.echo]);
  assert.deepEqual(servers.map((s) => s.sockets.size), [1, 1], 'the second connection overflowed to the other backend');
  const q1 = await pinger(ports[0]);
  const q2 = await pinger(ports[0]);
  open.push(q1.s, q2.s);
  const queue = proxy.backendQueue([...proxy.pools.values()][0])!;
  await waitFor(() => queue.length === 2, 5000, 'two waiting in the pool queue');
  const over = await pinger(ports[0]);
  open.push(over.s);
  await waitFor(() => over.ended, 5000, 'queue full: closed at once');
  assert.equal(over.echoed, false);
  a.s.destroy();
  await q1.echo; // the oldest waiter takes the freed slot
  await waitFor(() => q2.ended, 5000, 'the other waiter gives up after the queue timeout');
  assert.equal(q2.echoed, false);
  await waitFor(() => records.some((r) => r.reason === 'queue_timeout'), 5000, 'access record');
  assert.ok(records.some((r) => r.reason === 'queue_full'));
  assert.equal(queue.length, 0);
  assert.equal(queue.timedOut, 1);
});

test('overLimit queue set in a config file holds the connection until a slot frees', T, async (t) => {
  const e = await echoServer();
  const l4lb = await startL4lb(config([listener('main', 'p', { maxConnections: 1, overLimit: 'queue' })], [pool('p', [e.port])]));
  const open: net.Socket[] = [];
  t.after(async () => {
    for (const s of open) s.destroy();
    await l4lb.close();
    await e.close();
  });
  const a = await pinger(l4lb.port);
  open.push(a.s);
  await a.echo;
  const b = await pinger(l4lb.port);
  open.push(b.s);
  await quiet();
  assert.equal(b.echoed || b.ended, false, 'waiting, not refused');
  a.s.destroy();
  await b.echo;
});

test('AcceptQueue is a bounded FIFO and closes what it holds on demand', async (t) => {
  const srv = await startServer(() => {});
  const clients: net.Socket[] = [];
  t.after(async () => {
    for (const c of clients) c.destroy();
    await srv.close();
  });
  const q = new AcceptQueue(2);
  for (let i = 0; i < 3; i++) clients.push(await connect(srv.port));
  await waitFor(() => srv.sockets.size === 3);
  const accepted = [...srv.sockets];
  assert.equal(q.push(accepted[0]), true);
  assert.equal(q.push(accepted[1]), true);
  assert.equal(q.push(accepted[2]), false, 'full');
  assert.equal(q.overflowed, 1);
  assert.equal(q.size, 2);
  assert.equal(q.shift(), accepted[0]);
  assert.equal(q.push(accepted[2]), true);
  assert.equal(q.closeAll(), 2);
  assert.equal(q.size, 0);
  assert.ok(accepted[1].destroyed && accepted[2].destroyed);
  await once(clients[1], 'end');
});

test('BackendQueue serves waiters in order, stops at the first that must wait, and times out the rest', async () => {
  const q = new BackendQueue({ size: 3, timeoutMs: 200 });
  let free = 0;
  const log: string[] = [];
  const mk = (name: string): QueueWaiter => ({
    retry() {
      if (free === 0) return false;
      free--;
      log.push(`served ${name}`);
      return true;
    },
    expire(reason) {
      log.push(`${reason} ${name}`);
    },
  });
  const [a, b, c, d] = ['a', 'b', 'c', 'd'].map(mk);
  assert.equal(q.enqueue(a), true);
  assert.equal(q.enqueue(b), true);
  assert.equal(q.enqueue(c), true);
  assert.equal(q.enqueue(d), false, 'size 3');
  q.wake();
  assert.deepEqual(log, [], 'no slot: nobody served, order kept');
  free = 1;
  q.wake();
  assert.deepEqual(log, ['served a']);
  q.remove(b);
  await waitFor(() => log.length === 2, 2000, 'timeout');
  assert.deepEqual(log, ['served a', 'queue_timeout c']);
  assert.equal(q.length, 0);
  assert.equal(q.timedOut, 1);
  const none = new BackendQueue({ size: 0, timeoutMs: 1000 });
  assert.equal(none.enqueue(mk('e')), false, 'size 0 is no queue');
});

test('running out of descriptors is recognised in an error or its cause, counted every time, logged once per interval', async () => {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l) as Record<string, unknown>) });
  const fd = new FdPressure(logger);
  const emfile = Object.assign(new Error('connect EMFILE'), { code: 'EMFILE' });
  assert.equal(isFdExhausted(emfile), true);
  assert.equal(isFdExhausted(new Error('wrapped', { cause: emfile })), true);
  assert.equal(isFdExhausted(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), false);
  for (let i = 0; i < 50; i++) fd.record('connect', emfile);
  assert.equal(fd.count, 50);
  assert.equal(lines.length, 1, 'one line per interval, not one per failure');
  assert.equal(lines[0].total, 1);
  await fd.check();
  if (fd.limit !== undefined) {
    assert.ok(fd.inUse !== undefined && fd.inUse > 0 && fd.inUse < fd.limit, `${fd.inUse} of ${fd.limit} descriptors in use`);
  }
});
