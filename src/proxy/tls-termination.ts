/**
 * @module proxy/tls-termination — the TLS handshake of a terminating listener: a certificate
 * chosen by SNI, bounded in time, and the server name and protocol it agreed on.
 */
import type net from 'node:net';
import tls from 'node:tls';
import type { CertificateStore } from './tls.js';

/** Hears once how the handshake ended; nothing after {@link TlsTermination.cancel}. */
export interface TlsTerminationOwner {
  /** Done: `t.socket` is paused, with no 'error' listener of this module left. */
  handshakeDone(serverName: string | undefined, alpn: string[]): void;
  /** Failed or timed out: both sockets are destroyed. */
  handshakeFailed(err: Error, timedOut: boolean): void;
}

/** One handshake on an accepted socket. */
export class TlsTermination {
  /** The TLS socket over the accepted one: the client side from now on. */
  readonly socket: tls.TLSSocket;
  readonly #raw: net.Socket;
  readonly #owner: TlsTerminationOwner;
  #timer: NodeJS.Timeout | undefined = undefined;
  #done = false;
  readonly #onError: (err: Error) => void;

  /**
   * Starts the handshake on `raw` (paused), replaying `head` (bytes preread) first. `timeoutMs`
   * bounds it (0: no bound).
   */
  constructor(raw: net.Socket, head: Buffer | undefined, certs: CertificateStore, timeoutMs: number, owner: TlsTerminationOwner) {
    this.#raw = raw;
    this.#owner = owner;
    if (head) raw.unshift(head);
    const t = new tls.TLSSocket(raw, {
      isServer: true,
      secureContext: certs.defaultContext,
      SNICallback: (name, cb) => cb(null, certs.contextFor(name)),
    });
    this.socket = t;
    this.#onError = (err) => this.#fail(err, false);
    if (timeoutMs > 0) this.#timer = setTimeout(() => this.#fail(new Error('handshake timeout'), true), timeoutMs);
    t.on('error', this.#onError);
    t.once('secure', () => this.#secured());
  }

  /** Stops the handshake: both sockets are destroyed, the owner hears nothing. */
  cancel(): void {
    if (this.#end()) this.socket.destroy();
  }

  /** Marks the end; false when it had already ended. */
  #end(): boolean {
    if (this.#done) return false;
    this.#done = true;
    if (this.#timer) clearTimeout(this.#timer);
    return true;
  }

  #fail(err: Error, timedOut: boolean): void {
    if (!this.#end()) return;
    this.socket.destroy();
    this.#raw.destroy();
    this.#owner.handshakeFailed(err, timedOut);
  }

  #secured(): void {
    if (!this.#end()) return;
    const t = this.socket;
    t.removeListener('error', this.#onError);
    t.pause();
    const proto = t.alpnProtocol;
    this.#owner.handshakeDone((t as tls.TLSSocket & { servername?: string | false }).servername || undefined, proto ? [proto] : []);
  }
}
