/**
 * @module admin/http — small HTTP helpers for the admin server: JSON answers, errors,
 * and a bounded JSON body reader.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { formatHostPort } from '../util/address.js';
import { AdminError } from './errors.js';

/** Largest request body accepted, in bytes. */
export const DEFAULT_MAX_BODY_BYTES = 64 * 1024;

/**
 * Beyond the cap we keep reading (and dropping) so that the client, still sending, gets
 * our 400 instead of a reset; past this many times the cap we stop listening.
 */
const DISCARD_FACTOR = 16;

/** Headers every admin answer carries. */
const COMMON_HEADERS = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
} as const;

/** Sends `body` as JSON. */
export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, {
    ...COMMON_HEADERS,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  res.end(text);
}

/** Sends plain text. */
export function sendText(res: ServerResponse, status: number, text: string, contentType = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { ...COMMON_HEADERS, 'content-type': contentType, 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/** Sends an error as `{ "error": reason, "message": text }`. */
export function sendError(res: ServerResponse, status: number, reason: string, message: string, headers: Record<string, string> = {}): void {
  sendJson(res, status, { error: reason, message }, headers);
}

/**
 * Reads the request body and parses it as JSON. An empty body gives `undefined`.
 * Throws a 400 {@link AdminError} when it is larger than `maxBytes` or not JSON.
 */
export function readJsonBody(req: IncomingMessage, maxBytes = DEFAULT_MAX_BODY_BYTES): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        tooLarge = true;
        chunks.length = 0;
        if (size > maxBytes * DISCARD_FACTOR) {
          req.removeAllListeners('data');
          req.pause();
          finish();
        }
        return;
      }
      chunks.push(c);
    });
    req.on('end', finish);
    req.on('error', (err) => reject(new AdminError(400, 'bad_body', `reading the body failed: ${err.message}`)));
    let done = false;
    function finish(): void {
      if (done) return;
      done = true;
      if (tooLarge) {
        reject(new AdminError(400, 'body_too_large', `the body is larger than ${maxBytes} bytes`));
        return;
      }
      try {
        resolve(parseJsonBody(Buffer.concat(chunks)));
      } catch (err) {
        reject(err);
      }
    }
  });
}

/**
 * Parses a whole request body as JSON: blank gives `undefined`, anything else must be JSON
 * (a 400 {@link AdminError} `bad_json` when it is not).
 */
export function parseJsonBody(body: Buffer): unknown {
  const text = body.toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new AdminError(400, 'bad_json', `the body is not valid JSON: ${(err as Error).message}`);
  }
}

/**
 * Binds an HTTP server (the admin server, the fault API) and resolves with its address; a bind
 * failure is an {@link AdminError} (`listen`) naming `what` and the address.
 */
export function listenHttp(server: Server, host: string, port: number, what: string): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      const why = err.code === 'EADDRINUSE' ? 'address already in use' : err.message;
      reject(new AdminError(0, 'listen', `cannot serve ${what} on ${formatHostPort(host || '0.0.0.0', port)}: ${why}`, 'internal', { cause: err }));
    };
    server.once('error', onError);
    server.listen({ host: host || undefined, port }, () => {
      server.removeListener('error', onError);
      const a = server.address() as AddressInfo;
      resolve({ host: a.address, port: a.port });
    });
  });
}
