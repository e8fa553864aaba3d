/**
 * @module test/udp/support — real UDP peers for the UDP tests: an echo server, a client that
 * sends from its own source port, a DNS query codec for raw queries, and a proxy started from
 * YAML that collects its access records. Every helper returns something with close().
 */
import dgram from 'node:dgram';
import { once } from 'node:events';
import { parseConfigText } from '../../src/config/load.js';
import { startProxy, type Proxy } from '../../src/proxy/proxy.js';
import { silentLogger } from '../../src/observability/log.js';
import type { AccessRecord } from '../../src/proxy/connection.js';
import type { UdpAccessRecord } from '../../src/udp/session.js';

export interface UdpEcho {
  port: number;
  /** Datagrams received, by sender `address|port`. */
  received: number;
  /** Source ports of the senders seen (l4lb's session sockets). */
  senders: Set<string>;
  socket: dgram.Socket;
  close(): Promise<void>;
}

/** A UDP echo server on 127.0.0.1:0 (or `port`): each datagram back to its sender, prefixed by `tag` when given. */
export async function udpEcho(tag?: string, port = 0, host = '127.0.0.1'): Promise<UdpEcho> {
  const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const e: UdpEcho = {
    port: 0,
    received: 0,
    senders: new Set(),
    socket,
    close: () => new Promise<void>((r) => socket.close(() => r())),
  };
  socket.on('message', (msg, r) => {
    e.received++;
    e.senders.add(`${r.address}|${r.port}`);
    socket.send(tag === undefined ? msg : Buffer.concat([Buffer.from(tag), msg]), r.port, r.address);
  });
  socket.bind(port, host);
  await once(socket, 'listening');
  e.port = socket.address().port;
  return e;
}

/**
 * A client socket on its own source port that collects what comes back from the ports it
 * sent to. Its socket is not connected, so the kernel hands it any datagram for its port:
 * with a thousand clients a stray one (another process's late reply or probe to a port that
 * was freed and reused) lands on one of them now and then; those go to `strays`.
 */
export class UdpClient {
  readonly socket: dgram.Socket;
  readonly replies: Buffer[] = [];
  /** Datagrams from ports this client never sent to: not replies. */
  readonly strays: Array<{ msg: Buffer; from: string }> = [];
  readonly #sentTo = new Set<number>();
  readonly #host: string;

  private constructor(host: string) {
    this.#host = host;
    this.socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  }
  #waiters: Array<() => void> = [];

  /** A client bound to `host` (any 127.x address works on Linux loopback; `::1` for IPv6). */
  static async open(host = '127.0.0.1'): Promise<UdpClient> {
    const c = new UdpClient(host);
    c.socket.on('message', (m, r) => {
      if (!c.#sentTo.has(r.port)) {
        c.strays.push({ msg: m, from: `${r.address}|${r.port}` });
        return;
      }
      c.replies.push(m);
      for (const w of c.#waiters.splice(0)) w();
    });
    c.socket.on('error', () => {});
    c.socket.bind(0, host);
    await once(c.socket, 'listening');
    return c;
  }

  get port(): number {
    return this.socket.address().port;
  }

  /** Sends to `port` on the loopback address of the client's family. */
  send(port: number, msg: Buffer | string): Promise<void> {
    const to = this.#host.includes(':') ? '::1' : '127.0.0.1';
    this.#sentTo.add(port);
    return new Promise((resolve, reject) => this.socket.send(msg, port, to, (err) => (err ? reject(err) : resolve())));
  }

  /** Waits until `n` replies in all have come, or rejects after `ms`. */
  async waitReplies(n: number, ms = 5_000): Promise<Buffer[]> {
    const deadline = Date.now() + ms;
    while (this.replies.length < n) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${n} replies (got ${this.replies.length})`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return this.replies.slice(0, n);
  }

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }
}

/** A DNS query for the A record of `name`, with `id`. */
export function dnsQuery(name: string, id: number): Buffer {
  const labels = name.split('.').filter((l) => l.length > 0);
  const q = Buffer.concat([
    ...labels.map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l, 'ascii')])),
    Buffer.from([0, 0, 1, 0, 1]), // root, type A, class IN
  ]);
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2); // recursion desired
  h.writeUInt16BE(1, 4); // one question
  return Buffer.concat([h, q]);
}

/** The id and the first A record of a DNS reply. */
export function dnsAnswer(reply: Buffer): { id: number; address: string | undefined } {
  const id = reply.readUInt16BE(0);
  const answers = reply.readUInt16BE(6);
  let i = 12;
  while (reply[i] !== 0) i += reply[i] + 1; // question name
  i += 5; // root, type, class
  for (let n = 0; n < answers; n++) {
    i += (reply[i] & 0xc0) === 0xc0 ? 2 : 0; // compressed name (dnsmasq always points at the question)
    const type = reply.readUInt16BE(i);
    const len = reply.readUInt16BE(i + 8);
    if (type === 1 && len === 4) return { id, address: [...reply.subarray(i + 10, i + 14)].join('.') };
    i += 10 + len;
  }
  return { id, address: undefined };
}

/** YAML for one UDP listener `u` (extra listener lines in `listener`) and one pool `p` of `backends`. */
export function udpConfig(backends: Array<number | { port: number }>, listener = '', pool = ''): string {
  return `
listeners:
  - name: u
    listen: 127.0.0.1:0
    protocol: udp
    pool: p
${listener}
pools:
  - name: p
    backends: [${backends.map((b) => `127.0.0.1:${typeof b === 'number' ? b : b.port}`).join(', ')}]
${pool}
`;
}

/** A running proxy with its access records. */
export interface TestProxy {
  proxy: Proxy;
  /** Port of the first listener. */
  port: number;
  records: Array<AccessRecord & Partial<UdpAccessRecord>>;
  close(): Promise<void>;
}

/** Starts a proxy from YAML text (quiet logs, access log off, records collected). */
export async function proxyFrom(yaml: string): Promise<TestProxy> {
  const config = parseConfigText(yaml, 'udp-test.yaml', {});
  config.log.access = 'off';
  const records: TestProxy['records'] = [];
  const proxy = await startProxy(config, { logger: silentLogger(), onAccess: (r) => records.push(r) });
  return { proxy, port: proxy.addresses()[0].port, records, close: () => proxy.close() };
}

/** Polls `cond` until true, or throws after `ms` naming `what`. */
export async function until(cond: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
