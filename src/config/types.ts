/**
 * @module config/types — the resolved configuration l4lb runs on.
 *
 * The loader (config/load.ts) turns YAML/JSON/CLI input into this shape: every default
 * filled in, every duration in milliseconds, every size in bytes, every address parsed.
 * The runtime reads only this shape, never raw user input.
 */
import type { ToxicSpec } from '../faults/toxics.js';

/**
 * The balancing algorithms, in the order the docs list them: the one list of their names. The
 * schema accepts these, and src/balancers/index.ts maps each to its factory (the compiler
 * rejects a name without one).
 */
export const BALANCER_NAMES = Object.freeze([
  'round-robin',
  'weighted-round-robin',
  'least-connections',
  'random',
  'power-of-two-choices',
  'source-ip-hash',
  'maglev',
] as const);

/** Name of a balancing algorithm. */
export type BalancerName = (typeof BALANCER_NAMES)[number];

/** Administrative state of a backend, set by config or the admin API. */
export type AdminState = 'enabled' | 'draining' | 'disabled';

export interface BackendConfig {
  /** Unique within its pool; defaults to the address as written. */
  name: string;
  host: string;
  port: number;
  /** Relative weight, > 0. Default 1. */
  weight: number;
  /** Used only when every primary backend is down. Default false. */
  backup: boolean;
  /** Default 'enabled'. */
  state: AdminState;
  /** Per-backend connection cap (HAProxy `maxconn`); 0 = unlimited. Default 0. */
  maxConnections: number;
  /**
   * Whether the pool's active health check probes this backend (HAProxy's `check` on a
   * server). Unchecked backends count as healthy; passive ejection still applies. Default true.
   */
  check: boolean;
}

export type ExpectMatcher =
  | { kind: 'substring'; value: string }
  | { kind: 'regex'; value: string }
  | { kind: 'hex'; value: string };

export interface ActiveHealthConfig {
  /**
   * `tcp`: a connect is success. `send-expect`: send bytes, expect a reply.
   * `udp`: send one datagram, expect one back (and, with `expect`, that it matches).
   */
  type: 'tcp' | 'send-expect' | 'udp';
  /** Default 2s (HAProxy `inter`). */
  intervalMs: number;
  /** Default 1s... capped by interval. */
  timeoutMs: number;
  /** Consecutive successes to mark up. Default 2. */
  rise: number;
  /** Consecutive failures to mark down. Default 3. */
  fall: number;
  /** Random spread of each interval, 0..1 of it. Default 0.1. */
  jitter: number;
  /** Bytes to send for send-expect (from `send` string or `sendHex`). */
  send?: Buffer;
  expect?: ExpectMatcher;
}

export interface PassiveHealthConfig {
  /** Consecutive connect failures that eject a backend; 0 disables. Default 5 (Envoy). */
  consecutiveFailures: number;
  /** First ejection time; doubles per consecutive ejection. Default 30s (Envoy). */
  baseEjectionMs: number;
  /** Cap for the growing ejection time. Default 300s (Envoy). */
  maxEjectionMs: number;
}

export interface DnsDiscoveryConfig {
  /** A/AAAA lookup of `name`, with `port`; or SRV lookup of `srv`. */
  name?: string;
  port?: number;
  srv?: string;
  /** `host:port` of DNS servers; empty = the system's. */
  resolvers: string[];
  /** Clamp for the record TTL. Defaults 1s / 300s. */
  minTtlMs: number;
  maxTtlMs: number;
  /** Keep the last good set on failure/NXDOMAIN. Default true. */
  keepLastOnFailure: boolean;
  /** Weight for A/AAAA backends. Default 1. */
  weight: number;
}

export interface PoolTlsConfig {
  /** Originate TLS towards the backends. */
  enabled: boolean;
  /** PEM CA bundle path used to verify the backend; undefined = system CAs. */
  ca?: string;
  /** Skip verification; only when explicitly set. Default false. */
  insecureSkipVerify: boolean;
  /** SNI to send; default: backend host when it is a name. */
  servername?: string;
}

export interface PoolConfig {
  name: string;
  balance: BalancerName;
  /** Key for hash balancers. Default 'source-ip'. */
  hashKey: 'source-ip' | 'source-ip-port';
  backends: BackendConfig[];
  dns?: DnsDiscoveryConfig;
  healthCheck?: ActiveHealthConfig;
  passive: PassiveHealthConfig;
  /** Ramp weight from 10% to 100% over this time after a backend comes up; 0 = off. */
  slowStartMs: number;
  /** Send a PROXY protocol header to backends. */
  proxyProtocol?: 'v1' | 'v2';
  /** Queue for backends at maxConnections: max waiting clients (0 = no queue) and timeout. */
  queue: { size: number; timeoutMs: number };
  tls?: PoolTlsConfig;
  /** Copy the client bytes of a share of connections to a backend of another pool (docs/mirroring.md). */
  mirror?: MirrorConfig;
  /** Replay the first client bytes to another backend when one closes before answering (docs/mirroring.md). */
  retryOnEmptyResponse?: RetryOnEmptyResponseConfig;
}

/** `mirror` on a pool: where the copy goes, for which share of connections, with how much buffer. */
export interface MirrorConfig {
  /** The pool whose backends receive the copy (its own balancer, health and limits). */
  pool: string;
  /** Share of connections mirrored, 0-100 (0 = none). */
  percent: number;
  /** Client bytes waiting for a slow mirror before it is dropped. Default 1 MiB. */
  bufferSize: number;
}

/** `retryOnEmptyResponse` on a pool. */
export interface RetryOnEmptyResponseConfig {
  /** Client bytes kept until the backend's first byte; more and nothing is replayed. Default 16 KiB, at most 1 MiB. */
  maxBytes: number;
}

export interface TimeoutsConfig {
  /** Backend connect timeout, per attempt. Default 5s. */
  connectMs: number;
  /** No bytes either way; 0 disables. Default 10m (UDP sessions: 30s, no datagram either way). */
  idleMs: number;
  /** A half-closed connection lingering (client sent FIN). Default 30s. */
  clientFinMs: number;
  /** A half-closed connection lingering (server sent FIN). Default 30s. */
  serverFinMs: number;
  /** Maximum connection lifetime; 0 = off (default). */
  maxLifetimeMs: number;
  /** Time to receive a PROXY header or TLS ClientHello. Default 10s. */
  prereadMs: number;
}

export interface AclRule {
  action: 'allow' | 'deny';
  /** CIDR (`10.0.0.0/8`, `::1/128`) or a single address. */
  cidr: string;
}

export interface SourceLimitsConfig {
  /** Concurrent connections per source; 0 = unlimited. */
  maxConnections: number;
  /** New connections per second per source (token bucket rate); 0 = unlimited. */
  ratePerSecond: number;
  /** Token bucket size. Default = ratePerSecond. */
  burst: number;
  /** IPv6 sources are grouped by this prefix length. Default 64. */
  ipv6Prefix: number;
  /** UDP listeners: datagrams per second per source (token bucket rate); absent = unlimited. */
  datagramsPerSecond?: number;
  /** Token bucket size for datagrams. Default = datagramsPerSecond (at least 1). */
  datagramBurst?: number;
  /** Count the limits across processes and instances in a shared store (Redis); absent = per process. */
  shared?: SharedSourceLimitsConfig;
}

/** `sourceLimits.shared`: the store every worker of every instance counts in (docs/deployment.md). */
export interface SharedSourceLimitsConfig {
  /** `redis://[user:pass@]host:port/db` or `rediss://` (TLS). */
  redis: string;
  /** Prefix of every key l4lb writes. Default `l4lb:`. */
  prefix: string;
  /** A store that does not answer within this is away. Default 50ms. */
  timeoutMs: number;
  /** While the store is away: `open` applies the local limits, `closed` refuses limited connections. Default open. */
  onStoreFailure: 'open' | 'closed';
  /** Concurrency leases of a process that stops renewing them (crashed) stop counting after this. Default 10s. */
  leaseTtlMs: number;
  /** Rate tokens (and spare connection slots) a process takes from the store at once per source. Default: burst / 10, 1-10. */
  leaseSize: number | undefined;
}

/** What a UDP listener does besides the common listener settings (docs/configuration.md). */
export interface UdpListenerConfig {
  /**
   * Replies expected to each client datagram (nginx `proxy_responses`): the session ends once
   * every datagram forwarded has had that many; 0 = any number, the session ends by idle
   * timeout. 1 suits DNS. Default 0.
   */
  responses: number;
  /**
   * With `responses` > 0: a session that gets no reply this long after a datagram went out
   * ends, and counts as a passive-health failure of its backend. Default 5s.
   */
  responseTimeoutMs: number;
  /** A backend per datagram, no reply expected, no session state (syslog, statsd). Default false. */
  perDatagram: boolean;
}

export interface TlsCertConfig {
  cert: string;
  key: string;
}

export interface RouteConfig {
  /** Server names: exact, or `*.example.com`; matched case-insensitively. */
  serverNames?: string[];
  alpn?: string[];
  pool: string;
}

export interface ListenerConfig {
  name: string;
  /** `udp` for a UDP listener; absent for TCP (the default), so TCP configs read as before. */
  protocol?: 'udp';
  /** UDP settings; present exactly when protocol is `udp`. */
  udp?: UdpListenerConfig;
  /** '' = all interfaces. */
  host: string;
  port: number;
  /** Default pool. Optional only when routes cover every case. */
  pool?: string;
  timeouts: TimeoutsConfig;
  /** Maximum concurrent connections on this listener; 0 = unlimited. */
  maxConnections: number;
  /** Beyond maxConnections: 'queue' leaves them in the kernel backlog, 'reject' closes them. */
  overLimit: 'queue' | 'reject';
  /** Other backends to try after a failed connect (attempts = 1 + retries, at most the pool size). Default 3. */
  retries?: number;
  /** Accept a PROXY header (v1 or v2, auto-detected) from these trusted CIDRs. */
  acceptProxy?: { trusted: string[] };
  /** Ordered allow/deny list; first match wins. Default action when none matches: allow. */
  acl: AclRule[];
  aclDefault: 'allow' | 'deny';
  sourceLimits?: SourceLimitsConfig;
  /** TLS: `passthrough` peeks the ClientHello for SNI routing; `terminate` decrypts. */
  tls?: { mode: 'passthrough' | 'terminate'; certificates: TlsCertConfig[] };
  routes: RouteConfig[];
  /** Toxics injected into this listener's connections (docs/faults.md); absent = none. */
  faults?: ToxicSpec[];
}

export interface AdminConfig {
  host: string;
  port: number;
  /** Bearer token; required when host is not loopback. */
  token?: string;
  /** Write admin changes back to the config file. Default false. */
  persist: boolean;
}

/** `faults`: the Toxiproxy-compatible fault API (docs/faults.md). */
export interface FaultsConfig {
  /** Where the API listens (`api: HOST:PORT`). */
  host: string;
  port: number;
  /** Bearer token; required when host is not loopback (as admin.token). */
  token?: string;
}

export interface Config {
  /** The file the config came from, when it came from one. */
  file?: string;
  listeners: ListenerConfig[];
  pools: PoolConfig[];
  admin?: AdminConfig;
  /** The fault API; absent = off (the default). */
  faults?: FaultsConfig;
  /** Number of worker processes. Default 1. */
  workers: number;
  /** Global maximum concurrent connections; 0 = unlimited. */
  maxConnections: number;
  shutdown: {
    /** Time to let connections finish after SIGTERM. Default 30s. */
    drainTimeoutMs: number;
    /** Window over which the remaining connections are closed. Default 5s. */
    closeSpreadMs: number;
  };
  log: {
    level: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
    /** Access log: 'stderr' (default), a file path, or 'off'. */
    access: string;
  };
}

/** Default values, one place. Referenced by the loader and the docs. */
export const Defaults = {
  connectTimeoutMs: 5_000,
  /** Other backends one connection tries after a failed connect (HAProxy's `retries 3`). */
  retries: 3,
  idleTimeoutMs: 600_000,
  finTimeoutMs: 30_000,
  maxLifetimeMs: 0,
  prereadTimeoutMs: 10_000,
  healthIntervalMs: 2_000,
  healthTimeoutMs: 1_000,
  healthRise: 2,
  healthFall: 3,
  healthJitter: 0.1,
  passiveConsecutiveFailures: 5,
  passiveBaseEjectionMs: 30_000,
  passiveMaxEjectionMs: 300_000,
  drainTimeoutMs: 30_000,
  closeSpreadMs: 5_000,
  queueTimeoutMs: 5_000,
  dnsMinTtlMs: 1_000,
  dnsMaxTtlMs: 300_000,
  ipv6SourcePrefix: 64,
  sharedLimitsPrefix: 'l4lb:',
  sharedLimitsTimeoutMs: 50,
  sharedLimitsLeaseTtlMs: 10_000,
  /** UDP sessions end after this long without a datagram (nginx and Envoy use 10 min and 1 min;
   * 30 s keeps the session table small for query traffic and still spans a game or VoIP gap). */
  udpIdleTimeoutMs: 30_000,
  udpResponseTimeoutMs: 5_000,
  udpResponses: 0,
  /** A mirror connection may lag the client by this many bytes before it is dropped. */
  mirrorBufferSize: 1024 * 1024,
  /** Client bytes kept for a replay: a request of a few KiB fits, with room to spare. */
  replayMaxBytes: 16 * 1024,
  // Zero values, enum choices and flags the loader fills in.
  workers: 1,
  maxConnections: 0,
  backendCheck: true,
  overLimit: 'queue',
  aclDefault: 'allow',
  balance: 'round-robin',
  hashKey: 'source-ip',
  slowStartMs: 0,
  queueSize: 0,
  weight: 1,
  backup: false,
  backendState: 'enabled',
  healthType: 'tcp',
  poolTlsEnabled: true,
  insecureSkipVerify: false,
  dnsKeepLastOnFailure: true,
  dnsWeight: 1,
  dnsPort: 53,
  logLevel: 'info',
  accessLog: 'stderr',
  adminPersist: false,
} as const;

/** Timeouts with every default applied. */
export function defaultTimeouts(): TimeoutsConfig {
  return {
    connectMs: Defaults.connectTimeoutMs,
    idleMs: Defaults.idleTimeoutMs,
    clientFinMs: Defaults.finTimeoutMs,
    serverFinMs: Defaults.finTimeoutMs,
    maxLifetimeMs: Defaults.maxLifetimeMs,
    prereadMs: Defaults.prereadTimeoutMs,
  };
}

/** Passive health with every default applied. */
export function defaultPassive(): PassiveHealthConfig {
  return {
    consecutiveFailures: Defaults.passiveConsecutiveFailures,
    baseEjectionMs: Defaults.passiveBaseEjectionMs,
    maxEjectionMs: Defaults.passiveMaxEjectionMs,
  };
}
