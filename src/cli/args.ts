/**
 * @module cli/args — parse the command line into an action and, for the quick path
 * (`l4lb BACKEND...`), a complete Config for one listener and one pool.
 */
import { parseArgs } from 'node:util';
import { ConfigError, UsageError } from '../errors.js';
import { Defaults, type Config } from '../config/types.js';
import { normalizeConfig, type ConfigOverride } from '../config/load.js';
import { balancerNames } from '../balancers/index.js';
import type { SourceFormat } from '../convert/index.js';

export const USAGE = `Usage: l4lb [options] BACKEND...      proxy to BACKENDs (HOST:PORT, IPv6 as [::1]:PORT)
       l4lb --config FILE [--watch]   run from a YAML/JSON config file
       l4lb check FILE                validate a config file and exit
       l4lb convert FILE [--from haproxy|nginx]
                                      print an HAProxy or nginx stream config as
                                      l4lb YAML (exit 3: something was not carried over)
       l4lb --demo                    run three demo backends behind l4lb

Options:
  -l, --listen HOST:PORT     address to listen on (default 127.0.0.1:0, a free port;
                             ":8080" listens on all interfaces)
      --udp HOST:PORT        balance UDP instead: listen for datagrams here (sessions by
                             client address and port, idle timeout 30s)
  -b, --balance NAME         balancing algorithm (default round-robin): ${balancerNames.join(', ')}
      --connect-timeout DUR  backend connect timeout per attempt (default 5s)
      --retries N            other backends to try after a failed connect
                             (default 3)
      --idle-timeout DUR     close connections idle this long (default 10m; UDP 30s; 0 = off)
      --admin HOST:PORT      serve the admin API, metrics and dashboard here (bearer
                             token from $L4LB_ADMIN_TOKEN; required off loopback)
      --faults-api HOST:PORT serve the Toxiproxy-compatible fault-injection API here
                             (off by default; token from $L4LB_FAULTS_TOKEN, required off
                             loopback; one process only: see docs/faults.md)
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
  | { kind: 'convert'; file: string; from: SourceFormat | undefined }
  | { kind: 'run-file'; file: string; watch: boolean; overrides: ConfigOverride[] }
  | { kind: 'run'; config: Config };

/** What errors call the command line's config (it has no file name). */
const CLI_SOURCE = 'command line';

/** Stands in for the demo's backends while its flags are checked; they start afterwards. */
const DEMO_PLACEHOLDER_BACKEND = '127.0.0.1:1';

/** Options that take a value; a value starting with a dash (`--retries -1`) is still theirs. */
const VALUE_OPTIONS = new Set([
  '--listen', '-l', '--udp', '--balance', '-b', '--connect-timeout', '--retries', '--idle-timeout',
  '--admin', '--faults-api', '--workers', '--config', '-c', '--log-level', '--access-log', '--from',
]);

/**
 * `--retries -1` would make Node's parser complain that the value looks like an option; joining
 * it (`--retries=-1`) lets the config schema say what is wrong with it instead.
 */
function joinDashValues(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = argv[i + 1];
    if (VALUE_OPTIONS.has(a) && next !== undefined && /^-\d/.test(next)) {
      out.push(a.startsWith('--') ? `${a}=${next}` : `${a}${next}`);
      i++;
    } else out.push(a);
  }
  return out;
}

/** A number for numeric text, so that the schema checks its range; anything else as written. */
function numberOrText(s: string): number | string {
  return /^-?\d+(\.\d+)?$/.test(s.trim()) ? Number(s) : s;
}

/** Parses argv (without node and script). Throws UsageError on bad input. */
export function parseCli(argv: string[]): CliAction {
  let parsed;
  try {
    parsed = parseArgs({
      args: joinDashValues(argv),
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
        'faults-api': { type: 'string' },
        workers: { type: 'string' },
        config: { type: 'string', short: 'c' },
        check: { type: 'boolean' },
        watch: { type: 'boolean' },
        'log-level': { type: 'string' },
        'access-log': { type: 'string' },
        demo: { type: 'boolean' },
        from: { type: 'string' },
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

  // Flags that also apply over a config file.
  const common: ConfigOverride[] = [];
  if (v['log-level'] !== undefined) common.push({ path: ['log', 'level'], value: v['log-level'], label: '--log-level' });
  if (v.admin !== undefined) {
    common.push({ path: ['admin', 'listen'], value: v.admin, label: '--admin' });
    // Empty counts as unset, as `${L4LB_ADMIN_TOKEN:-}` in a file does; the label names it
    // when the file's rule asks for a token.
    const token = process.env.L4LB_ADMIN_TOKEN || undefined;
    common.push({ path: ['admin', 'token'], value: token, label: '$L4LB_ADMIN_TOKEN', ifAbsent: true });
  }
  if (v['faults-api'] !== undefined) {
    common.push({ path: ['faults', 'api'], value: v['faults-api'], label: '--faults-api' });
    const token = process.env.L4LB_FAULTS_TOKEN || undefined;
    common.push({ path: ['faults', 'token'], value: token, label: '$L4LB_FAULTS_TOKEN', ifAbsent: true });
  }
  if (v.workers !== undefined) common.push({ path: ['workers'], value: numberOrText(v.workers), label: '--workers' });

  if (pos[0] === 'convert') {
    if (pos.length !== 2) throw new UsageError('convert: expected exactly one FILE, e.g. "l4lb convert haproxy.cfg"');
    if (v.from !== undefined && v.from !== 'haproxy' && v.from !== 'nginx') {
      throw new UsageError(`--from: "${v.from}" is not haproxy or nginx`);
    }
    return { kind: 'convert', file: pos[1], from: v.from };
  }
  if (v.from !== undefined) throw new UsageError('--from goes with convert: "l4lb convert FILE --from haproxy"');
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
    return { kind: 'run-file', file: v.config, watch: v.watch ?? false, overrides: common };
  }
  if (v.check) throw new UsageError('--check needs --config FILE');
  if (v.watch) throw new UsageError('--watch needs --config FILE');
  if (!v.demo && pos.length === 0) {
    throw new UsageError('no BACKEND given (e.g. "l4lb 127.0.0.1:9001 127.0.0.1:9002"); or use --config FILE or --demo');
  }
  if (v.demo && pos.length > 0) throw new UsageError('--demo starts its own backends; do not pass BACKEND arguments');
  if (v.udp !== undefined && v.listen !== undefined) throw new UsageError('use either --listen (TCP) or --udp (UDP), not both');
  if (v.udp !== undefined && v.demo) throw new UsageError('--demo runs TCP demo backends; it cannot be combined with --udp');

  // The command line is a config file written as flags: one listener, one pool, built
  // through the file's schema and checks so that both accept and refuse the same values.
  const listener = ['listeners', 0];
  const pool = ['pools', 0];
  const overrides: ConfigOverride[] = [
    { path: [...listener, 'name'], value: 'default', label: '--listen' },
    { path: [...listener, 'pool'], value: 'default', label: '--listen' },
    v.udp !== undefined
      ? { path: [...listener, 'listen'], value: v.udp, label: '--udp' }
      : { path: [...listener, 'listen'], value: v.listen ?? DEFAULT_LISTEN, label: '--listen' },
    { path: [...pool, 'name'], value: 'default', label: '--balance' },
    { path: [...pool, 'balance'], value: v.balance ?? Defaults.balance, label: '--balance' },
    ...(v.demo ? [DEMO_PLACEHOLDER_BACKEND] : pos).map((b, i): ConfigOverride => ({
      path: [...pool, 'backends', i],
      value: b,
      label: `BACKEND #${i + 1}`,
    })),
    ...common,
  ];
  if (v.udp !== undefined) overrides.push({ path: [...listener, 'protocol'], value: 'udp', label: '--udp' });
  if (v['connect-timeout'] !== undefined) {
    overrides.push({ path: [...listener, 'timeouts', 'connect'], value: v['connect-timeout'], label: '--connect-timeout' });
  }
  if (v['idle-timeout'] !== undefined) {
    overrides.push({ path: [...listener, 'timeouts', 'idle'], value: v['idle-timeout'], label: '--idle-timeout' });
  }
  if (v.retries !== undefined) overrides.push({ path: [...listener, 'retries'], value: numberOrText(v.retries), label: '--retries' });
  if (v['access-log'] !== undefined) overrides.push({ path: ['log', 'access'], value: v['access-log'], label: '--access-log' });

  let config: Config;
  try {
    config = normalizeConfig({}, CLI_SOURCE, { overrides });
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.issues.map((i) => `${i.path}: ${i.message}`).join('\n'));
    throw err;
  }
  return v.demo ? { kind: 'demo', config } : { kind: 'run', config };
}

/** The quick path's listen address: loopback, a free port. */
const DEFAULT_LISTEN = '127.0.0.1:0';
