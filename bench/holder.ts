/**
 * @module bench/holder — open many idle client connections through a proxy and keep them.
 *
 * A connection counts as held only when the client side is established, it has not been
 * closed since, and the idle backend behind the proxy holds its other half (checked by count).
 */
import { connect, type Socket } from 'node:net';
import type { Endpoint, IdleBackend } from './servers.js';
import { sleep } from './procs.js';

/** Connection attempts in flight at once; keeps the proxies' accept queues from overflowing. */
const CONNECT_CONCURRENCY = 200;
/** How long one batch of connections may take to show up at the backend. */
const SETTLE_TIMEOUT_MS = 15_000;
const POLL_MS = 50;
/** How long one connection attempt may take. */
const CONNECT_TIMEOUT_MS = 10_000;

/** Outcome of {@link ConnectionHolder.open}. */
export interface OpenResult {
  /** Connections held end to end after this batch (cumulative). */
  held: number;
  /** Failures so far: connect errors, early closes, or halves missing at the backend. */
  errors: number;
  /** Error codes seen, with counts. */
  errorCodes: Record<string, number>;
}

/** Holds client sockets to one proxy address. */
export class ConnectionHolder {
  readonly #target: Endpoint;
  readonly #backend: IdleBackend;
  readonly #sockets = new Set<Socket>();
  #failed = 0;
  #closedEarly = 0;
  #closing = false;
  readonly #errorCodes: Record<string, number> = {};
  /** Backend connections open before this holder started (should be 0). */
  #backendBase = 0;

  constructor(target: Endpoint, backend: IdleBackend) {
    this.#target = target;
    this.#backend = backend;
  }

  /** Reads the backend's open count so later checks count only this holder's connections. */
  async init(): Promise<void> {
    this.#backendBase = (await this.#backend.count()).open;
  }

  /**
   * Opens `count` more connections and waits until they reach the backend (or fail). With
   * `request`, each connection sends it once connected and counts as open when the backend's
   * echo has come back: a keep-alive connection between two requests.
   */
  async open(count: number, request?: Buffer): Promise<OpenResult> {
    let started = 0;
    let done = 0;
    await new Promise<void>((resolve) => {
      const startOne = (): void => {
        started++;
        const s = connect({ host: this.#target.host, port: this.#target.port });
        this.#sockets.add(s);
        let settled = false;
        const settle = (): void => {
          if (settled) return;
          settled = true;
          done++;
          if (started < count) startOne();
          else if (done === count) resolve();
        };
        // A dropped SYN is retried by the kernel for minutes; give up much sooner.
        s.setTimeout(CONNECT_TIMEOUT_MS, () => {
          this.#errorCodes.CONNECT_TIMEOUT = (this.#errorCodes.CONNECT_TIMEOUT ?? 0) + 1;
          s.destroy();
        });
        s.once('connect', () => {
          if (!request) {
            s.setTimeout(0);
            settle();
            return;
          }
          let got = 0;
          const onData = (d: Buffer): void => {
            got += d.length;
            if (got < request.length) return;
            s.off('data', onData);
            s.setTimeout(0);
            settle();
          };
          s.on('data', onData);
          s.write(request);
        });
        s.on('error', (err: NodeJS.ErrnoException) => {
          const code = err.code ?? 'ERROR';
          this.#errorCodes[code] = (this.#errorCodes[code] ?? 0) + 1;
        });
        s.once('close', () => {
          this.#sockets.delete(s);
          if (this.#closing) return;
          if (settled) this.#closedEarly++;
          else this.#failed++;
          settle();
        });
      };
      if (count === 0) resolve();
      for (let i = 0; i < Math.min(count, CONNECT_CONCURRENCY); i++) startOne();
    });
    return this.#settle();
  }

  /** Waits until the backend holds as many connections as the client side does, or times out. */
  async #settle(): Promise<OpenResult> {
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    let atBackend = 0;
    for (;;) {
      atBackend = (await this.#backend.count()).open - this.#backendBase;
      if (atBackend >= this.#sockets.size || Date.now() > deadline) break;
      await sleep(POLL_MS);
    }
    const missing = Math.max(0, this.#sockets.size - atBackend);
    if (missing > 0) this.#errorCodes.MISSING_AT_BACKEND = missing;
    return {
      held: Math.min(this.#sockets.size, atBackend),
      errors: this.#failed + this.#closedEarly + missing,
      errorCodes: { ...this.#errorCodes },
    };
  }

  /** Closes every connection and waits until the backend has seen them go. */
  async closeAll(): Promise<void> {
    this.#closing = true;
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    const deadline = Date.now() + SETTLE_TIMEOUT_MS;
    while ((await this.#backend.count()).open > this.#backendBase && Date.now() < deadline) await sleep(POLL_MS);
  }
}
