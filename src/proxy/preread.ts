/**
 * @module proxy/preread — read the first bytes of a connection before routing it:
 * a PROXY protocol header (v1 or v2) and/or a TLS ClientHello (for SNI routing).
 *
 * Bounded in size (PROXY ≤ 16 KiB, ClientHello ≤ 16 KiB) and in time (the preread
 * timeout). Only runs for listeners that need it; others never allocate a buffer.
 */
import type net from 'node:net';
import { decodeProxyHeader, type ProxyHeader } from '../protocol/proxy-protocol.js';
import { parseClientHello } from '../protocol/tls-client-hello.js';
import { ProtocolError, ErrorCodes } from '../errors.js';

export interface PrereadResult {
  proxy?: ProxyHeader;
  /** SNI from the ClientHello (lower case), when peeked. */
  serverName?: string;
  alpn?: string[];
  /** Bytes read past the PROXY header: they go to the backend (or TLS) first. */
  head: Buffer;
}

export interface PrereadOptions {
  proxy: boolean;
  clientHello: boolean;
  timeoutMs: number;
}

/** Why a preread ended without a result, in access-log words. */
export type PrereadFailure =
  | { kind: 'protocol'; error: ProtocolError }
  | { kind: 'timeout' }
  | { kind: 'closed' };

/**
 * Reads from `client` (which must be paused) until the configured headers are complete.
 * Calls `cb` once; leaves the socket paused with its 'data' listener removed.
 */
export function preread(
  client: net.Socket,
  opts: PrereadOptions,
  cb: (err: PrereadFailure | null, res: PrereadResult | null) => void,
): () => void {
  let buf: Buffer = Buffer.alloc(0);
  let proxyDone = !opts.proxy;
  let header: ProxyHeader | undefined;
  let offset = 0;
  let done = false;
  const timer = opts.timeoutMs > 0 ? setTimeout(() => finish({ kind: 'timeout' }, null), opts.timeoutMs) : undefined;

  function onData(chunk: Buffer): void {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    try {
      if (!proxyDone) {
        const r = decodeProxyHeader(buf);
        if (r.status === 'incomplete') return;
        header = r.header;
        offset = r.consumed;
        proxyDone = true;
      }
      if (!opts.clientHello) return finish(null, { proxy: header, head: buf.subarray(offset) });
      const rest = buf.subarray(offset);
      if (rest.length === 0) return;
      const h = parseClientHello(rest);
      if (h.status === 'incomplete') return;
      finish(null, { proxy: header, serverName: h.serverName, alpn: h.alpn, head: rest });
    } catch (err) {
      if (err instanceof ProtocolError) return finish({ kind: 'protocol', error: err }, null);
      finish({ kind: 'protocol', error: new ProtocolError(ErrorCodes.PROXY_HEADER, 'internal', String(err)) }, null);
    }
  }
  function onEnd(): void {
    finish({ kind: 'closed' }, null);
  }
  function finish(err: PrereadFailure | null, res: PrereadResult | null): void {
    if (done) return;
    done = true;
    cleanup();
    cb(err, res);
  }
  function cleanup(): void {
    if (timer) clearTimeout(timer);
    client.pause();
    client.removeListener('data', onData);
    client.removeListener('end', onEnd);
  }
  client.on('data', onData);
  client.on('end', onEnd);
  client.resume();
  return () => {
    if (done) return;
    done = true;
    cleanup();
  };
}
