/**
 * @module admin/server — the admin HTTP server: JSON API, Prometheus `/metrics`,
 * `/healthz` and `/readyz`, a live event stream and the dashboard.
 *
 * It talks to the proxy only through a {@link StatusSource}, so the same server fronts a
 * single process (admin/proxy-source.ts) and a cluster of workers, whose snapshots the
 * primary adds up (cluster/status-source.ts). See docs/admin.md for the API.
 *
 * Routes:
 *   GET  /                                           dashboard (static, no data in it)
 *   GET  /assets/FILE                                dashboard assets
 *   GET  /healthz                                    200 while the process is alive
 *   GET  /readyz                                     200 ready, 503 with the reasons
 *   GET  /metrics                                    Prometheus text format
 *   GET  /api/v1/status                              listeners, pools, backends, events, rates
 *   GET  /api/v1/events                              SSE: a status+rates snapshot every tick
 *   GET  /api/v1/pools/P                             one pool
 *   GET  /api/v1/pools/P/backends                    its backends; POST adds one
 *   GET  /api/v1/pools/P/backends/B                  one backend; DELETE removes it
 *   POST /api/v1/pools/P/backends/B/drain|enable|disable|remove
 *   POST /api/v1/pools/P/backends/B/weight           {"weight": N}
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import { readdirSync, readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AdminConfig } from '../config/types.js';
import type { Logger } from '../observability/log.js';
import { silentLogger } from '../observability/log.js';
import { MetricsRegistry } from '../observability/metrics.js';
import { formatHostPort } from '../util/address.js';
import type { Proxy } from '../proxy/proxy.js';
import { assertAdminConfigSafe, bearerToken, hostAllowed, originAllowed, tokenMatches } from './auth.js';
import { AdminError } from './errors.js';
import { RateLimitedLog } from '../admission/source-limits.js';
import { DEFAULT_MAX_BODY_BYTES, listenHttp, readJsonBody, sendError, sendJson, sendText } from './http.js';
import { preparePersist, writeFileAtomic } from './persist.js';
import { ProxyStatusSource } from './proxy-source.js';
import { RateTracker } from './rates.js';
import { checkAction, expectNoFields, parseNewBackend, parseWeightBody } from './requests.js';
import { parseAdminTarget } from './route.js';
import { SseHub, DEFAULT_MAX_SSE_CLIENTS } from './sse.js';
import { readiness, type ActionResult, type AdminAction, type StatusSource } from './status.js';

/** Failed-request (500) log lines per interval, for each of authenticated and anonymous requests. */
const FAILURE_LOG_LINES = 10;
/** The interval of {@link FAILURE_LOG_LINES}, ms. */
const FAILURE_LOG_INTERVAL_MS = 10_000;
/** Longest request target quoted in a log line. */
const MAX_LOGGED_TARGET = 200;

/** Interval of the status tick that feeds rates and the event stream, ms. */
export const DEFAULT_TICK_MS = 1000;

/** Where the dashboard's files live: src/admin/assets, shipped in the package. */
export const ASSETS_DIR = fileURLToPath(new URL('../../../src/admin/assets/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
};

/** The dashboard runs only our own files and talks only to us. */
const DASHBOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/** Options of {@link startAdminServer}. */
export interface AdminServerOptions {
  host: string;
  port: number;
  /** Bearer token; required off loopback. */
  token?: string;
  /** Write changes back to `configFile`. Default false. */
  persist?: boolean;
  /** The config file the proxy was started from (persistence needs one). */
  configFile?: string;
  logger?: Logger;
  /** Status tick (rates, event stream), ms. Default {@link DEFAULT_TICK_MS}. */
  tickMs?: number;
  /** Request body cap, bytes. Default 64 KiB. */
  maxBodyBytes?: number;
  /** Concurrent event streams. Default 32. */
  maxEventStreams?: number;
}

type Asset = { body: Buffer; type: string };

/** A running admin server. */
export class AdminServer {
  readonly source: StatusSource;
  readonly metrics: MetricsRegistry;
  readonly rates = new RateTracker();
  readonly server: http.Server;
  readonly #opts: Required<Pick<AdminServerOptions, 'tickMs' | 'maxBodyBytes'>> & AdminServerOptions;
  readonly #log: Logger;
  readonly #sse: SseHub;
  readonly #assets = new Map<string, Asset>();
  /** Requests that showed the right token (only their failures are logged at error level). */
  readonly #authenticated = new WeakSet<IncomingMessage>();
  readonly #failureLog = new RateLimitedLog({ perInterval: FAILURE_LOG_LINES, intervalMs: FAILURE_LOG_INTERVAL_MS });
  #ticker: NodeJS.Timeout | undefined;
  #ticking = false;
  /** Actions run one at a time: persistence reads, edits and writes one file. */
  #actions: Promise<unknown> = Promise.resolve();
  #address: { host: string; port: number } | undefined;
  #onClose: (() => void | Promise<void>) | undefined;

  constructor(source: StatusSource, options: AdminServerOptions) {
    this.source = source;
    this.#opts = { ...options, tickMs: options.tickMs ?? DEFAULT_TICK_MS, maxBodyBytes: options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES };
    this.#log = options.logger ?? silentLogger();
    this.#sse = new SseHub(options.maxEventStreams ?? DEFAULT_MAX_SSE_CLIENTS);
    this.metrics = new MetricsRegistry(() => source.status());
    this.#loadAssets();
    this.server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => this.#fail(req, res, err));
    });
    // Slow or idle clients must not pin sockets forever (event streams are exempt below).
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.server.keepAliveTimeout = 5_000;
  }

  /** Binds the server. Refuses (before binding) an address off loopback without a token. */
  async listen(): Promise<void> {
    const { host, port, token } = this.#opts;
    assertAdminConfigSafe({ host, port, token, persist: false });
    this.#address = await listenHttp(this.server, host, port, 'the admin API');
    this.#tick();
    this.#ticker = setInterval(() => this.#tick(), this.#opts.tickMs);
    this.#ticker.unref();
    this.#log.info({ admin: this.url }, 'admin server listening');
  }

  /** The bound address. */
  get address(): { host: string; port: number } {
    if (!this.#address) throw new Error('admin server is not listening');
    return this.#address;
  }

  /** `http://HOST:PORT` (IPv6 in brackets). */
  get url(): string {
    return `http://${formatHostPort(this.address.host, this.address.port)}`;
  }

  /** Runs `fn` when the server closes (e.g. to release the status source). */
  onClose(fn: () => void | Promise<void>): void {
    this.#onClose = fn;
  }

  /** Stops the tick, ends event streams, closes every connection and the listening socket. */
  async close(): Promise<void> {
    if (this.#ticker) clearInterval(this.#ticker);
    this.#ticker = undefined;
    this.#sse.closeAll();
    await new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    await this.#onClose?.();
  }

  // --- the tick ---

  #tick(): void {
    if (this.#ticking) return; // a slow source: skip rather than pile up
    this.#ticking = true;
    this.source
      .status()
      .then((status) => {
        const rates = this.rates.update(status);
        this.#sse.broadcast({ status, rates, ready: readiness(status) });
      })
      .catch((err: unknown) => this.#log.error({ err: (err as Error).message }, 'admin status tick failed'))
      .finally(() => (this.#ticking = false));
  }

  // --- assets ---

  #loadAssets(): void {
    let names: string[];
    try {
      names = readdirSync(ASSETS_DIR);
    } catch {
      this.#log.warn({ dir: ASSETS_DIR }, 'dashboard assets not found; / will answer 404');
      return;
    }
    for (const name of names) {
      const type = CONTENT_TYPES[extname(name)];
      if (type) this.#assets.set(name, { body: readFileSync(`${ASSETS_DIR}/${name}`), type });
    }
  }

  #sendAsset(res: ServerResponse, name: string): void {
    const a = this.#assets.get(name);
    if (!a) return sendError(res, 404, 'not_found', `no asset named "${name}"`);
    const headers: Record<string, string | number> = {
      'content-type': a.type,
      'content-length': a.body.length,
      'cache-control': 'no-cache',
      'x-content-type-options': 'nosniff',
    };
    if (a.type.startsWith('text/html')) {
      headers['content-security-policy'] = DASHBOARD_CSP;
      headers['x-frame-options'] = 'DENY';
      headers['referrer-policy'] = 'no-referrer';
    }
    res.writeHead(200, headers);
    res.end(a.body);
  }

  // --- requests ---

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { path, query, route } = parseAdminTarget(req.url ?? '/');
    const method = req.method ?? 'GET';
    const { token } = this.#opts;

    if (!token && !hostAllowed(req.headers.host, this.#opts.host)) {
      return sendError(res, 403, 'forbidden_host', 'the Host header must name a loopback address (set admin.token to serve other names)');
    }

    // The dashboard's files carry no data: they load without a token, then ask for one.
    if (route.kind === 'asset') {
      if (method !== 'GET' && method !== 'HEAD') return methodNotAllowed(res, ['GET', 'HEAD']);
      return this.#sendAsset(res, route.name);
    }

    if (token) {
      let given = bearerToken(req.headers.authorization);
      // EventSource cannot set headers: the event stream alone takes the token in the query.
      if (given === undefined && route.kind === 'events') given = query.get('token') ?? undefined;
      if (given === undefined || !tokenMatches(given, token)) {
        return sendError(res, 401, 'unauthorized', 'this admin server needs "Authorization: Bearer TOKEN"', {
          'www-authenticate': 'Bearer realm="l4lb"',
        });
      }
      this.#authenticated.add(req);
    }

    const mutating = method !== 'GET' && method !== 'HEAD';
    if (mutating && !originAllowed(req.headers.origin, req.headers.host)) {
      return sendError(res, 403, 'forbidden_origin', `requests from origin ${req.headers.origin} may not change anything`);
    }

    switch (route.kind) {
      case 'healthz':
        if (mutating) return methodNotAllowed(res, ['GET', 'HEAD']);
        return sendJson(res, 200, { status: 'ok' });
      case 'readyz': {
        if (mutating) return methodNotAllowed(res, ['GET', 'HEAD']);
        const r = readiness(await this.source.status());
        return sendJson(res, r.ready ? 200 : 503, r);
      }
      case 'metrics': {
        if (mutating) return methodNotAllowed(res, ['GET', 'HEAD']);
        return sendText(res, 200, await this.metrics.render(), this.metrics.contentType);
      }
      case 'status': {
        if (mutating) return methodNotAllowed(res, ['GET', 'HEAD']);
        const status = await this.source.status();
        return sendJson(res, 200, { ...status, ready: readiness(status), rates: this.rates.latest() ?? null });
      }
      case 'events': {
        if (mutating) return methodNotAllowed(res, ['GET', 'HEAD']);
        if (this.#sse.full) return sendError(res, 503, 'too_many_streams', `at most ${this.#sse.maxClients} event streams at once`);
        const status = await this.source.status();
        // A stream lives as long as the page: no request timeout for it.
        req.socket.setTimeout(0);
        this.#sse.open(req, res, { status, rates: this.rates.latest() ?? null, ready: readiness(status), history: this.rates.history() });
        return;
      }
      case 'pool':
        return this.#poolRoute(req, res, method, route.parts);
      case 'not-found':
        return sendError(res, 404, 'not_found', `no such endpoint: ${method} ${path}`);
    }
  }

  /** `/api/v1/pools/...`: `parts` is what follows `pools/`, decoded. */
  async #poolRoute(req: IncomingMessage, res: ServerResponse, method: string, parts: string[]): Promise<void> {
    const read = method === 'GET' || method === 'HEAD';
    const [pool, sub, backend, verb, ...rest] = parts;
    if (pool === '' || rest.length > 0 || (sub !== undefined && sub !== 'backends') || backend === '' || verb === '') {
      return sendError(res, 404, 'not_found', `no such endpoint: ${method} ${req.url}`);
    }
    // GET /pools/P, GET /pools/P/backends
    if (backend === undefined) {
      if (sub === 'backends' && method === 'POST') {
        const body = await readJsonBody(req, this.#opts.maxBodyBytes);
        return this.#act(res, { kind: 'add-backend', pool, backend: parseNewBackend(body) }, 201);
      }
      if (!read) return methodNotAllowed(res, sub === 'backends' ? ['GET', 'HEAD', 'POST'] : ['GET', 'HEAD']);
      const s = await this.source.status();
      const p = s.pools.find((x) => x.name === pool);
      if (!p) return sendError(res, 404, 'unknown_pool', `no pool named "${pool}"`);
      return sendJson(res, 200, sub === 'backends' ? p.backends : p);
    }
    // /pools/P/backends/B
    if (verb === undefined) {
      if (method === 'DELETE') {
        expectNoFields(await readJsonBody(req, this.#opts.maxBodyBytes), 'remove');
        return this.#act(res, { kind: 'remove-backend', pool, backend });
      }
      if (!read) return methodNotAllowed(res, ['GET', 'HEAD', 'DELETE']);
      const s = await this.source.status();
      const p = s.pools.find((x) => x.name === pool);
      if (!p) return sendError(res, 404, 'unknown_pool', `no pool named "${pool}"`);
      const b = p.backends.find((x) => x.name === backend);
      if (!b) return sendError(res, 404, 'unknown_backend', `no backend named "${backend}" in pool "${pool}"`);
      return sendJson(res, 200, b);
    }
    // /pools/P/backends/B/VERB
    const states = { drain: 'draining', enable: 'enabled', disable: 'disabled' } as const;
    if (!(verb in states) && verb !== 'weight' && verb !== 'remove') {
      return sendError(res, 404, 'not_found', `unknown action "${verb}" (drain, enable, disable, weight, remove)`);
    }
    if (method !== 'POST') return methodNotAllowed(res, ['POST']);
    const body = await readJsonBody(req, this.#opts.maxBodyBytes);
    if (verb === 'weight') return this.#act(res, { kind: 'set-weight', pool, backend, weight: parseWeightBody(body) });
    expectNoFields(body, verb);
    if (verb === 'remove') return this.#act(res, { kind: 'remove-backend', pool, backend });
    return this.#act(res, { kind: 'set-state', pool, backend, state: states[verb as keyof typeof states] });
  }

  /** Checks, persists (when asked) and applies one action, one at a time. */
  async #act(res: ServerResponse, action: AdminAction, okStatus = 200): Promise<void> {
    const run = async (): Promise<ActionResult & { persist?: { ok: boolean; file: string; error?: string } }> => {
      checkAction(await this.source.status(), action);
      const { persist, configFile } = this.#opts;
      const text = persist && configFile ? await preparePersist(configFile, action) : undefined;
      const result: ActionResult & { persist?: { ok: boolean; file: string; error?: string } } = await this.source.act(action);
      if (text !== undefined && configFile) {
        try {
          await writeFileAtomic(configFile, text);
          result.persist = { ok: true, file: configFile };
        } catch (err) {
          // Applied but not saved: say so rather than pretend the action failed.
          const error = (err as Error).message;
          this.#log.error({ file: configFile, err: error }, 'admin change applied but not written to the config file');
          result.persist = { ok: false, file: configFile, error };
        }
      }
      return result;
    };
    const p = this.#actions.then(run);
    this.#actions = p.catch(() => undefined);
    const who = action.kind === 'add-backend' ? action.backend.name : action.backend;
    try {
      const result = await p;
      this.metrics.countAdminAction(action.kind, okStatus);
      this.#log.info({ action: action.kind, pool: action.pool, backend: who, persisted: result.persist?.ok }, 'admin action applied');
      sendJson(res, okStatus, result);
    } catch (err) {
      this.metrics.countAdminAction(action.kind, err instanceof AdminError ? err.status : 500);
      throw err;
    }
  }

  /**
   * Answers a request that failed. An unexpected failure (500) is logged, rate-limited, and at
   * error level only for a request that showed the token: anybody who can reach the port
   * must not be able to fill the log, or page an operator, by sending requests.
   */
  #fail(req: IncomingMessage, res: ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    if (err instanceof AdminError && err.status >= 400) {
      // The client may still be sending an oversized body: close after answering.
      const headers: Record<string, string> = err.reason === 'body_too_large' ? { connection: 'close' } : {};
      return sendError(res, err.status, err.reason, err.message, headers);
    }
    const authenticated = this.#authenticated.has(req);
    const r = this.#failureLog.take(authenticated ? 'authenticated' : 'anonymous');
    if (r) {
      const fields = {
        err: (err as Error)?.message,
        method: req.method,
        target: (req.url ?? '').slice(0, MAX_LOGGED_TARGET),
        authenticated,
        suppressed: r.suppressed || undefined,
      };
      if (authenticated) this.#log.error(fields, 'admin request failed');
      else this.#log.warn(fields, 'admin request failed');
    }
    sendError(res, 500, 'internal', 'internal error; see the l4lb log');
  }
}

function methodNotAllowed(res: ServerResponse, allow: string[]): void {
  sendError(res, 405, 'method_not_allowed', `use ${allow.filter((m) => m !== 'HEAD').join(' or ')}`, { allow: allow.join(', ') });
}

/** Creates and binds an admin server for `source`. */
export async function startAdminServer(source: StatusSource, options: AdminServerOptions): Promise<AdminServer> {
  const s = new AdminServer(source, options);
  await s.listen();
  return s;
}

/**
 * Starts the admin server of a single-process proxy from its `admin` config: the status
 * source is created here and released when the server closes. Persistence applies only
 * when the proxy was started from a file (`config.file`).
 */
export async function startProxyAdmin(proxy: Proxy, admin: AdminConfig, options: Partial<AdminServerOptions> = {}): Promise<AdminServer> {
  assertAdminConfigSafe(admin);
  const source = new ProxyStatusSource(proxy);
  const server = new AdminServer(source, {
    host: admin.host,
    port: admin.port,
    token: admin.token,
    persist: admin.persist,
    configFile: proxy.config.file,
    logger: proxy.logger,
    ...options,
  });
  server.onClose(() => source.close());
  try {
    await server.listen();
  } catch (err) {
    source.close();
    throw err;
  }
  return server;
}
