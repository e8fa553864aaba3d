/**
 * The fast data path: raw sockets (raw-socket.ts), accepted sockets reading into buffers of
 * their own (node-internals.ts, the one module relying on Node internals) and the pooled read
 * buffers (socket-reader.ts).
 * The data-path suites run again without the fast path in data-path-fallback.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { attachReader, fastPathStatus, FAST_PATH_ENV } from '../../src/proxy/node-internals.js';
import { connectRaw, rawSocketsOpen, type RawSocket } from '../../src/proxy/raw-socket.js';
import type { RelayCore, RelaySide } from '../../src/proxy/relay-side.js';
import {
  SocketReader, BufferPool, readBuffersInUse, TINY_BUFFER_SIZE, SMALL_BUFFER_SIZE, LARGE_BUFFER_SIZE, nextReadBuffer, takeReadBuffer, giveReadBuffer, type ReadSink,
} from '../../src/proxy/socket-reader.js';
import { startProxy } from '../../src/proxy/proxy.js';
import { configFromBackends } from '../../src/config/quick.js';
import { silentLogger } from '../../src/observability/log.js';
import { startServer, connect, exchange, waitFor, type StreamResult } from '../support/net.js';

const MiB = 1024 * 1024;
const forcedOff = process.env[FAST_PATH_ENV] === '0';
/**
 * Tests of the fast path itself. When the suite is re-run with the fast path forced off
 * (data-path-fallback.test.ts), they are not registered rather than skipped: they ran in
 * the normal pass, and CI allows no skipped test.
 */
const testFast: typeof test = (forcedOff ? () => {} : test) as typeof test;

/** A server whose accepted sockets arrive paused, as l4lb's listener makes them. */
async function pausedServer(t: { after(fn: () => unknown): void }): Promise<{ port: number; accepted: Promise<net.Socket> }> {
  let resolveAccepted!: (s: net.Socket) => void;
  const accepted = new Promise<net.Socket>((r) => (resolveAccepted = r));
  const server = net.createServer({ pauseOnConnect: true, allowHalfOpen: true }, (s) => {
    s.on('error', () => {});
    t.after(() => s.destroy());
    resolveAccepted(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  return { port: (server.address() as net.AddressInfo).port, accepted };
}

/** Collects what a reader hands over, copying it out (the buffer is reused). */
class Collector implements ReadSink {
  readonly hash = createHash('sha256');
  bytes = 0;
  reads = 0;
  sizes = new Set<number>();
  onRead(n: number, buf: Buffer): boolean {
    this.reads++;
    this.sizes.add(buf.length);
    this.bytes += n;
    this.hash.update(buf.subarray(0, n));
    return true;
  }
}

testFast('the fast path is available on this Node version', () => {
  // If a Node release moves the internals node-internals.ts relies on, this fails loudly rather
  // than l4lb silently falling back to the slower 'data' path.
  assert.deepEqual(fastPathStatus(), { enabled: true });
});

testFast('an accepted socket reads into its reader, never through data events', async (t) => {
  const { port, accepted } = await pausedServer(t);
  const client = await connect(port);
  t.after(() => client.destroy());
  const socket = await accepted;
  const reader = attachReader(socket, () => new SocketReader());
  assert.ok(reader, 'the reader is attached');
  t.after(() => reader.release());
  const sink = new Collector();
  assert.equal(reader.attach(sink), true);
  let dataEvents = 0;
  socket.on('data', () => dataEvents++);
  const ended = once(socket, 'end');
  socket.resume();

  const payload = randomBytes(3 * MiB);
  client.end(payload);
  await ended;
  assert.equal(dataEvents, 0);
  assert.equal(sink.bytes, payload.length);
  assert.equal(sink.hash.digest('hex'), createHash('sha256').update(payload).digest('hex'));
  // Reads that fill a buffer moved the socket up: tiny, then small, then large.
  assert.deepEqual([...sink.sizes].sort((a, b) => a - b), [TINY_BUFFER_SIZE, SMALL_BUFFER_SIZE, LARGE_BUFFER_SIZE]);
});

testFast('a reader that returns false stops the socket until it is resumed, and loses nothing', async (t) => {
  const { port, accepted } = await pausedServer(t);
  const client = await connect(port);
  t.after(() => client.destroy());
  const socket = await accepted;
  const reader = attachReader(socket, () => new SocketReader())!;
  t.after(() => reader.release());
  const hash = createHash('sha256');
  let bytes = 0;
  let stopped = 0;
  // Refuse every read once, as the relay does while a write is pending, and resume later.
  reader.attach({
    onRead(n, buf) {
      hash.update(buf.subarray(0, n));
      bytes += n;
      stopped++;
      setImmediate(() => socket.resume());
      return false;
    },
  });
  const ended = once(socket, 'end');
  socket.resume();
  const payload = randomBytes(MiB);
  client.end(payload);
  await ended;
  assert.equal(bytes, payload.length);
  assert.equal(hash.digest('hex'), createHash('sha256').update(payload).digest('hex'));
  assert.ok(stopped > 1);
});

test('the fast path leaves TLS sockets and sockets with buffered data alone', async (t) => {
  const { port, accepted } = await pausedServer(t);
  const client = await connect(port);
  t.after(() => client.destroy());
  const socket = await accepted;
  // Data already in the stream's buffer must be read the normal way first.
  socket.unshift(Buffer.from('already read'));
  let made = 0;
  const make = () => {
    made++;
    return new SocketReader();
  };
  assert.equal(attachReader(socket, make), undefined);
  const wrapped = new tls.TLSSocket(new net.Socket());
  t.after(() => wrapped.destroy());
  assert.equal(attachReader(wrapped, make), undefined);
  assert.equal(made, 0, 'no reader (and no pooled buffer) is taken when it cannot be used');
});

test('a reader holds what arrives before a sink is attached, then hands it over first', async (t) => {
  // A backend that speaks first (a banner) can send before the relay attaches.
  const reader = new SocketReader();
  t.after(() => reader.release());
  const server = net.createServer((s) => s.end('banner\n'));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => server.close());
  const s = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', onread: reader.onread });
  t.after(() => s.destroy());
  await once(s, 'connect');
  await new Promise((r) => setTimeout(r, 100)); // the banner has been read by now, with no sink
  const got: string[] = [];
  assert.equal(reader.attach({ onRead: (n, buf) => (got.push(buf.toString('latin1', 0, n)), true) }), true);
  s.resume();
  await once(s, 'end');
  assert.deepEqual(got, ['banner\n']);
});

test('the buffer pool reuses freed buffers, carves slabs, and stops at its maximum', () => {
  const pool = new BufferPool(1024, 4, 6);
  const a = pool.take()!;
  const b = pool.take()!;
  assert.equal(a.length, 1024);
  assert.equal(a.buffer, b.buffer, 'carved from one slab');
  assert.notEqual(a.byteOffset, b.byteOffset);
  const rest = [pool.take(), pool.take(), pool.take(), pool.take()];
  assert.ok(rest.every((x) => x !== undefined));
  assert.equal(pool.inUse, 6);
  assert.equal(pool.take(), undefined, 'at the maximum');
  pool.give(b);
  assert.equal(pool.take(), b, 'the last freed is reused first');
});

test('a socket holds a tiny buffer between short messages, and moves up one size per read that fills its buffer', () => {
  const before = readBuffersInUse();
  let b = takeReadBuffer();
  assert.equal(b.length, TINY_BUFFER_SIZE, 'every socket starts tiny');
  assert.equal(nextReadBuffer(b, 100), b, 'a short read keeps the tiny buffer');
  b = nextReadBuffer(b, TINY_BUFFER_SIZE);
  assert.equal(b.length, SMALL_BUFFER_SIZE, 'a full tiny read moves up');
  assert.equal(nextReadBuffer(b, 5000), b, 'a read that needed more than tiny stays small');
  b = nextReadBuffer(b, SMALL_BUFFER_SIZE);
  assert.equal(b.length, LARGE_BUFFER_SIZE, 'a full small read moves up');
  assert.equal(nextReadBuffer(b, LARGE_BUFFER_SIZE), b);
  b = nextReadBuffer(b, 5000);
  assert.equal(b.length, SMALL_BUFFER_SIZE, 'a large buffer steps back to small after a read that fitted it');
  b = nextReadBuffer(b, TINY_BUFFER_SIZE - 1);
  assert.equal(b.length, TINY_BUFFER_SIZE, 'and to tiny after a read that fitted a tiny one: between messages');
  giveReadBuffer(b);
  assert.deepEqual(readBuffersInUse(), before, 'every buffer went back to its pool');
});

test('relayed connections give every read buffer back, however they end', async (t) => {
  let n = 0;
  const backend = await startServer((s) => {
    const kind = n++ % 3;
    if (kind === 0) s.pipe(s);
    else if (kind === 1) s.once('data', () => s.resetAndDestroy());
    else s.resume().end();
  });
  const proxy = await startProxy(configFromBackends([`127.0.0.1:${backend.port}`], { accessLog: 'off' }), { logger: silentLogger() });
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  const port = proxy.addresses()[0].port;
  const before = readBuffersInUse();
  const jobs: Promise<void>[] = [];
  for (let i = 0; i < 60; i++) {
    jobs.push(
      (async () => {
        const c = await connect(port);
        c.on('error', () => {});
        if (i % 4 === 3) {
          c.write(randomBytes(64 * 1024));
          await new Promise((r) => setTimeout(r, 5));
          c.resetAndDestroy();
          return;
        }
        c.resume();
        c.end(randomBytes(i % 2 === 0 ? 512 * 1024 : 10));
        await once(c, 'close');
      })(),
    );
  }
  await Promise.all(jobs);
  await waitFor(() => proxy.activeConnections() === 0, 10_000, 'all connections closed');
  assert.deepEqual(readBuffersInUse(), before);
});

test('bulk transfer both ways through the proxy keeps every byte in order', async (t) => {
  // Many mid-sized writes both ways at once: each direction's reads are written out while the
  // other direction also reads, so a buffer reused too early would show up in the hashes.
  const SIZE = 16 * MiB;
  let backendSide: Promise<StreamResult> | undefined;
  const backend = await startServer((s) => {
    backendSide = exchange(s, SIZE, { chunk: 40_000 });
  });
  const proxy = await startProxy(configFromBackends([`127.0.0.1:${backend.port}`], { accessLog: 'off' }), { logger: silentLogger() });
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  const client = await connect(proxy.addresses()[0].port);
  t.after(() => client.destroy());
  const c = await exchange(client, SIZE, { chunk: 70_000 });
  const b = await backendSide!;
  assert.equal(b.receivedSha, c.sentSha);
  assert.equal(c.receivedSha, b.sentSha);
  assert.equal(c.receivedBytes, SIZE);
});

test('request and response of repeating and changing sizes arrive intact, both ways', async (t) => {
  // Ping-pong, as keep-alive traffic: reads of one size repeat (the relay reuses its view of
  // the read buffer and its write request for them), sizes change in between, and large
  // messages make some writes complete later. Every echo must match what was sent.
  const backend = await startServer((s) => s.pipe(s));
  const proxy = await startProxy(configFromBackends([`127.0.0.1:${backend.port}`], { accessLog: 'off' }), { logger: silentLogger() });
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  const sizes = [100, 100, 100, 1, 100, 16_384, 16_384, 5_000, 100, 300_000, 100, 100, 7];
  const pingPong = async (rounds: number): Promise<number> => {
    const c = await connect(proxy.addresses()[0].port);
    t.after(() => c.destroy());
    let pending: Buffer[] = [];
    let have = 0;
    let want = 0;
    let wake: (() => void) | undefined;
    c.on('data', (d: Buffer) => {
      pending.push(d);
      have += d.length;
      if (have >= want) wake?.();
    });
    let bytes = 0;
    for (let i = 0; i < rounds; i++) {
      const msg = randomBytes(sizes[i % sizes.length]);
      want = msg.length;
      const got = new Promise<void>((r) => (wake = r));
      c.write(msg);
      if (have < want) await got;
      const echoed = Buffer.concat(pending);
      assert.equal(echoed.length, msg.length, `round ${i}: echo length`);
      assert.ok(echoed.equals(msg), `round ${i}: echo content`);
      pending = [];
      have = 0;
      bytes += msg.length;
    }
    c.end();
    await once(c, 'close');
    return bytes;
  };
  const totals = await Promise.all([pingPong(300), pingPong(300), pingPong(300)]);
  assert.deepEqual(totals, [totals[0], totals[0], totals[0]]);
  await waitFor(() => proxy.activeConnections() === 0, 5000, 'connections closed');
});

testFast('raw sockets hold no read buffer between messages: keep-alive connections after their answers hold none', async (t) => {
  // HAProxy's rule (issue 14): a buffer belongs to a connection only while its data waits to
  // be written. Requests and answers shorter than a small buffer go through the shared one.
  const backend = await startServer((s) => s.pipe(s));
  const proxy = await startProxy(configFromBackends([`127.0.0.1:${backend.port}`], { accessLog: 'off' }), { logger: silentLogger() });
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  const before = readBuffersInUse();
  const clients = await Promise.all(
    Array.from({ length: 40 }, async (_, i) => {
      const c = await connect(proxy.addresses()[0].port);
      t.after(() => c.destroy());
      const msg = randomBytes(i % 2 === 0 ? 300 : 5000);
      const echoed = new Promise<Buffer>((resolve) => {
        const parts: Buffer[] = [];
        let have = 0;
        c.on('data', (d: Buffer) => {
          parts.push(d);
          have += d.length;
          if (have >= msg.length) resolve(Buffer.concat(parts));
        });
      });
      c.write(msg);
      assert.ok((await echoed).equals(msg), `connection ${i}: echo content`);
      return c;
    }),
  );
  assert.equal(proxy.activeConnections(), clients.length);
  assert.deepEqual(readBuffersInUse(), before, 'no connection holds a read buffer between messages');
  for (const c of clients) c.end();
  await waitFor(() => proxy.activeConnections() === 0, 5000, 'connections closed');
  assert.deepEqual(readBuffersInUse(), before);
});

testFast('a read whose write waits keeps its own copy: other sockets reading through the shared buffer leave it intact', async (t) => {
  const peers: net.Socket[] = [];
  const server = await startServer((s) => void peers.push(s));
  t.after(() => server.close());
  const before = readBuffersInUse();
  const reads: Array<{ from: RelaySide; buf: Buffer; data: Buffer }> = [];
  let held: RawSocket | undefined;
  // A relay whose write of the first socket's read does not complete (a slow client).
  const core: RelayCore = {
    read(from, n, buf) {
      reads.push({ from, buf, data: Buffer.from(buf.subarray(0, n)) });
      return from !== held;
    },
    writable() {},
    ended() {},
    failed() {},
    closed() {},
  };
  const dial = (): Promise<RawSocket> =>
    new Promise((resolve, reject) => {
      const s = connectRaw('127.0.0.1', server.port, 4, { connected: () => resolve(s), failed: reject })!;
    });
  const a = await dial();
  await waitFor(() => peers.length === 1, 5000, 'first accepted');
  const b = await dial();
  await waitFor(() => peers.length === 2, 5000, 'second accepted');
  held = a;
  for (const s of [a, b]) {
    s.bind(core);
    s.resumeReading();
  }
  peers[0].write(randomBytes(1000));
  await waitFor(() => reads.length === 1, 5000, 'the held read');
  for (let i = 0; i < 5; i++) {
    peers[1].write(randomBytes(1000 + i));
    await waitFor(() => reads.length === 2 + i, 5000, 'a read of the other socket');
  }
  assert.equal(reads[0].from, a);
  assert.ok(reads[0].buf.subarray(0, 1000).equals(reads[0].data), 'the held read is unchanged');
  assert.ok(reads.slice(1).every((r) => r.from === b && r.buf !== reads[0].buf));
  a.destroy();
  b.destroy();
  await waitFor(() => a.destroyed && b.destroyed, 5000, 'closed');
  a.release();
  b.release();
  assert.deepEqual(readBuffersInUse(), before, 'the held copy went back to its pool');
});

test('plain listeners relay on raw sockets, PROXY-protocol listeners on net.Sockets (both only with the fast path on)', async (t) => {
  const backend = await startServer((s) => s.pipe(s));
  const plainCfg = configFromBackends([`127.0.0.1:${backend.port}`], { accessLog: 'off' });
  const proxyCfg = configFromBackends([`127.0.0.1:${backend.port}`], { accessLog: 'off' });
  proxyCfg.listeners[0].acceptProxy = { trusted: ['127.0.0.1/32'] };
  const plain = await startProxy(plainCfg, { logger: silentLogger() });
  const withProxy = await startProxy(proxyCfg, { logger: silentLogger() });
  t.after(async () => {
    await plain.close();
    await withProxy.close();
    await backend.close();
  });
  const echo = async (port: number, preface: string, expected: number) => {
    const before = rawSocketsOpen();
    const c = await connect(port);
    t.after(() => c.destroy());
    const reply = once(c, 'data');
    c.write(`${preface}ping`);
    assert.equal(String((await reply)[0]), 'ping');
    // While relaying: a raw client and/or a raw backend, or none at all with the fast path off.
    assert.equal(rawSocketsOpen() - before, forcedOff ? 0 : expected);
    c.end();
    await once(c, 'close');
  };
  await echo(plain.addresses()[0].port, '', 2);
  await echo(withProxy.addresses()[0].port, 'PROXY TCP4 192.0.2.1 127.0.0.1 5000 80\r\n', 1);
  await waitFor(() => plain.activeConnections() + withProxy.activeConnections() === 0, 5000, 'connections closed');
  await waitFor(() => rawSocketsOpen() === 0, 5000, 'raw sockets closed');
});

test('a raw socket emits to its listeners in order, once-listeners once, removed ones never', () => {
  if (forcedOff) {
    // With the fast path off there are no raw sockets to test; the test still checks that.
    assert.equal(rawSocketsOpen(), 0);
    return;
  }
  // connectRaw to a port nobody listens on gives a socket without connecting anything yet.
  const s = connectRaw('127.0.0.1', 9, 4, { connected() {}, failed() {} })!;
  const calls: string[] = [];
  const a = () => calls.push('a');
  const b = () => calls.push('b');
  const c = () => calls.push('c');
  s.on('x', a).once('x', b).on('x', c);
  s.removeListener('x', c);
  s.emit('x');
  s.emit('x');
  assert.deepEqual(calls, ['a', 'b', 'a']);
  assert.equal(s.listenerCount('x'), 1);
  s.destroy();
});
