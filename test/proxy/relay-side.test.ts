/**
 * The relay's plug point (src/proxy/relay-side.ts): a decorator that implements RelaySide
 * towards the relay and RelayCore towards the side it wraps sees every byte both ways, and the
 * relay works through it unchanged: bytes intact, half-close passed on, one relayDone.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { createHash, randomBytes } from 'node:crypto';
import { relay, type RelayResult } from '../../src/proxy/relay.js';
import { relaySideOf } from '../../src/proxy/net-side.js';
import { connectRaw } from '../../src/proxy/raw-socket.js';
import { fastPathStatus } from '../../src/proxy/node-internals.js';
import type { RelayCore, RelaySide } from '../../src/proxy/relay-side.js';
import type { DataSocket } from '../../src/proxy/data-socket.js';
import { echoServer, waitFor } from '../support/net.js';

const MiB = 1024 * 1024;
const NO_TIMEOUTS = { idleMs: 0, clientFinMs: 0, serverFinMs: 0, maxLifetimeMs: 0 };

/** A pass-through decorator that counts what goes each way. */
class CountingSide implements RelaySide, RelayCore {
  readonly #inner: RelaySide;
  #relay: RelayCore | undefined;
  /** Bytes read from the wrapped side (towards the relay) and sent to it (from the relay). */
  readBytes = 0;
  sentBytes = 0;
  sawFin = false;

  constructor(inner: RelaySide) {
    this.#inner = inner;
  }

  // --- RelaySide, towards the relay ---
  bind(relay: RelayCore): void {
    this.#relay = relay;
    this.#inner.bind(this);
  }
  resumeReading(): void {
    this.#inner.resumeReading();
  }
  send(buf: Buffer, n: number, owned: boolean): boolean {
    this.sentBytes += n;
    return this.#inner.send(buf, n, owned);
  }
  end(): void {
    this.#inner.end();
  }
  destroy(): void {
    this.#inner.destroy();
  }
  get destroyed(): boolean {
    return this.#inner.destroyed;
  }
  get readEnded(): boolean {
    return this.#inner.readEnded;
  }
  get writeEnded(): boolean {
    return this.#inner.writeEnded;
  }
  release(): void {
    this.#inner.release();
  }

  // --- RelayCore, towards the wrapped side: passed on with this decorator as the side ---
  read(_from: RelaySide, n: number, buf: Buffer, owned: boolean): boolean {
    this.readBytes += n;
    return this.#relay!.read(this, n, buf, owned);
  }
  writable(): void {
    this.#relay!.writable(this);
  }
  ended(): void {
    this.sawFin = true;
    this.#relay!.ended(this);
  }
  failed(_side: RelaySide, err: NodeJS.ErrnoException): void {
    this.#relay!.failed(this, err);
  }
  closed(): void {
    this.#relay!.closed(this);
  }
}

/** A backend socket: a raw one when the fast path is on, else a net.Socket. */
async function dialBackend(port: number): Promise<DataSocket> {
  if (fastPathStatus().enabled) {
    return new Promise((resolve, reject) => {
      const s = connectRaw('127.0.0.1', port, 4, { connected: () => resolve(s), failed: reject })!;
    });
  }
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(s, 'connect');
  return s;
}

test('a decorator around the client side sees every byte both ways and the relay works through it unchanged', async (t) => {
  const backend = await echoServer();
  let done: RelayResult | undefined;
  let decorator: CountingSide | undefined;
  const front = net.createServer({ allowHalfOpen: true, pauseOnConnect: true }, (accepted) => {
    void dialBackend(backend.port).then((b) => {
      decorator = new CountingSide(relaySideOf(accepted));
      relay(decorator, relaySideOf(b), NO_TIMEOUTS, { relayDone: (r) => (done = r) });
    });
  });
  front.listen(0, '127.0.0.1');
  await once(front, 'listening');
  t.after(async () => {
    await new Promise((r) => front.close(r));
    await backend.close();
  });

  const c = net.connect({ port: (front.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  await once(c, 'connect');
  const payload = randomBytes(4 * MiB);
  const got = createHash('sha256');
  let received = 0;
  c.on('data', (b: Buffer) => {
    received += b.length;
    got.update(b);
  });
  const ended = once(c, 'end');
  c.end(payload);
  await ended; // the echo's FIN, passed on after the client's FIN went through the decorator
  c.destroy();

  assert.equal(received, payload.length);
  assert.equal(got.digest('hex'), createHash('sha256').update(payload).digest('hex'), 'echo intact');
  await waitFor(() => done !== undefined, 5000, 'relayDone');
  assert.equal(decorator!.readBytes, payload.length, 'client → backend went through the decorator');
  assert.equal(decorator!.sentBytes, payload.length, 'backend → client went through the decorator');
  assert.equal(decorator!.sawFin, true, "the client's FIN went through the decorator");
  assert.equal(done!.bytesUp, payload.length);
  assert.equal(done!.bytesDown, payload.length);
  assert.equal(done!.reason, 'client_closed');
});
