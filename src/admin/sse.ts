/**
 * @module admin/sse — Server-Sent Events: the dashboard's live feed.
 *
 * One shared tick produces one payload that is written to every client. A client that
 * cannot keep up (its socket buffer is full) skips frames until it drains rather than
 * making us buffer for it: the next frame is a full snapshot anyway.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

/** Concurrent event streams allowed by default. */
export const DEFAULT_MAX_SSE_CLIENTS = 32;

/** How long a browser waits before reconnecting a dropped stream, ms. */
const RETRY_MS = 2000;

interface Client {
  res: ServerResponse;
  blocked: boolean;
}

/** The set of connected event-stream clients. */
export class SseHub {
  readonly maxClients: number;
  readonly #clients = new Set<Client>();

  constructor(maxClients = DEFAULT_MAX_SSE_CLIENTS) {
    this.maxClients = maxClients;
  }

  get size(): number {
    return this.#clients.size;
  }

  /** True when one more client would exceed the cap. */
  get full(): boolean {
    return this.#clients.size >= this.maxClients;
  }

  /** Starts an event stream on `res` and sends `first` (event `snapshot`) at once. */
  open(req: IncomingMessage, res: ServerResponse, first: unknown): void {
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      connection: 'keep-alive',
      // Tell buffering reverse proxies (nginx) to pass events through at once.
      'x-accel-buffering': 'no',
    });
    res.socket?.setNoDelay(true);
    const client: Client = { res, blocked: false };
    this.#clients.add(client);
    const drop = () => this.#clients.delete(client);
    req.on('close', drop);
    res.on('close', drop);
    res.on('drain', () => (client.blocked = false));
    res.write(`retry: ${RETRY_MS}\n\n`);
    this.#send(client, frame('snapshot', first));
  }

  /** Sends `data` as event `snapshot` to every client. */
  broadcast(data: unknown): void {
    if (this.#clients.size === 0) return;
    const f = frame('snapshot', data);
    for (const c of this.#clients) this.#send(c, f);
  }

  #send(c: Client, f: string): void {
    if (c.blocked) return;
    if (!c.res.write(f)) c.blocked = true;
  }

  /** Ends every stream. */
  closeAll(): void {
    for (const c of this.#clients) c.res.end();
    this.#clients.clear();
  }
}

/** One SSE frame; JSON has no raw newlines, so one `data:` line suffices. */
function frame(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}
