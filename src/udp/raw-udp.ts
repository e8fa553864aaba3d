/**
 * @module udp/raw-udp — UDP sockets without dgram.Socket's work per datagram: the libuv handle
 * underneath (proxy/node-internals.ts), with dgram.Socket as the fallback.
 *
 * Per datagram, dgram.Socket emits `message` with an `rinfo` it extends, and `send` normalises
 * its arguments, looks the address up (a callback even for an IP), builds a one-element list
 * and a request object. Here a listener's datagrams go from the handle's `onmessage` straight
 * to the listener, and sends call the handle with one reused request (`send` reports a
 * datagram sent at once by returning its size plus one; only a send the kernel queued keeps its
 * request, which is then replaced). A session's backend socket (and per-datagram mode's one
 * per backend) is a bare handle, bound and connected synchronously, so it is ready at once: no
 * `connect` event, no held datagrams.
 *
 * The fallback (no internals, `L4LB_FAST_PATH=0`, or a backend named by host name, which
 * needs a lookup) is dgram.Socket, connected asynchronously: datagrams sent before it is
 * connected wait in the session (session.ts, `pending_full`).
 */
import dgram from 'node:dgram';
import { lookup as dnsLookup } from 'node:dns';
import { isIP } from 'node:net';
import { getSystemErrorName } from 'node:util';
import { dgramHandle, udpInternals, type UdpBindings, type UdpHandle, type UdpRemote } from '../proxy/node-internals.js';

/**
 * dgram's `lookup` for addresses that are IP literals: answers at once. Node's default goes
 * through `dns.lookup`, which for an IP answers on the next tick — a closure and a tick for
 * every reply sent to a client and two for every session socket (bind, connect). Names still
 * go to `dns.lookup`.
 */
export function ipLookup(address: string, family: number, callback: (err: Error | null, address: string, family: number) => void): void {
  const f = isIP(address);
  if (f !== 0) callback(null, address, f);
  else dnsLookup(address, family, callback);
}

/** What a backend socket reports to its session. */
export interface BackendPeer {
  /** The socket is connected: it sends from now on (the fallback only; raw sockets are at once). */
  connected(): void;
  /** One datagram from the backend. */
  received(msg: Buffer): void;
  /** A socket error; `code` ECONNREFUSED is an ICMP port-unreachable from the backend. */
  failed(code: string, message: string): void;
}

/** A socket connected to one backend. */
export interface BackendSocket {
  /** True once `send` sends (raw sockets: from the start). */
  readonly ready: boolean;
  /** A bare libuv handle (true) or a dgram.Socket (false). */
  readonly raw: boolean;
  send(msg: Buffer): void;
  close(): void;
}

/** Sends through handles with one request object, replaced only when a send is queued. */
class HandleSender {
  readonly #k: UdpBindings<unknown>;
  #req: { buffer?: Uint8Array };
  readonly #list: Uint8Array[] = [Buffer.alloc(0)];

  constructor(k: UdpBindings<unknown>) {
    this.#k = k;
    this.#req = new k.SendWrap();
  }

  /** To the handle's peer (connected). Returns < 0 on an error. */
  send(h: UdpHandle<unknown>, six: boolean, msg: Buffer): number {
    this.#list[0] = msg;
    const r = six ? h.send6(this.#req, this.#list, 1, false) : h.send(this.#req, this.#list, 1, false);
    if (r === 0) this.#queued(msg);
    return r;
  }

  /** To `address:port` from an unconnected handle (dgram's, whose `send` fits its family). Returns < 0 on an error. */
  sendTo(h: UdpHandle<unknown>, msg: Buffer, port: number, address: string): number {
    this.#list[0] = msg;
    const r = h.send(this.#req, this.#list, 1, port, address, false);
    if (r === 0) this.#queued(msg);
    return r;
  }

  /** The kernel queued the send: the request (and the datagram, kept on it) live until it is done. */
  #queued(msg: Buffer): void {
    this.#req.buffer = msg;
    this.#req = new this.#k.SendWrap();
  }
}

let sender: HandleSender | undefined;

function handleSender(k: UdpBindings<unknown>): HandleSender {
  return (sender ??= new HandleSender(k));
}

function errorName(nread: number): string {
  try {
    return getSystemErrorName(nread);
  } catch {
    return `E${-nread}`;
  }
}

/** `onmessage` of a raw backend socket: `this` is the handle, `owner` its session. */
function onBackendMessage(this: UdpHandle<BackendPeer>, nread: number, _h: unknown, buf?: Buffer): void {
  const peer = this.owner;
  if (peer === undefined) return;
  if (nread < 0) {
    const code = errorName(nread);
    peer.failed(code, `recvmsg ${code}`);
  } else if (buf !== undefined) {
    peer.received(buf);
  }
}

class RawBackendSocket implements BackendSocket {
  readonly ready = true;
  readonly raw = true;
  readonly #h: UdpHandle<BackendPeer>;
  readonly #six: boolean;
  readonly #sender: HandleSender;
  readonly #peer: BackendPeer;

  constructor(h: UdpHandle<BackendPeer>, six: boolean, sender: HandleSender, peer: BackendPeer) {
    this.#h = h;
    this.#six = six;
    this.#sender = sender;
    this.#peer = peer;
  }

  send(msg: Buffer): void {
    const r = this.#sender.send(this.#h as UdpHandle<unknown>, this.#six, msg);
    // dgram.Socket drops a failed send without a callback silently; a session learns of it.
    if (r < 0) this.#peer.failed(errorName(r), `send ${errorName(r)}`);
  }

  close(): void {
    this.#h.owner = undefined;
    this.#h.close();
  }
}

class DgramBackendSocket implements BackendSocket {
  ready = false;
  readonly raw = false;
  readonly #socket: dgram.Socket;

  constructor(six: boolean, host: string, port: number, peer: BackendPeer) {
    const socket = dgram.createSocket({ type: six ? 'udp6' : 'udp4', lookup: ipLookup } as dgram.SocketOptions);
    this.#socket = socket;
    socket.on('message', (msg) => peer.received(msg));
    socket.on('error', (err: NodeJS.ErrnoException) => peer.failed(err.code ?? 'error', err.message));
    socket.connect(port, host, () => {
      this.ready = true;
      peer.connected();
    });
  }

  send(msg: Buffer): void {
    this.#socket.send(msg);
  }

  close(): void {
    try {
      this.#socket.close();
    } catch {
      // Already closed by a failed connect.
    }
  }
}

/**
 * A socket connected to `host:port` for one session: a bare handle when the internals are
 * there and `host` is an IP (ready at once), else a dgram.Socket (ready at `peer.connected()`).
 */
export function connectBackend(family: 0 | 4 | 6, host: string, port: number, peer: BackendPeer): BackendSocket {
  const six = family === 6;
  const k = udpInternals<BackendPeer>();
  if (k !== undefined && family !== 0) {
    const h = new k.UDP();
    let err = six ? h.bind6('::', 0, 0) : h.bind('0.0.0.0', 0, 0);
    if (err === 0) err = six ? h.connect6(host, port) : h.connect(host, port);
    if (err === 0) {
      h.owner = peer;
      h.onmessage = onBackendMessage;
      err = h.recvStart();
    }
    if (err === 0) return new RawBackendSocket(h, six, handleSender(k as UdpBindings<unknown>), peer);
    h.owner = undefined;
    h.close();
    // dgram.Socket meets the same error and reports it as it does.
  }
  return new DgramBackendSocket(six, host, port, peer);
}

/**
 * A listener's bound socket, read and written without dgram.Socket's work per datagram when
 * the internals are there (see the module comment); through `message` and `send` otherwise.
 */
export class ListenerSocket {
  readonly #socket: dgram.Socket;
  readonly #h: UdpHandle<unknown> | undefined;
  readonly #sender: HandleSender | undefined;

  /** `socket` must be bound. Errors reading it still reach its 'error' listeners. */
  constructor(socket: dgram.Socket, onDatagram: (msg: Buffer, address: string, port: number) => void) {
    this.#socket = socket;
    const k = udpInternals();
    const h = dgramHandle(socket);
    const original = h?.onmessage;
    if (k === undefined || h === undefined || typeof original !== 'function') {
      socket.on('message', (msg, rinfo) => onDatagram(msg, rinfo.address, rinfo.port));
      return;
    }
    this.#h = h;
    this.#sender = handleSender(k);
    h.onmessage = function onmessage(this: UdpHandle<unknown>, nread: number, handle: UdpHandle<unknown>, buf?: Buffer, rinfo?: UdpRemote): void {
      if (nread < 0 || buf === undefined || rinfo === undefined) return original.call(this, nread, handle, buf, rinfo);
      onDatagram(buf, rinfo.address, rinfo.port);
    };
  }

  /** Whether datagrams bypass dgram.Socket. */
  get raw(): boolean {
    return this.#h !== undefined;
  }

  /** Sends `msg` to `address:port` (an IP); false when the send failed at once. */
  sendTo(msg: Buffer, port: number, address: string): boolean {
    if (this.#h === undefined) {
      this.#socket.send(msg, port, address);
      return true;
    }
    return this.#sender!.sendTo(this.#h, msg, port, address) >= 0;
  }
}
