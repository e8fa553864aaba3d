/**
 * @module cli/args — parse the command line into an action and, for the quick path
 * (`l4lb BACKEND...`), a complete Config for one listener and one pool.
 */
import { parseArgs } from 'node:util';
import { availableParallelism } from 'node:os';
import { UsageError } from '../errors.js';
import type { BalancerName, Config } from '../config/types.js';
import { Defaults, defaultPassive, defaultTimeouts } from '../config/types.js';
import { parseDuration } from '../util/duration.js';
import { parseHostPort } from '../util/address.js';
import { balancerNames, isBalancerName } from '../balancers/index.js';

export const USAGE = `Usage: l4lb [options] BACKEND...      proxy to BACKENDs (HOST:PORT, IPv6 as [::1]:PORT)
       l4lb --config FILE [--watch]   run from a YAML/JSON config file
       l4lb check FILE                validate a config file and exit
       l4lb --demo                    run three demo backends behind l4lb

Options:
  -l, --listen HOST:PORT     address to listen on (default 127.0.0.1:0, a free port;
                             ":8080" listens on all interfaces)
      --udp HOST:PORT        balance UDP instead: listen for datagrams here (sessions by
                             client address and port, idle timeout 30s)
  -b, --balance NAME         balancing algorithm (default round-robin): ${balancerNames.join(', ')}
      --connect-timeout DUR  backend connect timeout per attempt (default 5s)
      --retries N            other backends to try after a failed connect
                             (default: each other backend once)
      --idle-timeout DUR     close connections idle this long (default 10m; UDP 30s; 0 = off)
      --admin HOST:PORT      serve the admin API, metrics and dashboard here (bearer
                             token from $L4LB_ADMIN_TOKEN; required off loopback)
      --workers N|auto       worker processes (default 1)
  -c, --config FILE          config file (YAML or JSON)
      --check                with --config: validate and exit
      --watch                with --config: reload when the file changes
      --log-level LEVEL      trace, debug, info, warn, error, fatal, silent (default info)
      --access-log TARGET    stderr (default), off, or a file path
      --demo                 start three demo backends and a proxy in front of them
  -h, --help                 show this help
  -V, --version              print the version`;

export type CliAction =
  | { kind: 'help' }
  | { kind: 'version' }
  | { kind: 'demo'; config: Config }
  | { kind: 'check'; file: string }
  | { kind: 'run-file'; file: string; watch: boolean; overrides: CliOverrides }
  | { kind: 'run'; config: Config };

/** Options that apply on top of a config file. */
export interface CliOverrides {
  logLevel?: Config['log']['level'];
  admin?: { host: string; port: number };
  workers?: number;
}

const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** Parses argv (without node and script). Throws UsageError on bad input. */
export function parseCli(argv: string[]): CliAction {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        listen: { type: 'string', short: 'l' },
        udp: { type: 'string' },
        balance: { type: 'string', short: 'b' },
        'connect-timeout': { type: 'string' },
        retries: { type: 'string' },
        'idle-timeout': { type: 'string' },
        admin: { type: 'string' },
        workers: { type: 'string' },
        config: { type: 'string', short: 'c' },
        check: { type: 'boolean' },
        watch: { type: 'boolean' },
        'log-level': { type: 'string' },
        'access-log': { type: 'string' },
        demo: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const v = parsed.values;
  const pos = parsed.positionals;
  if (v.help) return { kind: 'help' };
  if (v.version) return { kind: 'version' };

  const logLevel = v['log-level'];
  if (logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(`--log-level: "${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`);
  }
  const admin = v.admin !== undefined ? address('--admin', v.admin, false, true) : undefined;
  const workers = v.workers !== undefined ? parseWorkers(v.workers) : undefined;

  if (pos[0] === 'check') {
    if (pos.length !== 2) throw new UsageError('check: expected exactly one FILE, e.g. "l4lb check l4lb.yaml"');
    return { kind: 'check', file: pos[1] };
  }
  if (v.config !== undefined) {
    if (pos.length > 0) throw new UsageError(`BACKEND arguments cannot be combined with --config (got "${pos[0]}")`);
    for (const flag of ['listen', 'udp', 'balance', 'connect-timeout', 'retries', 'idle-timeout', 'access-log', 'demo'] as const) {
      if (v[flag] !== undefined) throw new UsageError(`--${flag} cannot be combined with --config; set it in the file`);
    }
    if (v.check) return { kind: 'check', file: v.config };
    return {
      kind: 'run-file',
      file: v.config,
      watch: v.watch ?? false,
      overrides: { logLevel: logLevel as CliOverrides['logLevel'], admin, workers },
    };
  }
  if (v.check) throw new UsageError('--check needs --config FILE');
  if (v.watch) throw new UsageError('--watch needs --config FILE');

  if (v.udp !== undefined && v.listen !== undefined) throw new UsageError('use either --listen (TCP) or --udp (UDP), not both');
  if (v.udp !== undefined && workers !== undefined && workers > 1) {
    throw new UsageError('--workers: UDP listeners run in one process for now; see docs/operations.md, UDP');
  }
  if (v.udp !== undefined && v.demo) throw new UsageError('--demo runs TCP demo backends; it cannot be combined with --udp');
  const listen = v.udp !== undefined ? address('--udp', v.udp, true) : address('--listen', v.listen ?? '127.0.0.1:0', true);
  const balance = v.balance ?? 'round-robin';
  if (!isBalancerName(balance)) {
    throw new UsageError(`--balance: unknown algorithm "${balance}"; choose one of ${balancerNames.join(', ')}`);
  }
  const timeouts = defaultTimeouts();
  if (v['connect-timeout'] !== undefined) timeouts.connectMs = duration('--connect-timeout', v['connect-timeout'], false);
  if (v.udp !== undefined) timeouts.idleMs = Defaults.udpIdleTimeoutMs;
  if (v['idle-timeout'] !== undefined) timeouts.idleMs = duration('--idle-timeout', v['idle-timeout'], true);
  let retries: number | undefined;
  if (v.retries !== undefined) {
    if (!/^\d+$/.test(v.retries)) throw new UsageError(`--retries: "${v.retries}" is not a whole number ≥ 0`);
    retries = Number(v.retries);
  }

  const backends = pos.map((p, i) => {
    const a = address(`BACKEND #${i + 1}`, p, false);
    return { name: p, host: a.host, port: a.port, weight: 1, backup: false, state: 'enabled' as const, maxConnections: 0 };
  });
  const names = new Set<string>();
  for (const b of backends) {
    if (names.has(b.name)) throw new UsageError(`BACKEND "${b.name}" is given twice`);
    names.add(b.name);
  }
  if (!v.demo && backends.length === 0) {
    throw new UsageError('no BACKEND given (e.g. "l4lb 127.0.0.1:9001 127.0.0.1:9002"); or use --config FILE or --demo');
  }
  if (v.demo && backends.length > 0) throw new UsageError('--demo starts its own backends; do not pass BACKEND arguments');

  const config: Config = {
    listeners: [
      {
        name: 'default',
        host: listen.host,
        port: listen.port,
        pool: 'default',
        ...(v.udp !== undefined && {
          protocol: 'udp' as const,
          udp: { responses: Defaults.udpResponses, responseTimeoutMs: Defaults.udpResponseTimeoutMs, perDatagram: false },
        }),
        timeouts,
        maxConnections: 0,
        overLimit: 'reject',
        retries,
        acl: [],
        aclDefault: 'allow',
        routes: [],
      },
    ],
    pools: [
      {
        name: 'default',
        balance: balance as BalancerName,
        hashKey: 'source-ip',
        backends,
        passive: defaultPassive(),
        slowStartMs: 0,
        queue: { size: 0, timeoutMs: 5000 },
      },
    ],
    admin: admin ? { host: admin.host, port: admin.port, token: process.env.L4LB_ADMIN_TOKEN || undefined, persist: false } : undefined,
    workers: workers ?? 1,
    maxConnections: 0,
    shutdown: { drainTimeoutMs: 30_000, closeSpreadMs: 5_000 },
    log: { level: (logLevel as Config['log']['level']) ?? 'info', access: v['access-log'] ?? 'stderr' },
  };
  return v.demo ? { kind: 'demo', config } : { kind: 'run', config };
}

function address(what: string, s: string, listen: boolean, allowPortZero = listen): { host: string; port: number } {
  const r = parseHostPort(s, { allowEmptyHost: listen, allowPortZero });
  if ('error' in r) throw new UsageError(`${what}: ${r.error}`);
  return r;
}

function duration(what: string, s: string, allowZero: boolean): number {
  const ms = parseDuration(s);
  if (ms === undefined) throw new UsageError(`${what}: "${s}" is not a duration (e.g. 5s, 250ms, 1m)`);
  if (!allowZero && ms === 0) throw new UsageError(`${what}: must be greater than 0`);
  return ms;
}

function parseWorkers(s: string): number {
  if (s === 'auto') return availableParallelism();
  if (!/^\d+$/.test(s) || Number(s) < 1 || Number(s) > 256) {
    throw new UsageError(`--workers: "${s}" is not "auto" or a number from 1 to 256`);
  }
  return Number(s);
}
