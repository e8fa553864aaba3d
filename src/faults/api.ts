/**
 * @module faults/api — a Toxiproxy-compatible HTTP API over l4lb's listeners (docs/faults.md).
 *
 * A Toxiproxy "proxy" is an l4lb TCP listener: those of the config file appear under their
 * names, and creating one (`listen` + `upstream`) makes a listener with a one-backend pool.
 * Toxics are the listener's fault table (table.ts). Routes, JSON shapes and status codes are
 * Toxiproxy's (its api.go):
 *
 *   GET    /version                          200 {"version": "..."}
 *   GET    /proxies                          200 {NAME: proxy, ...}
 *   POST   /proxies                          201 proxy; 409 name taken; 400 bad body
 *   POST   /populate                         201 {"proxies": [...]}
 *   GET    /proxies/P                        200 proxy; 404
 *   POST   /proxies/P (or PATCH)             200 proxy (enabled: false = down)
 *   DELETE /proxies/P                        204
 *   GET    /proxies/P/toxics                 200 [toxic, ...]
 *   POST   /proxies/P/toxics                 200 toxic; 409 name taken; 400 bad type/stream/body
 *   GET    /proxies/P/toxics/T               200 toxic; 404
 *   POST   /proxies/P/toxics/T (or PATCH)    200 toxic
 *   DELETE /proxies/P/toxics/T               204
 *   POST   /reset                            204: every listener up, every toxic removed
 *
 * Errors are Toxiproxy's `{"error": MESSAGE, "status": CODE}`. Access follows the admin API's
 * rules (admin/auth.ts): loopback without a token (the Host header must name this machine),
 * a bearer token otherwise, and no change from a foreign browser Origin. Changes run one at a
 * time; a change that fails changes nothing.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { FaultsConfig, ListenerConfig, PoolConfig } from '../config/types.js';
import { Defaults, defaultTimeouts } from '../config/types.js';
import { isLoopbackHost, nameProblem } from '../config/schema.js';
import type { Logger } from '../observability/log.js';
import { silentLogger } from '../observability/log.js';
import type { Proxy } from '../proxy/proxy.js';
import type { ListenerRuntime } from '../proxy/listener.js';
import { formatHostPort, parseHostPort } from '../util/address.js';
import { AdminError } from '../admin/errors.js';
import { bearerToken, hostAllowed, originAllowed, tokenMatches } from '../admin/auth.js';
import { DEFAULT_MAX_BODY_BYTES, listenHttp, readJsonBody, sendJson } from '../admin/http.js';
import { targetSegments } from '../admin/route.js';
import { packageVersion } from '../admin/proxy-source.js';
import type { MadeProxy } from './registry.js';
import { FaultTableError, type ListenerFaults } from './table.js';
import { parseToxic, parseToxicUpdate, ToxicError, type ToxicSpec } from './toxics.js';

/** Where a proxy created without `listen` listens: loopback, a free port. */
const DEFAULT_PROXY_LISTEN = '127.0.0.1:0';

/** A request that fails with Toxiproxy's error shape. */
class ApiError extends Error {
  readonly status: number;
  /** Close the connection after the answer (a client may still be sending an oversized body). */
  readonly close: boolean;
  constructor(status: number, message: string, close = false) {
    super(message);
    this.status = status;
    this.close = close;
  }
}

const badBody = (why: string) => new ApiError(400, `bad request body: ${why}`);
const proxyNotFound = () => new ApiError(404, 'proxy not found');

/** Toxiproxy's JSON of a toxic (its field order). */
export interface ToxicJson {
  attributes: Record<string, number>;
  name: string;
  type: string;
  stream: string;
  toxicity: number;
}

/** Toxiproxy's JSON of a proxy with its toxics. */
export interface ProxyJson {
  name: string;
  listen: string;
  upstream: string;
  enabled: boolean;
  toxics: ToxicJson[];
}

export function toxicJson(t: ToxicSpec): ToxicJson {
  return { attributes: { ...t.attributes }, name: t.name, type: t.type, stream: t.stream, toxicity: t.toxicity };
}

/** Options of {@link FaultsApi}. */
export interface FaultsApiOptions {
  logger?: Logger;
  /** Request body cap, bytes (400 beyond, as for any bad body). Default 64 KiB. */
  maxBodyBytes?: number;
}

/** A proxy as a create or populate body gives it. */
interface ProxyInput {
  name: string;
  listen: string;
  upstream: string;
  enabled: boolean;
}

/**
 * The fields a proxy body may have. `toxics` is ignored, as Toxiproxy does: the Go client sends
 * its whole Proxy, toxics included, when it creates or saves one.
 */
const PROXY_FIELDS = new Set(['name', 'listen', 'upstream', 'enabled', 'toxics']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The Toxiproxy-compatible fault API of one {@link Proxy}. */
export class FaultsApi {
  readonly server: http.Server;
  readonly #proxy: Proxy;
  readonly #config: FaultsConfig;
  readonly #log: Logger;
  readonly #maxBody: number;
  /** Changes run one after the other. */
  #changes: Promise<unknown> = Promise.resolve();
  #address: { host: string; port: number } | undefined;

  constructor(proxy: Proxy, config: FaultsConfig, options: FaultsApiOptions = {}) {
    this.#proxy = proxy;
    this.#config = config;
    this.#log = options.logger ?? silentLogger();
    this.#maxBody = options.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
    this.server = http.createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => this.#fail(res, err));
    });
    this.server.headersTimeout = 10_000;
    this.server.requestTimeout = 30_000;
    this.server.keepAliveTimeout = 5_000;
  }

  /** Binds the API. Refuses an address off loopback without a token. */
  async listen(): Promise<void> {
    const { host, port, token } = this.#config;
    if (!isLoopbackHost(host) && !token) {
      throw new AdminError(0, 'token_required', `refusing to serve the fault API on ${formatHostPort(host || '0.0.0.0', port)} without a token: set faults.token ($L4LB_FAULTS_TOKEN), or listen on a loopback address`, 'internal');
    }
    this.#address = await listenHttp(this.server, host, port, 'the fault API');
    this.#log.info({ faultsApi: this.url }, 'fault API listening');
  }

  /** The bound address (the real port when the config says 0). */
  get address(): { host: string; port: number } {
    if (!this.#address) throw new Error('the fault API is not listening');
    return this.#address;
  }

  /** `http://HOST:PORT`. */
  get url(): string {
    if (!this.#address) throw new Error('the fault API is not listening');
    return `http://${formatHostPort(this.#address.host, this.#address.port)}`;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  // --- requests ---

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { segments } = targetSegments(req.url ?? '/');
    const method = req.method ?? 'GET';
    const token = this.#config.token;
    if (!token && !hostAllowed(req.headers.host, this.#config.host)) {
      throw new ApiError(403, 'the Host header must name a loopback address (set faults.token to serve other names)');
    }
    if (token) {
      const given = bearerToken(req.headers.authorization);
      if (given === undefined || !tokenMatches(given, token)) throw new ApiError(401, 'this fault API needs "Authorization: Bearer TOKEN"');
    }
    const read = method === 'GET' || method === 'HEAD';
    if (!read && !originAllowed(req.headers.origin, req.headers.host)) {
      throw new ApiError(403, `requests from origin ${req.headers.origin} may not change anything`);
    }
    const update = method === 'POST' || method === 'PATCH';
    const [first, name, sub, toxic, ...rest] = segments;
    if (rest.length > 0 || name === '' || sub === '' || toxic === '' || (sub !== undefined && sub !== 'toxics')) throw notFound();

    if (segments.length === 1 && first === 'version') {
      if (!read) throw methodNotAllowed();
      return sendJson(res, 200, { version: packageVersion() });
    }
    if (segments.length === 1 && first === 'reset') {
      if (method !== 'POST') throw methodNotAllowed();
      await this.#change(() => this.#reset());
      return noContent(res);
    }
    if (segments.length === 1 && first === 'populate') {
      if (method !== 'POST') throw methodNotAllowed();
      const body = await this.#body(req);
      const proxies = await this.#change(() => this.#populate(body));
      return sendJson(res, 201, { proxies });
    }
    if (first !== 'proxies') throw notFound();
    if (name === undefined) {
      if (read) return sendJson(res, 200, Object.fromEntries(this.#names().map((n) => [n, this.#view(n)!])));
      if (method !== 'POST') throw methodNotAllowed();
      const body = await this.#body(req);
      return sendJson(res, 201, await this.#change(() => this.#create(body)));
    }
    if (sub === undefined) {
      if (read) return sendJson(res, 200, this.#viewOrThrow(name));
      if (update) {
        const body = await this.#body(req);
        return sendJson(res, 200, await this.#change(() => this.#update(name, body)));
      }
      if (method !== 'DELETE') throw methodNotAllowed();
      await this.#change(() => this.#delete(name));
      return noContent(res);
    }
    if (toxic === undefined) {
      if (read) return sendJson(res, 200, this.#viewOrThrow(name).toxics);
      if (method !== 'POST') throw methodNotAllowed();
      const body = await this.#body(req);
      return sendJson(res, 200, await this.#change(() => this.#addToxic(name, body)));
    }
    if (read) {
      const t = this.#table(name).get(toxic);
      if (!t) throw new ApiError(404, 'toxic not found');
      return sendJson(res, 200, toxicJson(t));
    }
    if (update) {
      const body = await this.#body(req);
      return sendJson(res, 200, await this.#change(() => this.#updateToxic(name, toxic, body)));
    }
    if (method !== 'DELETE') throw methodNotAllowed();
    await this.#change(() => this.#removeToxic(name, toxic));
    return noContent(res);
  }

  /** The request body as JSON: 400 with the reason past the cap or when it is not JSON. */
  async #body(req: IncomingMessage): Promise<unknown> {
    try {
      return await readJsonBody(req, this.#maxBody);
    } catch (err) {
      if (err instanceof AdminError && err.reason === 'body_too_large') throw new ApiError(400, `request body too large: at most ${this.#maxBody} bytes`, true);
      if (err instanceof AdminError) throw badBody(err.message);
      throw err;
    }
  }

  /** Runs a change after the ones before it. */
  #change<T>(fn: () => T | Promise<T>): Promise<T> {
    const p = this.#changes.then(fn);
    this.#changes = p.catch(() => undefined);
    return p;
  }

  #fail(res: ServerResponse, err: unknown): void {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    let status = 500;
    let message = 'internal error; see the l4lb log';
    let close = false;
    if (err instanceof ApiError) ({ status, message, close } = err);
    else if (err instanceof AdminError && err.status >= 400) ({ status, message } = err);
    else this.#log.error({ err: (err as Error)?.message }, 'fault API request failed');
    // A client still sending an oversized body is answered, then the connection closes.
    sendJson(res, status, { error: message, status }, close ? { connection: 'close' } : {});
  }

  // --- the view ---

  /** TCP listeners, in config order. */
  #names(): string[] {
    return [...this.#proxy.listeners.keys()];
  }

  #listener(name: string): ListenerRuntime {
    const l = this.#proxy.listeners.get(name);
    if (!l) throw proxyNotFound();
    return l;
  }

  #table(name: string): ListenerFaults {
    this.#listener(name);
    const t = this.#proxy.faults.get(name);
    if (!t) throw proxyNotFound();
    return t;
  }

  #view(name: string): ProxyJson | undefined {
    const l = this.#proxy.listeners.get(name);
    if (!l) return undefined;
    const t = this.#proxy.faults.get(name);
    return {
      name,
      listen: this.#listenOf(l),
      upstream: this.#upstreamOf(l),
      enabled: t?.enabled ?? true,
      toxics: (t?.list() ?? []).map(toxicJson),
    };
  }

  #viewOrThrow(name: string): ProxyJson {
    const v = this.#view(name);
    if (!v) throw proxyNotFound();
    return v;
  }

  #listenOf(l: ListenerRuntime): string {
    const a = l.address;
    return a ? formatHostPort(a.host, a.port) : formatHostPort(l.config.host, l.config.port);
  }

  /** The client's `upstream` for a made proxy; the pool's backends (comma-separated) for a config listener. */
  #upstreamOf(l: ListenerRuntime): string {
    const made = this.#proxy.faults.made(l.config.name);
    if (made && this.#proxy.listeners.get(l.config.name)?.config === made.listener) return made.upstream;
    const pool = l.config.pool === undefined ? undefined : this.#proxy.pools.get(l.config.pool);
    return pool ? pool.backends.map((b) => b.address).join(',') : '';
  }

  // --- changes ---

  #parseProxy(raw: unknown, where = ''): ProxyInput {
    if (!isRecord(raw)) throw badBody(`expected an object with name, listen and upstream${where}`);
    for (const key of Object.keys(raw)) {
      if (!PROXY_FIELDS.has(key)) throw badBody(`unknown field "${key}"${where}`);
    }
    const { name, listen, upstream, enabled } = raw;
    if (typeof name !== 'string' || name === '') throw new ApiError(400, `missing required field: name${where}`);
    if (typeof upstream !== 'string' || upstream === '') throw new ApiError(400, `missing required field: upstream${where}`);
    if (listen !== undefined && typeof listen !== 'string') throw badBody(`listen must be a string${where}`);
    if (enabled !== undefined && typeof enabled !== 'boolean') throw badBody(`enabled must be true or false${where}`);
    const problem = nameProblem(name);
    if (problem !== undefined) throw badBody(`name: ${problem}${where}`);
    return { name, listen: listen || DEFAULT_PROXY_LISTEN, upstream, enabled: enabled ?? true };
  }

  /** The listener and pool a created proxy becomes. */
  #made(p: ProxyInput): MadeProxy {
    const listen = parseHostPort(p.listen, { allowEmptyHost: true, allowPortZero: true });
    if ('error' in listen) throw badBody(`listen: ${listen.error}`);
    const up = parseHostPort(p.upstream);
    if ('error' in up) throw badBody(`upstream: ${up.error}`);
    const listener: ListenerConfig = {
      name: p.name,
      host: listen.host,
      port: listen.port,
      pool: p.name,
      timeouts: defaultTimeouts(),
      maxConnections: Defaults.maxConnections,
      overLimit: Defaults.overLimit,
      acl: [],
      aclDefault: Defaults.aclDefault,
      routes: [],
    };
    const pool: PoolConfig = {
      name: p.name,
      balance: Defaults.balance,
      hashKey: Defaults.hashKey,
      backends: [
        {
          name: p.upstream,
          host: up.host,
          port: up.port,
          weight: Defaults.weight,
          backup: Defaults.backup,
          state: Defaults.backendState,
          maxConnections: Defaults.maxConnections,
          check: Defaults.backendCheck,
        },
      ],
      // Toxiproxy dials its upstream for every connection: no passive ejection of the only backend.
      passive: { consecutiveFailures: 0, baseEjectionMs: Defaults.passiveBaseEjectionMs, maxEjectionMs: Defaults.passiveMaxEjectionMs },
      slowStartMs: Defaults.slowStartMs,
      queue: { size: Defaults.queueSize, timeoutMs: Defaults.queueTimeoutMs },
    };
    return { listener, pool, upstream: p.upstream };
  }

  /** Whether `p` names the proxy `name` as it is (Toxiproxy's Differs: listen and upstream). */
  #same(name: string, p: ProxyInput): boolean {
    const v = this.#view(name)!;
    if (p.upstream !== v.upstream) return false;
    if (p.listen === v.listen) return true;
    const a = parseHostPort(p.listen, { allowEmptyHost: true, allowPortZero: true });
    const bound = this.#proxy.listeners.get(name)!.address;
    return !('error' in a) && bound !== undefined && a.port === bound.port && (a.host === bound.host || (isLoopbackHost(a.host) && isLoopbackHost(bound.host)));
  }

  /** Applies the made proxies (a reload); on failure the made set is put back as it was. */
  async #applyMade(changes: Array<[string, MadeProxy | undefined]>): Promise<void> {
    const reg = this.#proxy.faults;
    const before = changes.map(([n]): [string, MadeProxy | undefined] => [n, reg.made(n)]);
    for (const [n, m] of changes) reg.setMade(n, m);
    try {
      await this.#proxy.reload(this.#proxy.config);
    } catch (err) {
      for (const [n, m] of before) reg.setMade(n, m);
      throw new ApiError(409, (err as Error).message);
    }
  }

  async #create(body: unknown): Promise<ProxyJson> {
    const p = this.#parseProxy(body);
    if (this.#proxy.listeners.has(p.name)) throw new ApiError(409, 'proxy already exists');
    if (this.#proxy.pools.has(p.name)) throw new ApiError(409, `proxy already exists: a pool is named "${p.name}" in the config`);
    await this.#applyMade([[p.name, this.#made(p)]]);
    if (!p.enabled) await this.#setEnabled(p.name, false);
    this.#log.info({ proxy: p.name, listen: this.#view(p.name)?.listen, upstream: p.upstream }, 'fault API: proxy created');
    return this.#viewOrThrow(p.name);
  }

  async #populate(body: unknown): Promise<ProxyJson[]> {
    if (!Array.isArray(body)) throw badBody('expected a list of proxies');
    const inputs = body.map((raw, i) => this.#parseProxy(raw, ` at proxy ${i + 1}`));
    const changes: Array<[string, MadeProxy]> = [];
    for (const p of inputs) {
      if (this.#proxy.listeners.has(p.name)) {
        if (this.#same(p.name, p)) continue;
        if (!this.#isMade(p.name)) throw new ApiError(409, `proxy "${p.name}" comes from the config file: change its listen or upstream there`);
      } else if (this.#proxy.pools.has(p.name)) {
        throw new ApiError(409, `proxy already exists: a pool is named "${p.name}" in the config`);
      }
      changes.push([p.name, this.#made(p)]);
    }
    if (changes.length > 0) await this.#applyMade(changes);
    for (const [n] of changes) {
      const p = inputs.find((i) => i.name === n)!;
      if (!p.enabled) await this.#setEnabled(n, false);
    }
    return inputs.map((p) => this.#viewOrThrow(p.name));
  }

  #isMade(name: string): boolean {
    const m = this.#proxy.faults.made(name);
    return m !== undefined && this.#proxy.listeners.get(name)?.config === m.listener;
  }

  async #update(name: string, body: unknown): Promise<ProxyJson> {
    const v = this.#viewOrThrow(name);
    if (!isRecord(body)) throw badBody('expected an object with enabled, listen and/or upstream');
    for (const key of Object.keys(body)) {
      if (!PROXY_FIELDS.has(key)) throw badBody(`unknown field "${key}"`);
    }
    if (body.name !== undefined && body.name !== name) throw badBody('a proxy cannot be renamed: delete it and create a new one');
    const p = this.#parseProxy({
      name,
      listen: body.listen ?? v.listen,
      upstream: body.upstream ?? v.upstream,
      enabled: body.enabled ?? v.enabled,
    });
    if (!this.#same(name, p)) {
      if (!this.#isMade(name)) throw new ApiError(409, `proxy "${name}" comes from the config file: change its listen or upstream there`);
      await this.#applyMade([[name, this.#made(p)]]);
    }
    await this.#setEnabled(name, p.enabled);
    return this.#viewOrThrow(name);
  }

  async #delete(name: string): Promise<void> {
    this.#listener(name);
    if (!this.#isMade(name)) throw new ApiError(409, `proxy "${name}" comes from the config file: remove it there`);
    await this.#applyMade([[name, undefined]]);
    this.#proxy.faults.forget(name);
    this.#log.info({ proxy: name }, 'fault API: proxy deleted');
  }

  /**
   * Down (Toxiproxy's `enabled: false`): the listening socket closes, so new connections are
   * refused, and open connections close. Up: it listens again on the same port.
   */
  async #setEnabled(name: string, enabled: boolean): Promise<void> {
    const t = this.#table(name);
    const l = this.#listener(name);
    if (t.enabled === enabled) return;
    if (enabled) {
      await l.resume();
      t.enabled = true;
    } else {
      t.enabled = false;
      await l.stopAccepting();
      l.stopConnections('admin_closed');
    }
    this.#log.warn({ proxy: name, enabled }, enabled ? 'fault API: listener up again' : 'fault API: listener down (refusing connections)');
  }

  #addToxic(name: string, body: unknown): ToxicJson {
    const t = this.#table(name);
    const spec = this.#toxic(() => parseToxic(body));
    const added = this.#tableOp(() => t.add(spec));
    this.#log.warn({ proxy: name, toxic: added.name, type: added.type, stream: added.stream, toxicity: added.toxicity, attributes: added.attributes }, 'fault API: toxic added');
    return toxicJson(added);
  }

  #updateToxic(name: string, toxic: string, body: unknown): ToxicJson {
    const t = this.#table(name);
    const cur = t.get(toxic);
    if (!cur) throw new ApiError(404, 'toxic not found');
    const change = this.#toxic(() => parseToxicUpdate(cur, body));
    const updated = this.#tableOp(() => t.update(toxic, change));
    this.#log.warn({ proxy: name, toxic, toxicity: updated.toxicity, attributes: updated.attributes }, 'fault API: toxic updated');
    return toxicJson(updated);
  }

  #removeToxic(name: string, toxic: string): void {
    const t = this.#table(name);
    this.#tableOp(() => t.remove(toxic));
    this.#log.info({ proxy: name, toxic }, 'fault API: toxic removed');
  }

  async #reset(): Promise<void> {
    for (const [name, t] of this.#proxy.faults.tables()) {
      if (!this.#proxy.listeners.has(name)) continue;
      if (t.list().length > 0) t.replace([]);
      if (!t.enabled) await this.#setEnabled(name, true);
    }
    this.#log.info('fault API: reset (every listener up, every toxic removed)');
  }

  /** Toxic parse errors as Toxiproxy reports them. */
  #toxic<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (!(err instanceof ToxicError)) throw err;
      // Toxiproxy's messages: "invalid toxic type", "stream was invalid…", "bad request body: …".
      if (err.kind === 'type' || err.kind === 'stream') throw new ApiError(400, err.message);
      throw badBody(err.message);
    }
  }

  #tableOp<T>(fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      if (err instanceof FaultTableError) throw new ApiError(err.status, err.message);
      throw err;
    }
  }
}

function notFound(): ApiError {
  return new ApiError(404, 'not found');
}

function methodNotAllowed(): ApiError {
  return new ApiError(405, 'method not allowed');
}

function noContent(res: ServerResponse): void {
  res.writeHead(204, { 'cache-control': 'no-store' });
  res.end();
}

/** Creates and binds the fault API of `proxy`. */
export async function startFaultsApi(proxy: Proxy, config: FaultsConfig, options: FaultsApiOptions = {}): Promise<FaultsApi> {
  const api = new FaultsApi(proxy, config, options);
  await api.listen();
  return api;
}
