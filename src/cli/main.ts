/**
 * @module cli/main — the `l4lb` command: a thin shell over the library API.
 *
 * Exit codes: 0 clean stop, 1 runtime failure (e.g. address in use), 2 bad arguments
 * or config. stdout carries only the `listening on` / `admin on` lines and help text;
 * logs are JSON lines on stderr.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, L4lbError, UsageError } from '../errors.js';
import type { Config } from '../config/types.js';
import { loadConfigFile } from '../config/load.js';
import { startProxy, type Proxy } from '../proxy/proxy.js';
import { createLogger } from '../observability/log.js';
import { parseCli, USAGE, type CliOverrides } from './args.js';
import { demoInstructions, startDemoBackends, type DemoBackends } from './demo.js';

/** The package version, read from package.json. */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** Runs the CLI; resolves with the exit code once the process should exit. */
export async function main(argv: string[]): Promise<number> {
  let action;
  try {
    action = parseCli(argv);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`l4lb: ${err.message}\n${USAGE.split('\n')[0]}\nTry 'l4lb --help' for more.\n`);
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
    case 'run':
      return run(action.config);
    case 'run-file': {
      let cfg: Config;
      try {
        cfg = applyOverrides(await loadConfigFile(action.file), action.overrides);
      } catch (err) {
        return reportStartError(err);
      }
      return run(cfg, { file: action.file, overrides: action.overrides, watch: action.watch });
    }
    case 'demo': {
      const demo = await startDemoBackends();
      const pool = action.config.pools[0];
      pool.backends = demo.addresses.map((a) => ({
        name: a.name, host: a.host, port: a.port, weight: 1, backup: false, state: 'enabled' as const, maxConnections: 0,
      }));
      return run(action.config, undefined, demo);
    }
  }
}

function applyOverrides(cfg: Config, o: CliOverrides): Config {
  if (o.logLevel) cfg.log.level = o.logLevel;
  if (o.admin) cfg.admin = { ...cfg.admin, host: o.admin.host, port: o.admin.port, persist: cfg.admin?.persist ?? false };
  if (o.workers) cfg.workers = o.workers;
  return cfg;
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
  overrides: CliOverrides;
  watch: boolean;
}

/** Starts the proxy, prints its addresses, and serves until a signal stops it. */
async function run(config: Config, source?: FileSource, demo?: DemoBackends): Promise<number> {
  const logger = createLogger(config.log.level);
  let proxy: Proxy;
  try {
    proxy = await startProxy(config, { logger });
  } catch (err) {
    await demo?.close();
    logger.flush();
    return reportStartError(err);
  }
  for (const a of proxy.addresses()) process.stdout.write(`listening on ${a.address}\n`);
  if (demo) process.stdout.write(demoInstructions(proxy.addresses()[0].address, proxy.addresses()[0].port));

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = async (signal: NodeJS.Signals) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: closing all connections now');
        await proxy.close();
        return;
      }
      stopping = true;
      logger.info({ signal, active: proxy.activeConnections() }, 'draining');
      await proxy.drain(demo ? 0 : undefined, demo ? 0 : undefined);
      await proxy.close();
      await demo?.close();
      logger.info('l4lb stopped');
      logger.flush();
      for (const s of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1'] as const) process.removeAllListeners(s);
      resolve(0);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGUSR1', () => proxy.reopenLogs());
    process.on('SIGHUP', async () => {
      if (!source) {
        logger.warn('SIGHUP ignored: no config file to reload (started from the command line)');
        return;
      }
      try {
        const next = applyOverrides(await loadConfigFile(source.file), source.overrides);
        await proxy.reload(next);
      } catch (err) {
        logger.error({ err: (err as Error).message }, 'reload failed; the old config keeps serving');
      }
    });
  });
}
