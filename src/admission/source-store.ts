/**
 * @module admission/source-store — the shared store of per-source limits (Redis): one connection
 * per process, the Lua script that takes and gives back rate tokens and connection slots
 * atomically, and the store's state with its fall-back and recovery.
 *
 * The data in Redis, under the configured prefix (`l4lb:` by default):
 * - `PREFIX r:LISTENER:SOURCE` — a token bucket (hash `t` tokens, `at` ms of Redis' own clock),
 *   deleted once full again (it then carries no information), so idle sources cost nothing.
 * - `PREFIX c:LISTENER:SOURCE` — connection slots per holder (hash holder → slots).
 * - `PREFIX h:HOLDER` — a holder is alive while this key is: it expires after `leaseTtl` unless
 *   the process renews it (every third of that). Slots of a holder whose key is gone do not
 *   count, and are removed by the next process that asks for a slot of that source: a crashed
 *   instance's connections stop counting within `leaseTtl`.
 *
 * A holder is one process in one period of the store being up: when the store was away (down,
 * or slow beyond `timeout`), the process comes back under a new holder id, deletes the old
 * holder key and registers its live connections afresh, so nothing that happened while it could
 * not see the store (a lease executed after its timeout, a give-back that never arrived) leaves
 * a count behind.
 *
 * Every command is raced against `timeout`; a store that does not answer in time is away, and a
 * reply that comes later is ignored. While away, nothing is sent but a PING every
 * {@link PROBE_INTERVAL_MS} (once the connection is open): the connection itself reconnects with
 * backoff, and the first PING answered within `timeout` brings the store back.
 */
import { createHash, randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { createClient } from '@redis/client';
import type { SharedSourceLimitsConfig } from '../config/types.js';
import type { Logger } from '../observability/log.js';

/** First reconnect delay; doubled per failed attempt up to {@link RECONNECT_MAX_MS}. */
export const RECONNECT_BASE_MS = 50;
/** Longest reconnect delay. */
export const RECONNECT_MAX_MS = 2_000;
/** How often an away store is probed (PING) while its connection is open. */
export const PROBE_INTERVAL_MS = 250;
/** Longest time to set up the TCP (and TLS) connection to Redis. */
export const CONNECT_TIMEOUT_MS = 2_000;
/** Concurrency keys live this many lease TTLs without a renewal (they are renewed every third of one). */
const SLOT_KEY_TTLS = 3;

/** `connecting` until the first answer; `away` while it does not answer (the fall-back applies). */
export type StoreState = 'connecting' | 'up' | 'away';

/** What a lease call got: tokens and slots granted (0 when giving back); `slots` -1 = holder unknown. */
export interface LeaseReply {
  tokens: number;
  slots: number;
}

/** A limiter that keeps leases in the store. */
export interface StoreMember {
  /** Concurrency keys this member holds slots in (for the renewal of their expiry). */
  slotKeys(): Iterable<string>;
  /**
   * The store is back under a new holder id: the member's slots become its live connections
   * (returned as key → count, registered by the store) and waits for answers are over.
   */
  restart(): Iterable<[key: string, active: number]>;
}

/** A store's counters, for the admin status and metrics. */
export interface StoreCounters {
  state: StoreState;
  /** Failed or timed-out commands and connection errors since start. */
  errors: number;
  /** Times the store went away (the limits fell back). */
  fallbacks: number;
}

/**
 * Takes (positive) or gives back (negative) tokens of a bucket and slots of a holder, atomically.
 * KEYS: bucket, slots, holder key. ARGV: tokens, rate, burst, slots, maxConnections, holder id,
 * holder key prefix, slots key TTL ms. Redis' own clock (TIME) times the bucket, so the clocks
 * of the instances do not matter.
 */
const LEASE_SCRIPT = `
local gotT, gotS = 0, 0
local dT = tonumber(ARGV[1])
if dT ~= 0 then
  local rate, burst = tonumber(ARGV[2]), tonumber(ARGV[3])
  local tm = redis.call('TIME')
  local now = tonumber(tm[1]) * 1000 + math.floor(tonumber(tm[2]) / 1000)
  local b = redis.call('HMGET', KEYS[1], 't', 'at')
  local tokens = tonumber(b[1]) or burst
  local at = tonumber(b[2]) or now
  if now > at then tokens = math.min(burst, tokens + (now - at) * rate / 1000) end
  if dT > 0 then
    gotT = math.min(dT, math.floor(tokens))
    tokens = tokens - gotT
  else
    tokens = math.min(burst, tokens - dT)
  end
  if tokens >= burst then
    redis.call('DEL', KEYS[1])
  else
    redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', tostring(now))
    redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) * 1000 / rate) + 1000)
  end
end
local dS = tonumber(ARGV[4])
if dS > 0 then
  if redis.call('EXISTS', KEYS[3]) == 0 then return {gotT, -1} end
  local h = redis.call('HGETALL', KEYS[2])
  local used = 0
  for i = 1, #h, 2 do
    if h[i] == ARGV[6] or redis.call('EXISTS', ARGV[7] .. h[i]) == 1 then
      used = used + tonumber(h[i + 1])
    else
      redis.call('HDEL', KEYS[2], h[i])
    end
  end
  gotS = math.max(0, math.min(dS, tonumber(ARGV[5]) - used))
  if gotS > 0 then
    redis.call('HINCRBY', KEYS[2], ARGV[6], gotS)
    redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[8]))
  end
elseif dS < 0 then
  if redis.call('HINCRBY', KEYS[2], ARGV[6], dS) <= 0 then redis.call('HDEL', KEYS[2], ARGV[6]) end
end
return {gotT, gotS}
`;

/**
 * Keeps a holder alive and the expiry of its slot keys fresh. KEYS: holder key, slot keys.
 * ARGV: lease TTL ms, slot key TTL ms.
 */
const RENEW_SCRIPT = `
redis.call('SET', KEYS[1], '1', 'PX', tonumber(ARGV[1]))
for i = 2, #KEYS do redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2])) end
return #KEYS
`;

/**
 * A new holder replaces an old one of the same process. KEYS: old holder key, new holder key,
 * slot keys. ARGV: lease TTL ms, slot key TTL ms, new holder id, then one count per slot key.
 */
const REGISTER_SCRIPT = `
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], '1', 'PX', tonumber(ARGV[1]))
for i = 3, #KEYS do
  redis.call('HSET', KEYS[i], ARGV[3], ARGV[i + 1])
  redis.call('PEXPIRE', KEYS[i], tonumber(ARGV[2]))
end
return #KEYS
`;

interface Script {
  source: string;
  sha: string | undefined;
}

type Client = ReturnType<typeof createClient>;

/** The URL with its password hidden, for logs and the status. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password !== '') u.password = '***';
    return u.toString();
  } catch {
    return '(unparsable URL)';
  }
}

/** One process's connection to one shared store (one per distinct `redis` URL and prefix). */
export class SourceStore {
  readonly config: SharedSourceLimitsConfig;
  readonly #log: Logger;
  readonly #client: Client;
  readonly #members = new Set<StoreMember>();
  readonly #lease: Script = { source: LEASE_SCRIPT, sha: undefined };
  readonly #renew: Script = { source: RENEW_SCRIPT, sha: undefined };
  readonly #register: Script = { source: REGISTER_SCRIPT, sha: undefined };
  readonly #holderBase = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  #generation = 0;
  #state: StoreState = 'connecting';
  #errors = 0;
  #fallbacks = 0;
  #awaySince = 0;
  #probeTimer: NodeJS.Timeout | undefined;
  #renewTimer: NodeJS.Timeout | undefined;
  #probing = false;
  #closed = false;

  constructor(config: SharedSourceLimitsConfig, log: Logger) {
    this.config = config;
    this.#log = log.child({ store: redactUrl(config.redis) });
    this.#client = createClient({
      url: config.redis,
      // Commands while disconnected fail at once (the fall-back applies) instead of queueing.
      disableOfflineQueue: true,
      socket: {
        connectTimeout: CONNECT_TIMEOUT_MS,
        reconnectStrategy: (retries: number) => {
          const base = Math.min(RECONNECT_MAX_MS, RECONNECT_BASE_MS * 2 ** Math.min(retries, 10));
          return Math.round(base / 2 + Math.random() * (base / 2));
        },
      },
    });
    this.#client.on('error', (err: Error) => this.#failed(err));
    this.#client.on('ready', () => void this.#probe());
    this.#client.connect().catch((err: Error) => this.#failed(err));
    this.#startProbing();
  }

  get state(): StoreState {
    return this.#state;
  }

  get counters(): StoreCounters {
    return { state: this.#state, errors: this.#errors, fallbacks: this.#fallbacks };
  }

  /** The current holder id (changes every time the store comes back). */
  get holder(): string {
    return `${this.#holderBase}:${this.#generation}`;
  }

  /** A key under the configured prefix. */
  key(kind: 'r' | 'c' | 'h', rest: string): string {
    return `${this.config.prefix}${kind}:${rest}`;
  }

  join(member: StoreMember): void {
    this.#members.add(member);
  }

  leave(member: StoreMember): void {
    this.#members.delete(member);
  }

  /**
   * Takes `tokens` of the bucket `bucketKey` and `slots` of `slotKey` (negative: gives back).
   * Resolves undefined when the store did not answer within `timeout` or failed (it is then
   * away); never rejects.
   */
  async lease(
    bucketKey: string,
    slotKey: string,
    tokens: number,
    rate: number,
    burst: number,
    slots: number,
    maxConnections: number,
  ): Promise<LeaseReply | undefined> {
    if (this.#state !== 'up') return undefined;
    const holder = this.holder;
    const r = await this.#eval(
      this.#lease,
      [bucketKey, slotKey, this.key('h', holder)],
      [tokens, rate, burst, slots, maxConnections, holder, this.key('h', ''), this.#slotKeyTtl].map(String),
    );
    if (!Array.isArray(r)) return undefined;
    const reply = { tokens: Number(r[0]), slots: Number(r[1]) };
    if (reply.slots < 0) {
      // Our holder key expired although we renew it: the store lost it (restarted empty). Start over.
      this.#goAway(new Error('holder lease lost (the store lost its data?)'));
      return undefined;
    }
    return reply;
  }

  /** Closes the connection, releasing this process's slots at once when the store is up. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#probeTimer);
    clearInterval(this.#renewTimer);
    if (this.#state === 'up') await this.#command(['DEL', this.key('h', this.holder)]);
    this.#client.destroy();
  }

  get #slotKeyTtl(): number {
    return this.config.leaseTtlMs * SLOT_KEY_TTLS;
  }

  #failed(err: Error): void {
    if (this.#closed) return;
    this.#errors++;
    // Every error while away would repeat the same news: once, at warn, is in #goAway.
    if (this.#state === 'away') this.#log.debug({ err: err.message }, 'source-limit store error');
    this.#goAway(err);
  }

  #goAway(err: Error): void {
    if (this.#state === 'away' || this.#closed) return;
    const was = this.#state;
    this.#state = 'away';
    this.#awaySince = performance.now();
    this.#fallbacks++;
    clearInterval(this.#renewTimer);
    this.#renewTimer = undefined;
    this.#log.warn(
      { err: err.message, was, onStoreFailure: this.config.onStoreFailure },
      this.config.onStoreFailure === 'open'
        ? 'source-limit store away: local limits apply until it is back'
        : 'source-limit store away: limited connections are refused until it is back',
    );
    this.#startProbing();
  }

  #startProbing(): void {
    if (this.#probeTimer || this.#closed) return;
    this.#probeTimer = setInterval(() => void this.#probe(), PROBE_INTERVAL_MS);
    this.#probeTimer.unref();
  }

  /** Asks whether the store answers; when it does, comes back under a new holder id. */
  async #probe(): Promise<void> {
    if (this.#state === 'up' || this.#probing || this.#closed || !this.#client.isReady) return;
    this.#probing = true;
    try {
      if ((await this.#command(['PING'])) !== 'PONG') return;
      const old = this.key('h', this.holder);
      this.#generation++;
      const holder = this.holder;
      const keys: string[] = [];
      const counts: string[] = [];
      for (const m of this.#members) {
        for (const [key, active] of m.restart()) {
          keys.push(key);
          counts.push(String(active));
        }
      }
      const r = await this.#eval(this.#register, [old, this.key('h', holder), ...keys], [String(this.config.leaseTtlMs), String(this.#slotKeyTtl), holder, ...counts]);
      if (r === undefined || this.#closed) return;
      const was = this.#state;
      this.#state = 'up';
      clearInterval(this.#probeTimer);
      this.#probeTimer = undefined;
      this.#renewTimer = setInterval(() => void this.#renewNow(), Math.max(1, Math.floor(this.config.leaseTtlMs / 3)));
      this.#renewTimer.unref();
      if (was === 'connecting') this.#log.info({ holder }, 'source-limit store connected: limits are shared');
      else this.#log.info({ holder, awayMs: Math.round(performance.now() - this.#awaySince), connections: counts.length }, 'source-limit store back: limits are shared again');
    } finally {
      this.#probing = false;
    }
  }

  async #renewNow(): Promise<void> {
    if (this.#state !== 'up') return;
    const keys = new Set<string>();
    for (const m of this.#members) for (const k of m.slotKeys()) keys.add(k);
    await this.#eval(this.#renew, [this.key('h', this.holder), ...keys], [String(this.config.leaseTtlMs), String(this.#slotKeyTtl)]);
  }

  /** EVALSHA, loading the script (EVAL) when Redis does not have it (first use, or after a restart). */
  async #eval(script: Script, keys: string[], args: string[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args];
    if (script.sha !== undefined) {
      const r = await this.#command(['EVALSHA', script.sha, ...tail], true);
      if (!(r instanceof Error)) return r;
    }
    const r = await this.#command(['EVAL', script.source, ...tail]);
    // SCRIPT LOAD is not needed: EVAL caches the script under the SHA1 EVALSHA uses.
    if (r !== undefined && script.sha === undefined) script.sha = sha1(script.source);
    return r;
  }

  /**
   * One command, raced against `timeout`. Resolves undefined on failure or timeout (the store is
   * then away); with `noScriptBack`, a NOSCRIPT error is returned instead (the script is to be sent).
   */
  #command(args: string[], noScriptBack = false): Promise<unknown> {
    return new Promise((resolve) => {
      let settled = false;
      const timer = setTimeout(() => {
        if (settled) return;
        settled = true;
        this.#failed(new Error(`no answer within ${this.config.timeoutMs}ms (${args[0]})`));
        resolve(undefined);
      }, this.config.timeoutMs);
      // A client that is not open throws at once rather than rejecting: the same failure.
      Promise.resolve()
        .then(() => this.#client.sendCommand(args))
        .then(
        (reply) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          resolve(reply);
        },
        (err: Error) => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          if (noScriptBack && err.message.startsWith('NOSCRIPT')) return resolve(err);
          this.#failed(err);
          resolve(undefined);
        },
      );
    });
  }
}

function sha1(s: string): string {
  return createHash('sha1').update(s).digest('hex');
}
