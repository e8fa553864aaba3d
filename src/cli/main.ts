/**
 * @module cli/main — the `l4lb` command: a thin shell over the library API.
 *
 * Exit codes: 0 clean stop, 1 runtime failure (e.g. address in use), 2 bad arguments
 * or config. stdout carries only the `listening on` / `admin on` lines and help text;
 * logs are JSON lines on stderr.
 */
import { readFileSync, watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve as resolvePath } from 'node:path';
import { ConfigError, L4lbError, UsageError } from '../errors.js';
import type { Config } from '../config/types.js';
import { loadConfigFile } from '../config/load.js';
import { startProxy, type Proxy } from '../proxy/proxy.js';
import { createLogger, type Logger } from '../observability/log.js';
import { parseCli, USAGE } from './args.js';
import { convertConfig, ConvertSyntaxError, type SourceFormat } from '../convert/index.js';
import type { ConfigOverride } from '../config/load.js';
import { demoInstructions, startDemoBackends, type DemoBackends } from './demo.js';
import { startProxyAdmin, type AdminServer } from '../admin/server.js';
import { startFaultsApi, type FaultsApi } from '../faults/api.js';
import { assertAdminConfigSafe } from '../admin/auth.js';
import { ClusterPrimary, startCluster, startClusterAdmin } from '../cluster/primary.js';

/** The package version, read from package.json. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** After shutdown, the longest wait for a stderr pipe's reader to take the last log lines, ms. */
export const EXIT_LOG_WAIT_MS = 2000;

/** Runs the CLI; resolves with the exit code once the process should exit. */
export async function main(argv: string[]): Promise<number> {
  let action;
  try {
    action = parseCli(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      const lines = err.message.split('\n').map((l) => `l4lb: ${l}\n`).join('');
      process.stderr.write(`${lines}${USAGE.split('\n')[0]}\nTry 'l4lb --help' for more.\n`);
      return 2;
    }
    throw err;
  }
  switch (action.kind) {
    case 'help':
      process.stdout.write(`${USAGE}\n`);
      return 0;
    case 'version':
      process.stdout.write(`l4lb ${version()}\n`);
      return 0;
    case 'check':
      try {
        const cfg = await loadConfigFile(action.file);
        process.stdout.write(`${action.file}: OK (${cfg.listeners.length} listener(s), ${cfg.pools.length} pool(s))\n`);
        return 0;
      } catch (err) {
        return reportStartError(err);
      }
    case 'convert':
      return convert(action.file, action.from);
    case 'run':
      return run(action.config);
    case 'run-file': {
      let cfg: Config;
      try {
        cfg = await loadConfigFile(action.file, process.env, { overrides: action.overrides });
      } catch (err) {
        return reportStartError(err);
      }
      return run(cfg, { file: action.file, overrides: action.overrides, watch: action.watch });
    }
    case 'demo': {
      const demo = await startDemoBackends();
      const pool = action.config.pools[0];
      pool.backends = demo.addresses.map((a) => ({
        name: a.name, host: a.host, port: a.port, weight: 1, backup: false, state: 'enabled' as const, maxConnections: 0, check: true,
      }));
      return run(action.config, undefined, demo);
    }
  }
}

/** Exit code of `l4lb convert` when a directive could not be carried over. */
const EXIT_CONVERT_DROPPED = 3;

/** `l4lb convert FILE`: the YAML on stdout; 3 when something was dropped, 2 when unreadable. */
function convert(file: string, from: SourceFormat | undefined): number {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    process.stderr.write(`l4lb: ${file}: cannot read it: ${(err as Error).message}\n`);
    return 2;
  }
  try {
    const r = convertConfig(text, file, from);
    process.stdout.write(r.yaml);
    if (r.dropped) process.stderr.write(`l4lb: ${file}: some directives were not carried over; see the "not carried over" comments\n`);
    return r.dropped ? EXIT_CONVERT_DROPPED : 0;
  } catch (err) {
    if (err instanceof ConvertSyntaxError) {
      process.stderr.write(`l4lb: ${file}:${err.line}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
}

function reportStartError(err: unknown): number {
  if (err instanceof ConfigError) {
    process.stderr.write(`l4lb: invalid config (${err.code})\n${err.message}\n`);
    return 2;
  }
  if (err instanceof L4lbError) {
    process.stderr.write(`l4lb: ${err.message} (${err.code})\n`);
    return 1;
  }
  throw err;
}

interface FileSource {
  file: string;
  overrides: ConfigOverride[];
  watch: boolean;
}

/** Starts the proxy, prints its addresses, and serves until a signal stops it. */
async function run(config: Config, source?: FileSource, demo?: DemoBackends): Promise<number> {
  const logger = createLogger(config.log.level);
  // workers > 1: this process becomes the cluster primary (docs/cluster.md); same lifecycle.
  let proxy: Proxy | ClusterPrimary;
  try {
    // An admin API off loopback without a token is refused before anything is bound.
    if (config.admin) assertAdminConfigSafe(config.admin);
    proxy = config.workers > 1 ? await startCluster(config, { logger }) : await startProxy(config, { logger });
  } catch (err) {
    await demo?.close();
    logger.flush();
    return reportStartError(err);
  }
  // A signal sent as soon as the `listening on` line is read could land before the handlers
  // below exist and kill the process (SIGHUP's default): hold such signals, replay them there.
  const early: NodeJS.Signals[] = [];
  const holdSignal = (s: NodeJS.Signals) => early.push(s);
  for (const s of HANDLED_SIGNALS) process.on(s, holdSignal);
  for (const a of proxy.addresses()) process.stdout.write(`listening on ${a.address}${a.protocol === 'udp' ? ' udp' : ''}\n`);
  let admin: AdminServer | undefined;
  if (config.admin) {
    try {
      admin = proxy instanceof ClusterPrimary ? await startClusterAdmin(proxy, config.admin) : await startProxyAdmin(proxy, config.admin);
    } catch (err) {
      for (const s of HANDLED_SIGNALS) process.off(s, holdSignal);
      await proxy.close();
      await demo?.close();
      logger.flush();
      return reportStartError(err);
    }
    process.stdout.write(`admin on ${admin.url}\n`);
  }
  let faultsApi: FaultsApi | undefined;
  // The config refuses faults with workers > 1 (docs/faults.md), so the proxy is a Proxy here.
  if (config.faults && !(proxy instanceof ClusterPrimary)) {
    try {
      faultsApi = await startFaultsApi(proxy, config.faults, { logger });
    } catch (err) {
      for (const s of HANDLED_SIGNALS) process.off(s, holdSignal);
      await admin?.close();
      await proxy.close();
      await demo?.close();
      logger.flush();
      return reportStartError(err);
    }
    process.stdout.write(`faults api on ${faultsApi.url}\n`);
  }
  if (demo) process.stdout.write(demoInstructions(proxy.addresses()[0].address, proxy.addresses()[0].port));

  // Reloads are applied one at a time by the proxy, in the order asked.
  const reloadFromFile = async (trigger: string): Promise<void> => {
    if (!source) {
      logger.warn({ trigger }, 'reload ignored: no config file to reload (started from the command line)');
      return;
    }
    try {
      const next = await loadConfigFile(source.file, process.env, { overrides: source.overrides });
      await proxy.reload(next);
    } catch (err) {
      logger.error({ trigger, err: (err as Error).message }, 'reload failed; the old config keeps serving');
    }
  };
  const watcher = source?.watch ? watchConfigFile(source.file, () => void reloadFromFile('watch'), logger) : undefined;

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: closing all connections now');
        await proxy.close();
        return;
      }
      stopping = true;
      watcher?.close();
      // Logged once the listening sockets are closed: a client that connects after reading the
      // line is refused, not accepted into a backlog the close then resets. (A cluster's
      // workers close theirs and log 'worker draining', then the primary 'listeners closed'.)
      if (!(proxy instanceof ClusterPrimary)) await proxy.stopAccepting();
      // The demo's backends stop with it, so its connections are closed at once, not drained.
      logger.info({ signal, active: proxy.activeConnections() }, demo ? 'stopping the demo: closing connections now' : 'draining');
      await proxy.drain(demo ? 0 : undefined, demo ? 0 : undefined);
      await proxy.close();
      await admin?.close();
      await faultsApi?.close();
      await demo?.close();
      logger.info('l4lb stopped');
      logger.flush();
      for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1'] as const) process.removeAllListeners(s);
      // Everything is closed; only log lines to a stderr pipe may still be on their way. A
      // reader that stopped reading would keep the process alive forever (a pending pipe
      // write holds the event loop): give it this long, then exit. The timer is unref'd, so a
      // normal exit does not wait for it.
      setTimeout(() => process.exit(), EXIT_LOG_WAIT_MS).unref();
      resolve(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGUSR1', () => proxy.reopenLogs());
    process.on('SIGHUP', () => void reloadFromFile('SIGHUP'));
    for (const s of HANDLED_SIGNALS) process.off(s, holdSignal);
    for (const s of early) process.emit(s, s);
  });
}

/** The signals `run` handles. */
const HANDLED_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1'] as const;

/** Quiet time after the last change event before the file is read (editors write in steps). */
const WATCH_DEBOUNCE_MS = 200;

/**
 * Calls `onChange` when the config file's content changes. The directory is watched as well as
 * the file: editors and deploy tools often write a new file and rename it over the old one
 * (which leaves a watch on the file itself looking at the old inode), and Kubernetes swaps a
 * `..data` symlink. Events are debounced, and only a change of content triggers a reload.
 */
function watchConfigFile(file: string, onChange: () => void, logger: Logger): { close(): void } {
  const abs = resolvePath(file);
  const base = basename(abs);
  const read = (): string | undefined => {
    try {
      return readFileSync(abs, 'utf8');
    } catch {
      return undefined; // mid-rename; the next event reads it again
    }
  };
  let last = read();
  let timer: NodeJS.Timeout | undefined;
  const check = () => {
    timer = undefined;
    const now = read();
    if (now === undefined || now === last) return;
    last = now;
    logger.info({ file }, 'config file changed, reloading');
    onChange();
  };
  const poke = (_event: string, name: string | Buffer | null) => {
    const n = name === null ? null : String(name);
    if (n !== null && n !== base && !n.startsWith('..')) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(check, WATCH_DEBOUNCE_MS);
  };
  const watchers: FSWatcher[] = [];
  for (const target of [dirname(abs), abs]) {
    try {
      const w = watch(target, { persistent: false }, poke);
      w.on('error', (err) => logger.warn({ target, err: err.message }, 'config watch error'));
      watchers.push(w);
    } catch (err) {
      logger.warn({ target, err: (err as Error).message }, 'cannot watch; SIGHUP still reloads');
    }
  }
  return {
    close() {
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
