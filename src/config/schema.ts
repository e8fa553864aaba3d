/**
 * @module config/schema — the config file's raw format (zod) and the rules that span values.
 *
 * Two passes find problems, and both always run so that one attempt reports everything:
 * - `configSchema` checks every value on its own (types, unknown keys, durations, addresses,
 *   CIDRs, ranges) and turns a valid input into the resolved {@link Config}, defaults filled in;
 * - `checkConfigRules` checks what involves several values (unique names, references between
 *   listeners and pools, keys that exclude or need each other). It reads the raw input
 *   defensively and stays silent about values the schema already rejects.
 */
import { availableParallelism } from 'node:os';
import { BlockList, isIP } from 'node:net';
import * as z from 'zod';
import {
  BALANCER_NAMES,
  Defaults,
  defaultPassive,
  defaultTimeouts,
  type AclRule,
  type ActiveHealthConfig,
  type AdminConfig,
  type BackendConfig,
  type BalancerName,
  type Config,
  type DnsDiscoveryConfig,
  type ExpectMatcher,
  type FaultsConfig,
  type ListenerConfig,
  type MirrorConfig,
  type PassiveHealthConfig,
  type PoolConfig,
  type PoolTlsConfig,
  type RetryOnEmptyResponseConfig,
  type RouteConfig,
  type SourceLimitsConfig,
  type SharedSourceLimitsConfig,
  type TimeoutsConfig,
  type UdpListenerConfig,
} from './types.js';
import { parseDuration, parseSize } from '../util/duration.js';
import { formatHostPort, numericHostError, parseHostPort, type HostPort } from '../util/address.js';
import { normalizeServerName, validateServerNamePattern } from '../protocol/sni-router.js';
import { parseToxic, ToxicError, type ToxicSpec } from '../faults/toxics.js';


/** setTimeout() fires at once for anything longer, so no duration may exceed it (~24.8 days). */
export const MAX_DURATION_MS = 2_147_483_647;

/** Upper bound for `workers`; far above any real core count, it catches typos. */
export const MAX_WORKERS = 1024;

/**
 * Cap on `retryOnEmptyResponse.maxBytes`: bytes kept per connection until the backend answers.
 * Replay is for requests (a cache read, a query), not uploads; 1 MiB bounds the memory of
 * 10 000 waiting connections at 10 GiB in the worst case.
 */
export const MAX_REPLAY_BYTES = 1024 * 1024;

/** Cap on `mirror.bufferSize`, per mirrored connection: a mirror further behind is dropped anyway. */
export const MAX_MIRROR_BUFFER_BYTES = 64 * 1024 * 1024;


/**
 * What HAProxy (`balance …`) and nginx (the upstream's directive) call l4lb's algorithms, for
 * the "did you mean" of a wrong `balance` and for `l4lb convert`. `undefined`: no equivalent.
 */
export const FOREIGN_BALANCER_NAMES: Readonly<Record<string, { name: BalancerName | undefined; why: string }>> = {
  roundrobin: { name: 'weighted-round-robin', why: "HAProxy's roundrobin (it honours weights; round-robin ignores them)" },
  'static-rr': { name: 'weighted-round-robin', why: "HAProxy's static-rr" },
  leastconn: { name: 'least-connections', why: "HAProxy's leastconn" },
  least_conn: { name: 'least-connections', why: "nginx's least_conn" },
  source: { name: 'source-ip-hash', why: "HAProxy's source" },
  ip_hash: { name: 'source-ip-hash', why: "nginx's ip_hash" },
  hash: { name: 'maglev', why: 'nginx\'s "hash $remote_addr consistent" (source-ip-hash without "consistent")' },
  'random two': { name: 'power-of-two-choices', why: 'nginx\'s "random two"' },
  first: { name: undefined, why: "HAProxy's first has no equivalent: l4lb always spreads connections" },
  rr: { name: 'round-robin', why: 'rr' },
  wrr: { name: 'weighted-round-robin', why: 'wrr' },
  lc: { name: 'least-connections', why: 'lc' },
  p2c: { name: 'power-of-two-choices', why: 'p2c' },
};

/** The hint after an unknown `balance` name: HAProxy's and nginx's names first, then typos. */
export function balanceHint(word: string): string {
  const foreign = FOREIGN_BALANCER_NAMES[word.trim().toLowerCase()];
  if (foreign === undefined) return didYouMean(word, BALANCER_NAMES);
  if (foreign.name === undefined) return ` (${foreign.why})`;
  return ` (did you mean "${foreign.name}"? ${foreign.why === word.trim().toLowerCase() ? 'a common short name' : `that is ${foreign.why}`})`;
}

/** Log levels accepted by `log.level` (pino's). */
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** One path segment inside the document: a key or a list index. */
export type PathSegment = string | number;

/** A problem found in the raw input, before it is given a file and a line. */
export interface SchemaIssue {
  path: PathSegment[];
  message: string;
}

// ---------------------------------------------------------------------------------------------
// Small value parsers shared by the schema and the rules pass.

/** Describes a value the way an error message quotes it: `a string ("abc")`, `null`. */
export function describeValue(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null (an empty value)';
  if (Array.isArray(v)) return 'a list';
  if (Buffer.isBuffer(v)) return 'binary data';
  switch (typeof v) {
    case 'string':
      return `a string (${JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v)})`;
    case 'number':
      return `a number (${v})`;
    case 'boolean':
      return `${v}`;
    case 'object':
      return 'an object';
    default:
      return typeof v;
  }
}

/** Parses a duration value; `{ error }` explains why it is not one. */
export function parseDurationValue(v: unknown): number | { error: string } {
  if (typeof v !== 'string' && typeof v !== 'number') {
    return { error: `expected a duration such as "5s", "250ms" or a number of milliseconds, got ${describeValue(v)}` };
  }
  const ms = parseDuration(v);
  if (ms === undefined) {
    return typeof v === 'number'
      ? { error: `duration must be a non-negative number of milliseconds, got ${v}` }
      : { error: `"${v}" is not a duration: write a number and a unit (ms, s, m, h, d), e.g. "5s", "250ms", "1m30s"` };
  }
  const rounded = Math.round(ms);
  if (rounded > MAX_DURATION_MS) return { error: `duration ${JSON.stringify(v)} is too long: the maximum is 24d` };
  return rounded;
}

/** Checks a CIDR (`10.0.0.0/8`, `::1/128`) or a single IP address; returns a reason when invalid. */
export function cidrError(input: string): string | undefined {
  const s = input.trim();
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const family = isIP(addr);
  if (family === 0) return `"${input}" is not an IP address or CIDR (e.g. "10.0.0.0/8", "::1/128")`;
  if (slash < 0) return undefined;
  const prefixText = s.slice(slash + 1);
  const max = family === 4 ? 32 : 128;
  if (!/^\d{1,3}$/.test(prefixText) || Number(prefixText) > max) {
    return `prefix length "/${prefixText}" in "${input}" must be a number from 0 to ${max}`;
  }
  try {
    new BlockList().addSubnet(addr, Number(prefixText), family === 4 ? 'ipv4' : 'ipv6');
  } catch (err) {
    return `"${input}" is not a valid CIDR: ${(err as Error).message}`;
  }
  return undefined;
}

const HOSTNAME_LABEL = '[a-zA-Z0-9_]([a-zA-Z0-9_-]*[a-zA-Z0-9_])?';
const HOSTNAME_RE = new RegExp(`^${HOSTNAME_LABEL}(\\.${HOSTNAME_LABEL})*\\.?$`);
const HEX_RE = /^([0-9a-f]{2})+$/;
/** Longest listener, pool or backend name. */
export const MAX_NAME_LENGTH = 200;
/**
 * Characters a name may not hold. Names show up in logs, metric labels and admin URL paths
 * (`/api/v1/pools/P/backends/B`), so each must survive being one path segment: no blanks,
 * no `/` or `\` (segment separators), no `%` (escapes), no `?` or `#` (they end the path),
 * no control or invisible formatting characters.
 */
const NAME_FORBIDDEN_RE = /[\s/\\%?#\p{Cc}\p{Cf}]/u;

/**
 * Why `s` cannot be a listener, pool or backend name, or undefined when it can. The one rule
 * for names, shared by config files and the admin API: a name must come back unchanged from
 * an admin URL path segment, whatever client wrote it.
 */
export function nameProblem(s: string): string | undefined {
  const quoted = JSON.stringify(s.length > 60 ? `${s.slice(0, 57)}...` : s);
  if (s.length === 0) return 'a name must not be empty';
  if (s.length > MAX_NAME_LENGTH) return `${quoted}: a name is at most ${MAX_NAME_LENGTH} characters (got ${s.length})`;
  if (s === '.' || s === '..') return `${quoted} cannot be a name: URL paths treat "." and ".." as directory steps, so the admin API could never reach it`;
  const bad = NAME_FORBIDDEN_RE.exec(s);
  if (bad) {
    const c = bad[0];
    const what = /\s/u.test(c) && c.charCodeAt(0) >= 0x20 ? 'a blank' : /[\p{Cc}\p{Cf}]/u.test(c) ? `a control or invisible character (U+${c.codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0')})` : `"${c}"`;
    return `${quoted}: names may not contain ${what}: they must survive as one admin URL path segment (no blanks, "/", "\\", "%", "?", "#" or control characters)`;
  }
  return undefined;
}

/** True when the host only ever reaches this machine. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  if (h === 'localhost' || h === '::1') return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  return h.startsWith('::ffff:127.');
}

/** Levenshtein distance, for "did you mean" hints. */
function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0];
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j];
      prev[j] = Math.min(prev[j] + 1, prev[j - 1] + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length];
}

/** The candidate closest to `word`, when it is close enough to be a likely typo. */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDist = Infinity;
  const w = word.toLowerCase();
  for (const c of candidates) {
    const d = editDistance(w, c.toLowerCase());
    if (d < bestDist) {
      best = c;
      bestDist = d;
    }
  }
  return best !== undefined && bestDist <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

/** ` (did you mean "x"?)` or nothing. */
export function didYouMean(word: string, candidates: readonly string[]): string {
  const c = closest(word, candidates);
  return c !== undefined ? ` (did you mean "${c}"?)` : '';
}

// ---------------------------------------------------------------------------------------------
// Field schemas.

function duration(opts: { positive?: boolean } = {}) {
  return z.unknown().transform((v, ctx): number => {
    const r = parseDurationValue(v);
    if (typeof r !== 'number') {
      ctx.addIssue({ code: 'custom', message: r.error, input: v });
      return z.NEVER;
    }
    if (opts.positive && r === 0) {
      ctx.addIssue({ code: 'custom', message: 'must be greater than 0', input: v });
      return z.NEVER;
    }
    return r;
  });
}

/** A byte size: a number of bytes, or a string with a unit (`16KiB`, `1MiB`, `4096`), within [min, max]. */
function size(opts: { min: number; max: number }) {
  return z.unknown().transform((v, ctx): number => {
    const n = typeof v === 'string' || typeof v === 'number' ? parseSize(v) : undefined;
    if (n === undefined) {
      ctx.addIssue({ code: 'custom', message: `expected a size such as "16KiB", "1MiB" or a number of bytes, got ${describeValue(v)}`, input: v });
      return z.NEVER;
    }
    if (n < opts.min || n > opts.max) {
      ctx.addIssue({ code: 'custom', message: `${JSON.stringify(v)} is out of range: from ${opts.min} to ${opts.max} bytes (${opts.max / 1024 / 1024} MiB)`, input: v });
      return z.NEVER;
    }
    return n;
  });
}

/** An address as written plus its parsed form. */
interface WrittenAddress extends HostPort {
  text: string;
}

function address(opts: { listen: boolean }) {
  return z.string().transform((s, ctx): WrittenAddress => {
    const r = parseHostPort(s, { allowEmptyHost: opts.listen, allowPortZero: opts.listen });
    if ('error' in r) {
      ctx.addIssue({ code: 'custom', message: r.error, input: s });
      return z.NEVER;
    }
    return { text: s.trim(), host: r.host, port: r.port };
  });
}

const cidr = z.string().transform((s, ctx): string => {
  const err = cidrError(s);
  if (err !== undefined) {
    ctx.addIssue({ code: 'custom', message: err, input: s });
    return z.NEVER;
  }
  return s.trim();
});

/** One CIDR, or a list of them (`allow: [10.0.0.0/8, 192.168.0.0/16]`). */
const cidrOrList = z.unknown().transform((v, ctx): string[] => {
  const list = typeof v === 'string' ? [v] : Array.isArray(v) ? (v as unknown[]) : undefined;
  if (list === undefined || list.length === 0) {
    ctx.addIssue({ code: 'custom', message: `expected a CIDR or a list of CIDRs, got ${describeValue(v)}`, input: v });
    return z.NEVER;
  }
  const out: string[] = [];
  list.forEach((item, i) => {
    const at = Array.isArray(v) ? [i] : [];
    if (typeof item !== 'string') {
      ctx.addIssue({ code: 'custom', message: `expected a CIDR string, got ${describeValue(item)}`, path: at, input: item });
      return;
    }
    const err = cidrError(item);
    if (err !== undefined) ctx.addIssue({ code: 'custom', message: err, path: at, input: item });
    else out.push(item.trim());
  });
  return out;
});

const name = z.string().superRefine((s, ctx) => {
  const problem = nameProblem(s);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, input: s });
});
const count = z.number().int().min(0);
const positiveInt = z.number().int().min(1);
const hexBytes = z.string().transform((s, ctx): string => {
  const hex = s.replace(/\s+/g, '').toLowerCase();
  if (!HEX_RE.test(hex)) {
    ctx.addIssue({ code: 'custom', message: `"${s}" is not hex bytes (pairs of 0-9a-f, e.g. "2b4f4b")`, input: s });
    return z.NEVER;
  }
  return hex;
});
const regexSource = z.string().transform((s, ctx): string => {
  try {
    new RegExp(s);
  } catch (err) {
    ctx.addIssue({ code: 'custom', message: `not a valid regular expression: ${(err as Error).message}`, input: s });
    return z.NEVER;
  }
  return s;
});
const hostname = z.string().superRefine((s, ctx) => {
  const problem = (isIP(s) === 0 ? numericHostError(s) : undefined) ?? (HOSTNAME_RE.test(s) ? undefined : `${JSON.stringify(s)} is not a valid DNS name`);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem, input: s });
});
const serverName = z.string().transform((s, ctx): string => {
  const problem = validateServerNamePattern(s);
  if (problem !== undefined) {
    ctx.addIssue({ code: 'custom', message: `${problem}; expected a server name like "api.example.com" or "*.example.com"`, input: s });
    return z.NEVER;
  }
  return normalizeServerName(s);
});
const alpnId = z.string().min(1).max(255);
const filePath = z.string().min(1);

/** A DNS server: an IP with an optional port (53 by default). */
const resolver = z.string().transform((s, ctx): string => {
  const t = s.trim();
  if (isIP(t) !== 0) return formatHostPort(t, Defaults.dnsPort);
  const r = parseHostPort(t);
  if ('error' in r || isIP(r.host) === 0) {
    ctx.addIssue({
      code: 'custom',
      message: `expected a DNS server IP with an optional port ("127.0.0.1", "127.0.0.1:5353", "[::1]:53"), got "${s}"`,
      input: s,
    });
    return z.NEVER;
  }
  return formatHostPort(r.host, r.port);
});

// ---------------------------------------------------------------------------------------------
// Listener schemas.

const timeoutsSchema = z.strictObject({
  connect: duration({ positive: true }).optional(),
  idle: duration().optional(),
  clientFin: duration().optional(),
  serverFin: duration().optional(),
  maxLifetime: duration().optional(),
  preread: duration({ positive: true }).optional(),
});

/** Timeouts with defaults filled in; a UDP listener's idle timeout defaults to 30s. */
function resolveTimeouts(t: z.output<typeof timeoutsSchema> | undefined, udp: boolean): TimeoutsConfig {
  const d = defaultTimeouts();
  return {
    connectMs: t?.connect ?? d.connectMs,
    idleMs: t?.idle ?? (udp ? Defaults.udpIdleTimeoutMs : d.idleMs),
    clientFinMs: t?.clientFin ?? d.clientFinMs,
    serverFinMs: t?.serverFin ?? d.serverFinMs,
    maxLifetimeMs: t?.maxLifetime ?? d.maxLifetimeMs,
    prereadMs: t?.preread ?? d.prereadMs,
  };
}

const udpListenerSchema = z
  .strictObject({
    responses: count.optional(),
    responseTimeout: duration({ positive: true }).optional(),
    perDatagram: z.boolean().optional(),
  })
  .transform(
    (u): UdpListenerConfig => ({
      responses: u.responses ?? Defaults.udpResponses,
      responseTimeoutMs: u.responseTimeout ?? Defaults.udpResponseTimeoutMs,
      perDatagram: u.perDatagram ?? false,
    }),
  );

const aclRuleSchema = z
  .strictObject({ allow: cidrOrList.optional(), deny: cidrOrList.optional() })
  .transform((r): AclRule[] => [
    ...(r.allow ?? []).map((c): AclRule => ({ action: 'allow', cidr: c })),
    ...(r.deny ?? []).map((c): AclRule => ({ action: 'deny', cidr: c })),
  ]);

/** A Redis URL: `redis://` or `rediss://`, with a host; the path, when given, is a database number. */
const redisUrl = z.string().transform((s, ctx): string => {
  let u: URL;
  try {
    u = new URL(s.trim());
  } catch {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(s)}: expected a URL like redis://HOST:PORT/DB or rediss://HOST:PORT/DB`, input: s });
    return z.NEVER;
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(s)}: the scheme must be redis:// or rediss:// (TLS), got ${u.protocol}//`, input: s });
    return z.NEVER;
  }
  if (u.hostname === '') {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(s)}: no host`, input: s });
    return z.NEVER;
  }
  if (u.pathname !== '' && u.pathname !== '/' && !/^\/\d+$/.test(u.pathname)) {
    ctx.addIssue({ code: 'custom', message: `${JSON.stringify(s)}: the path is a database number (/0), got ${u.pathname}`, input: s });
    return z.NEVER;
  }
  return s.trim();
});

const sharedSourceLimitsSchema = z
  .strictObject({
    redis: redisUrl,
    prefix: z.string().max(100).optional(),
    timeout: duration({ positive: true }).optional(),
    onStoreFailure: z.enum(['open', 'closed']).optional(),
    leaseTtl: duration({ positive: true }).optional(),
    leaseSize: positiveInt.max(1000).optional(),
  })
  .transform((s): SharedSourceLimitsConfig => ({
    redis: s.redis,
    prefix: s.prefix ?? Defaults.sharedLimitsPrefix,
    timeoutMs: s.timeout ?? Defaults.sharedLimitsTimeoutMs,
    onStoreFailure: s.onStoreFailure ?? 'open',
    leaseTtlMs: s.leaseTtl ?? Defaults.sharedLimitsLeaseTtlMs,
    leaseSize: s.leaseSize,
  }));

const sourceLimitsSchema = z
  .strictObject({
    maxConnections: count.optional(),
    ratePerSecond: z.number().min(0).optional(),
    burst: z.number().min(1).optional(),
    ipv6Prefix: z.number().int().min(0).max(128).optional(),
    datagramsPerSecond: z.number().min(0).optional(),
    datagramBurst: z.number().min(1).optional(),
    shared: sharedSourceLimitsSchema.optional(),
  })
  .transform((s): SourceLimitsConfig => {
    const rate = s.ratePerSecond ?? 0;
    const datagrams = s.datagramsPerSecond ?? 0;
    return {
      maxConnections: s.maxConnections ?? 0,
      ratePerSecond: rate,
      // A bucket smaller than one token would never admit anybody.
      burst: s.burst ?? (rate > 0 ? Math.max(1, rate) : 0),
      ipv6Prefix: s.ipv6Prefix ?? Defaults.ipv6SourcePrefix,
      ...(datagrams > 0 && { datagramsPerSecond: datagrams, datagramBurst: s.datagramBurst ?? Math.max(1, datagrams) }),
      ...(s.shared !== undefined && { shared: s.shared }),
    };
  });

const listenerTlsSchema = z
  .strictObject({
    mode: z.enum(['passthrough', 'terminate']),
    certificates: z.array(z.strictObject({ cert: filePath, key: filePath })).optional(),
  })
  .transform((t): NonNullable<ListenerConfig['tls']> => ({ mode: t.mode, certificates: t.certificates ?? [] }));

const routeSchema = z
  .strictObject({
    serverNames: z.array(serverName).min(1).optional(),
    alpn: z.array(alpnId).min(1).optional(),
    pool: z.string(),
  })
  .transform((r): RouteConfig => ({
    ...(r.serverNames !== undefined && { serverNames: r.serverNames }),
    ...(r.alpn !== undefined && { alpn: r.alpn }),
    pool: r.pool,
  }));

/** A listener's `faults:`: toxics in Toxiproxy's JSON shape (faults/toxics.ts), names unique. */
const faultsListSchema = z.array(z.unknown()).transform((list, ctx): ToxicSpec[] => {
  const out: ToxicSpec[] = [];
  list.forEach((raw, i) => {
    try {
      const t = parseToxic(raw);
      if (out.some((o) => o.name === t.name)) {
        ctx.addIssue({ code: 'custom', message: `duplicate toxic name "${t.name}" (name one of them)`, path: [i, 'name'], input: raw });
      } else out.push(t);
    } catch (err) {
      if (!(err instanceof ToxicError)) throw err;
      const path: PathSegment[] = [i, ...(err.field === '' ? [] : err.field.split('.'))];
      ctx.addIssue({ code: 'custom', message: err.message, path, input: raw });
    }
  });
  return out;
});

const listenerSchema = z
  .strictObject({
    name: name.optional(),
    listen: address({ listen: true }),
    protocol: z.enum(['tcp', 'udp']).optional(),
    udp: udpListenerSchema.optional(),
    pool: z.string().optional(),
    retries: count.optional(),
    maxConnections: count.optional(),
    overLimit: z.enum(['queue', 'reject']).optional(),
    timeouts: timeoutsSchema.optional(),
    acl: z.array(aclRuleSchema).optional(),
    aclDefault: z.enum(['allow', 'deny']).optional(),
    sourceLimits: sourceLimitsSchema.optional(),
    acceptProxy: z.strictObject({ trusted: z.array(cidr).min(1) }).optional(),
    tls: listenerTlsSchema.optional(),
    routes: z.array(routeSchema).optional(),
    faults: faultsListSchema.optional(),
  })
  .transform(
    (l): ListenerConfig => ({
      name: l.name ?? l.listen.text,
      host: l.listen.host,
      port: l.listen.port,
      ...(l.protocol === 'udp' && {
        protocol: 'udp' as const,
        udp: l.udp ?? { responses: Defaults.udpResponses, responseTimeoutMs: Defaults.udpResponseTimeoutMs, perDatagram: false },
      }),
      ...(l.pool !== undefined && { pool: l.pool }),
      timeouts: resolveTimeouts(l.timeouts, l.protocol === 'udp'),
      maxConnections: l.maxConnections ?? Defaults.maxConnections,
      overLimit: l.overLimit ?? Defaults.overLimit,
      ...(l.retries !== undefined && { retries: l.retries }),
      ...(l.acceptProxy !== undefined && { acceptProxy: { trusted: l.acceptProxy.trusted } }),
      acl: (l.acl ?? []).flat(),
      aclDefault: l.aclDefault ?? Defaults.aclDefault,
      ...(l.sourceLimits !== undefined && { sourceLimits: l.sourceLimits }),
      ...(l.tls !== undefined && { tls: l.tls }),
      routes: l.routes ?? [],
      ...(l.faults !== undefined && l.faults.length > 0 && { faults: l.faults }),
    }),
  );

// ---------------------------------------------------------------------------------------------
// Pool schemas.

const backendObjectSchema = z
  .strictObject(
    {
      address: address({ listen: false }),
      name: name.optional(),
      weight: z.number().positive().optional(),
      backup: z.boolean().optional(),
      state: z.enum(['enabled', 'draining', 'disabled']).optional(),
      maxConnections: count.optional(),
      check: z.boolean().optional(),
    },
    {
      error: (iss) =>
        iss.code === 'invalid_type'
          ? `expected an address ("HOST:PORT") or an object with an address, got ${describeValue(iss.input)}`
          : undefined,
    },
  )
  .transform(
    (b): BackendConfig => ({
      name: b.name ?? b.address.text,
      host: b.address.host,
      port: b.address.port,
      weight: b.weight ?? Defaults.weight,
      backup: b.backup ?? Defaults.backup,
      state: b.state ?? Defaults.backendState,
      maxConnections: b.maxConnections ?? Defaults.maxConnections,
      check: b.check ?? Defaults.backendCheck,
    }),
  );

/** `- 127.0.0.1:9001` is short for `- { address: 127.0.0.1:9001 }`. */
const backendSchema = z.preprocess((v) => (typeof v === 'string' ? { address: v } : v), backendObjectSchema);

const healthCheckSchema = z
  .strictObject({
    type: z.enum(['tcp', 'send-expect', 'udp']).optional(),
    interval: duration({ positive: true }).optional(),
    timeout: duration({ positive: true }).optional(),
    rise: positiveInt.optional(),
    fall: positiveInt.optional(),
    jitter: z.number().min(0).max(1).optional(),
    send: z.string().min(1).optional(),
    sendHex: hexBytes.optional(),
    expect: z.string().min(1).optional(),
    expectRegex: regexSource.optional(),
    expectHex: hexBytes.optional(),
  })
  .transform((h): ActiveHealthConfig => {
    const intervalMs = h.interval ?? Defaults.healthIntervalMs;
    const send =
      h.send !== undefined ? Buffer.from(h.send, 'utf8') : h.sendHex !== undefined ? Buffer.from(h.sendHex, 'hex') : undefined;
    const expect: ExpectMatcher | undefined =
      h.expect !== undefined
        ? { kind: 'substring', value: h.expect }
        : h.expectRegex !== undefined
          ? { kind: 'regex', value: h.expectRegex }
          : h.expectHex !== undefined
            ? { kind: 'hex', value: h.expectHex }
            : undefined;
    return {
      // Giving bytes to send or expect implies the check that uses them.
      type: h.type ?? (send !== undefined || expect !== undefined ? 'send-expect' : Defaults.healthType),
      intervalMs,
      timeoutMs: h.timeout ?? Math.min(Defaults.healthTimeoutMs, intervalMs),
      rise: h.rise ?? Defaults.healthRise,
      fall: h.fall ?? Defaults.healthFall,
      jitter: h.jitter ?? Defaults.healthJitter,
      ...(send !== undefined && { send }),
      ...(expect !== undefined && { expect }),
    };
  });

const passiveSchema = z
  .strictObject({
    consecutiveFailures: count.optional(),
    baseEjection: duration({ positive: true }).optional(),
    maxEjection: duration({ positive: true }).optional(),
  })
  .transform((p): PassiveHealthConfig => {
    const d = defaultPassive();
    return {
      consecutiveFailures: p.consecutiveFailures ?? d.consecutiveFailures,
      baseEjectionMs: p.baseEjection ?? d.baseEjectionMs,
      maxEjectionMs: p.maxEjection ?? d.maxEjectionMs,
    };
  });

const poolTlsSchema = z
  .strictObject({
    enabled: z.boolean().optional(),
    ca: filePath.optional(),
    insecureSkipVerify: z.boolean().optional(),
    servername: hostname.optional(),
  })
  .transform(
    (t): PoolTlsConfig => ({
      enabled: t.enabled ?? Defaults.poolTlsEnabled,
      ...(t.ca !== undefined && { ca: t.ca }),
      insecureSkipVerify: t.insecureSkipVerify ?? Defaults.insecureSkipVerify,
      ...(t.servername !== undefined && { servername: t.servername }),
    }),
  );

const dnsSchema = z
  .strictObject({
    name: hostname.optional(),
    port: z.number().int().min(1).max(65535).optional(),
    srv: hostname.optional(),
    resolvers: z.array(resolver).optional(),
    minTtl: duration().optional(),
    maxTtl: duration({ positive: true }).optional(),
    keepLastOnFailure: z.boolean().optional(),
    weight: z.number().positive().optional(),
  })
  .transform(
    (d): DnsDiscoveryConfig => ({
      ...(d.name !== undefined && { name: d.name }),
      ...(d.port !== undefined && { port: d.port }),
      ...(d.srv !== undefined && { srv: d.srv }),
      resolvers: d.resolvers ?? [],
      minTtlMs: d.minTtl ?? Defaults.dnsMinTtlMs,
      maxTtlMs: d.maxTtl ?? Defaults.dnsMaxTtlMs,
      keepLastOnFailure: d.keepLastOnFailure ?? Defaults.dnsKeepLastOnFailure,
      weight: d.weight ?? Defaults.dnsWeight,
    }),
  );

const mirrorSchema = z
  .strictObject({
    pool: z.string(),
    percent: z.number().min(0).max(100),
    bufferSize: size({ min: 1024, max: MAX_MIRROR_BUFFER_BYTES }).optional(),
  })
  .transform((m): MirrorConfig => ({ pool: m.pool, percent: m.percent, bufferSize: m.bufferSize ?? Defaults.mirrorBufferSize }));

const retryOnEmptyResponseSchema = z
  .strictObject({ maxBytes: size({ min: 1, max: MAX_REPLAY_BYTES }).optional() })
  .transform((r): RetryOnEmptyResponseConfig => ({ maxBytes: r.maxBytes ?? Defaults.replayMaxBytes }));

const poolSchema = z
  .strictObject({
    name,
    balance: z
      .enum(BALANCER_NAMES, {
        error: (iss) =>
          typeof iss.input === 'string'
            ? `must be one of ${BALANCER_NAMES.join(', ')}, got ${describeValue(iss.input)}${balanceHint(iss.input)}`
            : undefined,
      })
      .optional(),
    hashKey: z.enum(['source-ip', 'source-ip-port']).optional(),
    slowStart: duration().optional(),
    proxyProtocol: z.enum(['v1', 'v2']).optional(),
    queue: z.strictObject({ size: count.optional(), timeout: duration({ positive: true }).optional() }).optional(),
    tls: poolTlsSchema.optional(),
    healthCheck: healthCheckSchema.optional(),
    passive: passiveSchema.optional(),
    backends: z.array(backendSchema).optional(),
    dns: dnsSchema.optional(),
    mirror: mirrorSchema.optional(),
    retryOnEmptyResponse: retryOnEmptyResponseSchema.optional(),
  })
  .transform(
    (p): PoolConfig => ({
      name: p.name,
      balance: p.balance ?? Defaults.balance,
      hashKey: p.hashKey ?? Defaults.hashKey,
      backends: p.backends ?? [],
      ...(p.dns !== undefined && { dns: p.dns }),
      ...(p.healthCheck !== undefined && { healthCheck: p.healthCheck }),
      passive: p.passive ?? defaultPassive(),
      slowStartMs: p.slowStart ?? Defaults.slowStartMs,
      ...(p.proxyProtocol !== undefined && { proxyProtocol: p.proxyProtocol }),
      queue: { size: p.queue?.size ?? Defaults.queueSize, timeoutMs: p.queue?.timeout ?? Defaults.queueTimeoutMs },
      ...(p.tls !== undefined && { tls: p.tls }),
      ...(p.mirror !== undefined && { mirror: p.mirror }),
      ...(p.retryOnEmptyResponse !== undefined && { retryOnEmptyResponse: p.retryOnEmptyResponse }),
    }),
  );

// ---------------------------------------------------------------------------------------------
// Top level.

const adminSchema = z
  .strictObject({
    listen: address({ listen: true }),
    // Empty means no token, so that `${L4LB_ADMIN_TOKEN:-}` makes one optional.
    token: z.string().optional(),
    persist: z.boolean().optional(),
  })
  .transform(
    (a): AdminConfig => ({
      host: a.listen.host,
      port: a.listen.port,
      ...(a.token !== undefined && a.token !== '' && { token: a.token }),
      persist: a.persist ?? Defaults.adminPersist,
    }),
  );

const faultsSchema = z
  .strictObject({
    api: address({ listen: true }),
    // Empty means no token, as admin.token.
    token: z.string().optional(),
  })
  .transform(
    (f): FaultsConfig => ({
      host: f.api.host,
      port: f.api.port,
      ...(f.token !== undefined && f.token !== '' && { token: f.token }),
    }),
  );

const workersSchema = z.union([z.literal('auto'), z.number().int().min(1).max(MAX_WORKERS)]);

/** Access log target: `stderr`, `off`, or a file path. */
const accessLog = z
  .string()
  .min(1)
  .refine((s) => s !== 'stdout', { error: 'stdout carries the "listening on" lines: use stderr, off or a file path' });

/** The whole raw config file; parsing a valid input yields the resolved {@link Config}. */
export const configSchema = z
  .strictObject({
    workers: workersSchema.optional(),
    maxConnections: count.optional(),
    shutdown: z
      .strictObject({ drainTimeout: duration().optional(), closeSpread: duration().optional() })
      .optional(),
    log: z.strictObject({ level: z.enum(LOG_LEVELS).optional(), access: accessLog.optional() }).optional(),
    admin: adminSchema.optional(),
    faults: faultsSchema.optional(),
    listeners: z.array(listenerSchema).min(1),
    pools: z.array(poolSchema).min(1),
  })
  .transform(
    (c): Config => ({
      listeners: c.listeners,
      pools: c.pools,
      ...(c.admin !== undefined && { admin: c.admin }),
      ...(c.faults !== undefined && { faults: c.faults }),
      workers: c.workers === 'auto' ? availableParallelism() : (c.workers ?? Defaults.workers),
      maxConnections: c.maxConnections ?? Defaults.maxConnections,
      shutdown: {
        drainTimeoutMs: c.shutdown?.drainTimeout ?? Defaults.drainTimeoutMs,
        closeSpreadMs: c.shutdown?.closeSpread ?? Defaults.closeSpreadMs,
      },
      log: { level: c.log?.level ?? Defaults.logLevel, access: c.log?.access ?? Defaults.accessLog },
    }),
  );

/** The raw input the file format accepts (before defaults). */
export type RawConfig = z.input<typeof configSchema>;

// ---------------------------------------------------------------------------------------------
// zod issues → our messages.

const TYPE_WORDS: Record<string, string> = {
  number: 'a number',
  int: 'an integer',
  string: 'a string',
  boolean: 'true or false',
  object: 'an object (key: value pairs)',
  array: 'a list',
};

/** Marks the known-keys payload an unrecognized_keys message carries to {@link zodIssuesToSchemaIssues}. */
const KNOWN_KEYS_PREFIX = '\u0000known-keys:';

/**
 * The message for a number the parser could not hold: `1e309` reads as Infinity (YAML and
 * JSON alike), and saying "expected a number" about it would puzzle anyone.
 */
export function outOfRange(v: number): string {
  return Number.isNaN(v)
    ? 'expected a number, got NaN (not a number)'
    : `number out of range: it is too large to represent (reads as ${v > 0 ? '' : '-'}Infinity); use a finite number`;
}

/** zod's per-parse error map: turns raw issues into messages written for users. */
export function zodErrorMessage(iss: z.core.$ZodRawIssue): string | undefined {
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return 'required';
      if (typeof iss.input === 'number' && !Number.isFinite(iss.input)) return outOfRange(iss.input);
      return `expected ${TYPE_WORDS[iss.expected] ?? iss.expected}, got ${describeValue(iss.input)}`;
    case 'invalid_value': {
      const values = iss.values.map((v) => String(v));
      const got = typeof iss.input === 'string' ? iss.input : undefined;
      return `must be ${values.length === 1 ? JSON.stringify(iss.values[0]) : `one of ${values.join(', ')}`}, got ${describeValue(iss.input)}${got !== undefined ? didYouMean(got, values) : ''}`;
    }
    case 'too_small': {
      const n = Number(iss.minimum);
      if (iss.origin === 'array' || iss.origin === 'set') return `must have at least ${n} ${n === 1 ? 'entry' : 'entries'}`;
      if (iss.origin === 'string') return n === 1 ? 'must not be empty' : `must be at least ${n} characters long`;
      return iss.inclusive ? `must be at least ${n}, got ${describeValue(iss.input)}` : `must be greater than ${n}, got ${describeValue(iss.input)}`;
    }
    case 'too_big': {
      const n = Number(iss.maximum);
      if (iss.origin === 'array' || iss.origin === 'set') return `must have at most ${n} entries`;
      if (iss.origin === 'string') return `must be at most ${n} characters long`;
      return iss.inclusive ? `must be at most ${n}, got ${describeValue(iss.input)}` : `must be less than ${n}, got ${describeValue(iss.input)}`;
    }
    case 'unrecognized_keys': {
      const def = (iss.inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def;
      return KNOWN_KEYS_PREFIX + JSON.stringify(Object.keys(def?.shape ?? {}));
    }
    case 'invalid_union':
      // Only `workers` is a union: 'auto' or a count.
      return `expected "auto" or a whole number from 1 to ${MAX_WORKERS}, got ${describeValue(iss.input)}`;
    case 'invalid_format':
      return `invalid format, got ${describeValue(iss.input)}`;
    default:
      return undefined;
  }
}

/** Converts zod's final issues to {@link SchemaIssue}s, one per unknown key. */
export function zodIssuesToSchemaIssues(issues: readonly z.core.$ZodIssue[]): SchemaIssue[] {
  const out: SchemaIssue[] = [];
  for (const iss of issues) {
    const path = iss.path.map((p) => (typeof p === 'number' ? p : String(p)));
    if (iss.code === 'unrecognized_keys') {
      const known: string[] = iss.message.startsWith(KNOWN_KEYS_PREFIX)
        ? (JSON.parse(iss.message.slice(KNOWN_KEYS_PREFIX.length)) as string[])
        : [];
      for (const key of iss.keys) {
        const hint = known.length > 0 ? didYouMean(key, known) || `; allowed keys: ${known.join(', ')}` : '';
        out.push({ path: [...path, key], message: `unknown key "${key}"${hint}` });
      }
    } else {
      out.push({ path, message: iss.message });
    }
  }
  return out;
}

/** Runs the schema: the resolved config, or the issues it found. */
export function parseWithSchema(raw: unknown): { config: Config; issues: [] } | { config?: undefined; issues: SchemaIssue[] } {
  const r = configSchema.safeParse(raw, { error: zodErrorMessage });
  if (r.success) return { config: r.data, issues: [] };
  return { issues: zodIssuesToSchemaIssues(r.error.issues) };
}

// ---------------------------------------------------------------------------------------------
// Rules that span several values. They read the raw input defensively: a value of the wrong
// type is the schema's to report, so a rule skips it.

type Rec = Record<string, unknown>;

function isRec(v: unknown): v is Rec {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function list(v: unknown): unknown[] {
  return Array.isArray(v) ? v : [];
}

function has(o: Rec, key: string): boolean {
  return o[key] !== undefined;
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : undefined;
}

function durationOr(v: unknown, fallback: number): number | undefined {
  if (v === undefined) return fallback;
  const r = parseDurationValue(v);
  return typeof r === 'number' ? r : undefined;
}

/** Formats a path the way messages show it: `pools[1].backends[0].address`. */
export function formatPath(path: readonly PathSegment[]): string {
  let s = '';
  for (const seg of path) {
    if (typeof seg === 'number') s += `[${seg}]`;
    else if (/^[A-Za-z_$][\w$-]*$/.test(seg)) s += s === '' ? seg : `.${seg}`;
    else s += `[${JSON.stringify(seg)}]`;
  }
  return s;
}

/** Where a listen address may clash with another: `any` binds every family. */
function bindScope(host: string): 'any' | 'ipv4-any' | 'ipv6-any' | 'one' {
  if (host === '' || host === '::') return 'any';
  if (host === '0.0.0.0') return 'ipv4-any';
  return 'one';
}

/** TCP and UDP have separate port spaces: only listeners of one protocol can clash. */
interface Bound extends HostPort {
  udp: boolean;
}

function listenClash(a: Bound, b: Bound): boolean {
  if (a.port === 0 || b.port !== a.port || a.udp !== b.udp) return false;
  const sa = bindScope(a.host);
  const sb = bindScope(b.host);
  if (sa === 'any' || sb === 'any') return true;
  if (sa === 'ipv4-any') return isIP(b.host) !== 6;
  if (sb === 'ipv4-any') return isIP(a.host) !== 6;
  return a.host.toLowerCase() === b.host.toLowerCase();
}

function parsedListen(v: unknown): HostPort | undefined {
  if (typeof v !== 'string') return undefined;
  const r = parseHostPort(v, { allowEmptyHost: true, allowPortZero: true });
  return 'error' in r ? undefined : r;
}

/** Checks everything that involves more than one value; see the module comment. */
export function checkConfigRules(raw: unknown): SchemaIssue[] {
  const issues: SchemaIssue[] = [];
  const add = (path: PathSegment[], message: string): void => {
    issues.push({ path, message });
  };
  if (!isRec(raw)) return issues;

  const poolNames = new Map<string, number>();
  list(raw.pools).forEach((pool, i) => {
    if (!isRec(pool)) return;
    const at: PathSegment[] = ['pools', i];
    const poolName = str(pool.name);
    if (poolName !== undefined) {
      const first = poolNames.get(poolName);
      if (first !== undefined) add([...at, 'name'], `duplicate pool name "${poolName}" (also used by pools[${first}])`);
      else poolNames.set(poolName, i);
    }
    checkPoolBackends(pool, at, add);
    if (isRec(pool.healthCheck)) checkHealth(pool.healthCheck, [...at, 'healthCheck'], add);
    if (isRec(pool.passive)) checkPassive(pool.passive, [...at, 'passive'], add);
    if (isRec(pool.dns)) checkDns(pool.dns, [...at, 'dns'], add);
  });
  const knownPools = [...poolNames.keys()];
  list(raw.pools).forEach((pool, i) => {
    if (isRec(pool) && isRec(pool.mirror)) checkMirror(pool, ['pools', i, 'mirror'], knownPools, poolNames, add);
  });

  const listenerNames = new Map<string, number>();
  const listens: Array<{ addr: Bound; where: string; text: string }> = [];
  list(raw.listeners).forEach((listener, i) => {
    if (!isRec(listener)) return;
    const at: PathSegment[] = ['listeners', i];
    const parsed = parsedListen(listener.listen);
    const addr = parsed && { ...parsed, udp: listener.protocol === 'udp' };
    const explicitName = str(listener.name);
    const effectiveName = explicitName ?? str(listener.listen)?.trim();
    if (effectiveName !== undefined) {
      const first = listenerNames.get(effectiveName);
      // Two unnamed listeners on one address are reported as a clashing address below.
      if (first !== undefined && explicitName !== undefined) {
        add([...at, 'name'], `duplicate listener name "${effectiveName}" (also used by listeners[${first}])`);
      } else if (first === undefined) listenerNames.set(effectiveName, i);
    }
    if (addr !== undefined) {
      const clash = listens.find((l) => listenClash(l.addr, addr));
      if (clash !== undefined) {
        add([...at, 'listen'], `listen address "${String(listener.listen)}" clashes with ${clash.where} ("${clash.text}")`);
      }
      listens.push({ addr, where: formatPath(at), text: String(listener.listen) });
    }
    checkListener(listener, at, knownPools, poolNames, add);
    if (listener.protocol === 'udp') checkUdpListener(listener, at, list(raw.pools), poolNames, add);
    else {
      if (has(listener, 'udp')) add([...at, 'udp'], 'needs protocol: udp');
      if (isRec(listener.sourceLimits)) {
        for (const k of ['datagramsPerSecond', 'datagramBurst']) {
          if (has(listener.sourceLimits, k)) add([...at, 'sourceLimits', k], 'applies to protocol: udp listeners only');
        }
      }
    }
  });

  const manyWorkers = raw.workers === 'auto' || (typeof raw.workers === 'number' && raw.workers > 1);
  if (manyWorkers) {
    // Toxics act on one process's connections and the API changes one process's listeners.
    if (isRec(raw.faults)) add(['faults'], 'the fault API runs with one process for now: remove workers (or set workers: 1)');
    list(raw.listeners).forEach((l, i) => {
      if (isRec(l) && Array.isArray(l.faults) && l.faults.length > 0) {
        add(['listeners', i, 'faults'], 'faults run with one process for now: remove workers (or set workers: 1)');
      }
    });
  }
  list(raw.listeners).forEach((l, i) => {
    if (isRec(l) && l.protocol === 'udp' && has(l, 'faults')) add(['listeners', i, 'faults'], 'applies to TCP listeners only');
  });
  if (isRec(raw.faults)) {
    const parsed = parsedListen(raw.faults.api);
    const addr = parsed && { ...parsed, udp: false };
    if (addr !== undefined) {
      const clash = listens.find((l) => listenClash(l.addr, addr));
      if (clash !== undefined) add(['faults', 'api'], `fault API address "${String(raw.faults.api)}" clashes with ${clash.where} ("${clash.text}")`);
      const admin = isRec(raw.admin) ? parsedListen(raw.admin.listen) : undefined;
      if (admin !== undefined && listenClash({ ...admin, udp: false }, addr)) {
        add(['faults', 'api'], `fault API address "${String(raw.faults.api)}" clashes with admin.listen ("${String((raw.admin as Rec).listen)}")`);
      }
      if (!isLoopbackHost(addr.host) && (raw.faults.token === undefined || raw.faults.token === '')) {
        add(['faults', 'token'], 'required when faults.api is not a loopback address');
      }
    }
  }

  if (isRec(raw.admin)) {
    const parsedAdmin = parsedListen(raw.admin.listen);
    const addr = parsedAdmin && { ...parsedAdmin, udp: false };
    if (addr !== undefined) {
      const clash = listens.find((l) => listenClash(l.addr, addr));
      if (clash !== undefined) {
        add(['admin', 'listen'], `admin address "${String(raw.admin.listen)}" clashes with ${clash.where} ("${clash.text}")`);
      }
      if (!isLoopbackHost(addr.host) && (raw.admin.token === undefined || raw.admin.token === '')) {
        add(['admin', 'token'], 'required when admin.listen is not a loopback address');
      }
    }
  }
  return issues;
}

type Add = (path: PathSegment[], message: string) => void;

function checkPoolBackends(pool: Rec, at: PathSegment[], add: Add): void {
  const backends = pool.backends;
  const hasBackends = Array.isArray(backends) && backends.length > 0;
  // A backends value that is not a list is the schema's to report.
  if ((backends === undefined || Array.isArray(backends)) && !hasBackends && pool.dns === undefined) {
    add(
      backends === undefined ? at : [...at, 'backends'],
      'the pool is empty: list backends, or discover them with dns',
    );
  }
  if (hasBackends && pool.dns !== undefined) add([...at, 'dns'], 'use either backends or dns in a pool, not both');
  const names = new Map<string, number>();
  list(backends).forEach((b, j) => {
    let backendName: string | undefined;
    let where: PathSegment[];
    if (typeof b === 'string') {
      backendName = b.trim();
      where = [...at, 'backends', j];
    } else if (isRec(b)) {
      backendName = str(b.name) ?? str(b.address)?.trim();
      where = [...at, 'backends', j, has(b, 'name') ? 'name' : 'address'];
    } else return;
    if (backendName === undefined) return;
    const first = names.get(backendName);
    if (first !== undefined) {
      add(where, `duplicate backend name "${backendName}" in this pool (also used by backends[${first}]; give one a distinct name)`);
    } else names.set(backendName, j);
  });
}

function checkHealth(hc: Rec, at: PathSegment[], add: Add): void {
  if (has(hc, 'send') && has(hc, 'sendHex')) add([...at, 'sendHex'], 'use either send or sendHex, not both');
  const expects = ['expect', 'expectRegex', 'expectHex'].filter((k) => has(hc, k));
  if (expects.length > 1) add([...at, expects[1]], `use only one of expect, expectRegex, expectHex (got ${expects.join(' and ')})`);
  const payload = ['send', 'sendHex', ...expects].filter((k) => has(hc, k));
  if (hc.type === 'tcp' && payload.length > 0) {
    add([...at, payload[0]], `${payload[0]} needs type: send-expect (a tcp check only connects)`);
  }
  if (hc.type === 'send-expect' && payload.length === 0) {
    add([...at, 'type'], 'send-expect needs send or sendHex, and/or expect, expectRegex or expectHex');
  }
  if (hc.type === 'udp' && !has(hc, 'send') && !has(hc, 'sendHex')) {
    add([...at, 'type'], 'a udp check needs send or sendHex: the datagram it sends (e.g. a DNS query in hex)');
  }
  const interval = durationOr(hc.interval, Defaults.healthIntervalMs);
  if (has(hc, 'timeout') && interval !== undefined) {
    const timeout = durationOr(hc.timeout, 0);
    if (timeout !== undefined && timeout > interval) {
      add([...at, 'timeout'], `timeout (${timeout}ms) must not exceed interval (${interval}ms)`);
    }
  }
}

function checkPassive(p: Rec, at: PathSegment[], add: Add): void {
  const base = durationOr(p.baseEjection, Defaults.passiveBaseEjectionMs);
  const max = durationOr(p.maxEjection, Defaults.passiveMaxEjectionMs);
  if (base !== undefined && max !== undefined && max < base && (has(p, 'baseEjection') || has(p, 'maxEjection'))) {
    add(
      [...at, has(p, 'maxEjection') ? 'maxEjection' : 'baseEjection'],
      `maxEjection (${max}ms) must not be less than baseEjection (${base}ms)`,
    );
  }
}

function checkDns(d: Rec, at: PathSegment[], add: Add): void {
  if (has(d, 'name') && has(d, 'srv')) add([...at, 'srv'], 'use either name (A/AAAA) or srv, not both');
  else if (!has(d, 'name') && !has(d, 'srv')) add(at, 'needs name (with port) for A/AAAA records, or srv for SRV records');
  if (has(d, 'name') && !has(d, 'port')) add([...at, 'port'], 'required with dns.name (A/AAAA records carry no port)');
  if (has(d, 'srv') && has(d, 'port')) add([...at, 'port'], 'not allowed with dns.srv (SRV records carry the port)');
  const min = durationOr(d.minTtl, Defaults.dnsMinTtlMs);
  const max = durationOr(d.maxTtl, Defaults.dnsMaxTtlMs);
  if (min !== undefined && max !== undefined && min > max && (has(d, 'minTtl') || has(d, 'maxTtl'))) {
    add([...at, has(d, 'minTtl') ? 'minTtl' : 'maxTtl'], `minTtl (${min}ms) must not exceed maxTtl (${max}ms)`);
  }
}

function poolRef(v: unknown, path: PathSegment[], known: string[], poolNames: Map<string, number>, add: Add): void {
  const ref = str(v);
  if (ref === undefined || poolNames.has(ref)) return;
  const hint = didYouMean(ref, known) || (known.length > 0 ? ` (pools: ${known.join(', ')})` : '');
  add(path, `unknown pool "${ref}"${hint}`);
}

/** A mirror names another pool: one that exists, and not the pool itself. */
function checkMirror(pool: Rec, at: PathSegment[], known: string[], poolNames: Map<string, number>, add: Add): void {
  const m = pool.mirror as Rec;
  const target = str(m.pool);
  if (target === undefined) return;
  if (target === str(pool.name)) {
    add([...at, 'pool'], `a pool cannot mirror to itself ("${target}"): name another pool (the shadow one)`);
    return;
  }
  poolRef(target, [...at, 'pool'], known, poolNames, add);
}

function checkListener(l: Rec, at: PathSegment[], known: string[], poolNames: Map<string, number>, add: Add): void {
  poolRef(l.pool, [...at, 'pool'], known, poolNames, add);
  const routes = list(l.routes);
  routes.forEach((r, j) => {
    if (!isRec(r)) return;
    const rat = [...at, 'routes', j];
    poolRef(r.pool, [...rat, 'pool'], known, poolNames, add);
    if (isRec(l.tls) && l.tls.mode === 'terminate' && Array.isArray(r.alpn) && r.alpn.length > 0) {
      // l4lb negotiates no ALPN protocol when it terminates TLS, so such a route never matches.
      add([...rat, 'alpn'], 'ALPN routes work only with tls mode: passthrough (a terminating listener negotiates no ALPN)');
    }
  });
  if (!has(l, 'pool') && routes.length === 0) add(at, 'needs a pool (or routes)');
  if (routes.length > 0 && !isRec(l.tls)) {
    add([...at, 'routes'], 'routes match on the TLS ClientHello: add tls: { mode: passthrough } (or terminate)');
  }
  if (isRec(l.tls)) {
    const certs = l.tls.certificates;
    if (l.tls.mode === 'terminate' && (!Array.isArray(certs) || certs.length === 0)) {
      add([...at, 'tls', 'certificates'], 'required with mode: terminate (at least one {cert, key})');
    }
    if (l.tls.mode === 'passthrough' && Array.isArray(certs) && certs.length > 0) {
      add([...at, 'tls', 'certificates'], 'not used with mode: passthrough (TLS goes through untouched)');
    }
  }
  list(l.acl).forEach((rule, j) => {
    if (!isRec(rule)) return;
    if (has(rule, 'allow') === has(rule, 'deny')) {
      add([...at, 'acl', j], 'each rule is either { allow: CIDR } or { deny: CIDR }');
    }
  });
  if (isRec(l.sourceLimits) && has(l.sourceLimits, 'burst') && !(typeof l.sourceLimits.ratePerSecond === 'number' && l.sourceLimits.ratePerSecond > 0)) {
    add([...at, 'sourceLimits', 'burst'], 'needs ratePerSecond');
  }
}

/** What a UDP listener cannot use, and what its pool must not do (docs/configuration.md, UDP). */
function checkUdpListener(l: Rec, at: PathSegment[], pools: unknown[], poolNames: Map<string, number>, add: Add): void {
  const tcpOnly: Array<[string, string]> = [
    ['tls', 'TLS runs over TCP; DTLS is not supported'],
    ['routes', 'routes match on a TLS ClientHello, which UDP does not carry'],
    ['acceptProxy', 'l4lb does not read PROXY headers on UDP'],
  ];
  for (const [key, why] of tcpOnly) if (has(l, key)) add([...at, key], `not allowed with protocol: udp (${why})`);
  if (l.overLimit === 'queue') {
    add([...at, 'overLimit'], 'not allowed with protocol: udp: a datagram over a limit is dropped, never queued (use reject or leave it out)');
  }
  if (isRec(l.udp) && l.udp.perDatagram === true && typeof l.udp.responses === 'number' && l.udp.responses > 0) {
    add([...at, 'udp', 'responses'], 'perDatagram expects no reply: leave responses out');
  }
  if (isRec(l.sourceLimits) && has(l.sourceLimits, 'datagramBurst') && !(typeof l.sourceLimits.datagramsPerSecond === 'number' && l.sourceLimits.datagramsPerSecond > 0)) {
    add([...at, 'sourceLimits', 'datagramBurst'], 'needs datagramsPerSecond');
  }
  const poolName = str(l.pool);
  const idx = poolName === undefined ? undefined : poolNames.get(poolName);
  const pool = idx === undefined ? undefined : pools[idx];
  if (!isRec(pool)) return;
  if (has(pool, 'proxyProtocol')) {
    add([...at, 'pool'], `pool "${poolName}" sends a PROXY header (pools[${idx}].proxyProtocol), which l4lb does not send over UDP`);
  }
  if (has(pool, 'tls')) add([...at, 'pool'], `pool "${poolName}" originates TLS (pools[${idx}].tls), which UDP cannot carry`);
  for (const key of ['mirror', 'retryOnEmptyResponse']) {
    if (has(pool, key)) add([...at, 'pool'], `pool "${poolName}" sets ${key} (pools[${idx}].${key}), which applies to TCP connections only`);
  }
}
