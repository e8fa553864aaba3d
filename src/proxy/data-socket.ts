/**
 * @module proxy/data-socket — what the connection path needs from a socket.
 *
 * Two kinds of socket travel the path: a net.Socket (preread and TLS listeners, TLS towards
 * backends, and everything when the fast path is off) and a raw socket (raw-socket.ts: plain
 * TCP on its bare libuv handle). Both are a {@link DataSocket}, and the path (listener,
 * connection, dial, accept queue) is typed against this interface only, so calling a
 * net.Socket method that a raw socket lacks does not compile. A stage that needs a net.Socket
 * (preread, TLS) checks `instanceof net.Socket` first. The relay does not take sockets at all:
 * it drives {@link RelaySide}s (relay-side.ts), which net-side.ts makes from data sockets.
 */

/** The events a data socket emits before the relay takes it. */
export type DataSocketEvent = 'error' | 'close' | 'connect';

/** A client or backend connection as the path before the relay uses it. */
export interface DataSocket {
  /** Undefined once the peer is gone (a reset before accept: getpeername fails). */
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  /** Closed or closing. */
  readonly destroyed: boolean;
  /** Queues bytes before anything relayed (the PROXY header towards a backend). */
  write(data: Buffer): boolean;
  /** Closes now; later errors go to the 'error' listeners, if any. */
  destroy(): this;
  on(event: DataSocketEvent, fn: (...args: any[]) => void): this;
  removeListener(event: DataSocketEvent, fn: (...args: any[]) => void): this;
}
