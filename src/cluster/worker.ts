/**
 * @module cluster/worker — one worker process: a Proxy that serves connections and takes its
 * config, backend sets and health from the primary.
 *
 * The worker runs no health check and no discovery (its config has none, see
 * cluster/worker-config.ts). Passive health stays local, so a worker reacts to a dead
 * backend at once, and every ejection is reported to the primary, which shares it with all
 * workers. The worker reports its counters every {@link STATS_INTERVAL_MS} and on request.
 *
 * Stopping: the primary sends `drain` (or `close` for "now"); SIGTERM/SIGINT sent to the
 * worker itself (a terminal's Ctrl-C reaches the whole process group) do the same as for a
 * single process: the first drains, the second closes. SIGHUP is the primary's business and
 * is ignored here. If the primary goes away (IPC channel closed), the worker drains and exits.
 */
import cluster from 'node:cluster';
import type { Config } from '../config/types.js';
import { createLogger, type Logger } from '../observability/log.js';
import { startProxy, type Proxy } from '../proxy/proxy.js';
import type { Pool } from '../proxy/pool.js';
import { collectWorkerStats } from './aggregate.js';
import { isPrimaryMessage, toIpcError, type PrimaryMessage, type WorkerMessage } from './ipc.js';
import { StateApplier } from './state.js';
import { shareLimits } from './worker-config.js';

/** How often a worker reports its counters unasked, ms. */
export const STATS_INTERVAL_MS = 1000;
/** Longest wait for the log to flush before the process exits, ms. */
const EXIT_FLUSH_MS = 1000;

function send(m: WorkerMessage): void {
  // A closed channel means the primary is gone; the disconnect handler takes over.
  if (process.connected) process.send!(m);
}

/** Runs this process as a cluster worker; returns once the worker is set up. */
export async function runWorker(): Promise<void> {
  if (!process.send) throw new Error('cluster/worker: not started by the l4lb primary (no IPC channel)');
  // Signals that arrive while starting must not kill the worker before it can drain.
  const early: NodeJS.Signals[] = [];
  const onEarly = (s: NodeJS.Signals) => early.push(s);
  for (const s of ['SIGTERM', 'SIGINT'] as const) process.on(s, onEarly);
  process.on('SIGHUP', () => {});
  const init = await new Promise<Extract<PrimaryMessage, { t: 'init' }>>((resolve) => {
    const onMessage = (m: unknown) => {
      if (isPrimaryMessage(m) && m.t === 'init') {
        process.off('message', onMessage);
        resolve(m);
      }
    };
    process.on('message', onMessage);
    send({ t: 'hello' });
  });
  const index = init.worker - 1;
  const localConfig = (c: Config) => shareLimits(c, index, init.count, init.reusePort);
  const logger = createLogger(init.config.log.level).child({ worker: init.worker });

  let proxy: Proxy;
  try {
    proxy = await startProxy(localConfig(init.config), {
      logger,
      listen: init.reusePort ? { reusePort: true, exclusive: true } : undefined,
      quietReload: true,
    });
  } catch (err) {
    send({ t: 'failed', error: toIpcError(err) });
    exit(logger, 1);
    return;
  }
  const applier = new StateApplier(index, init.count);
  applier.apply(proxy.pools, init.state);
  reportEjections(proxy);
  send({ t: 'ready', addresses: proxy.addresses() });

  const statsTimer = setInterval(() => send({ t: 'stats', stats: collectWorkerStats(proxy) }), STATS_INTERVAL_MS);
  statsTimer.unref();

  let stopping = false;
  const stop = async (how: 'drain' | 'close', timeoutMs?: number, spreadMs?: number) => {
    if (stopping) {
      if (how === 'close') await proxy.close();
      return;
    }
    stopping = true;
    clearInterval(statsTimer);
    if (how === 'drain') {
      // Logged and reported once this worker's listening sockets are closed, not before: a
      // client connecting after the line must be refused by this worker.
      await proxy.stopAccepting();
      logger.info({ active: proxy.activeConnections() }, 'worker draining');
      send({ t: 'stopped-accepting' });
      await proxy.drain(timeoutMs, spreadMs);
    }
    await proxy.close();
    send({ t: 'stats', stats: collectWorkerStats(proxy) });
    logger.info('worker stopped');
    exit(logger, 0);
  };
  let signals = 0;
  const onSignal = () => {
    signals++;
    void stop(signals === 1 ? 'drain' : 'close');
  };
  for (const s of ['SIGTERM', 'SIGINT'] as const) {
    process.off(s, onEarly);
    process.on(s, onSignal);
  }
  for (let i = 0; i < early.length; i++) onSignal();
  process.on('SIGUSR1', () => proxy.reopenLogs());
  keepRunningWithoutPrimary();
  process.on('disconnect', () => {
    if (stopping) return;
    logger.warn('the primary went away: draining');
    void stop('drain');
  });

  process.on('message', (m: unknown) => {
    if (!isPrimaryMessage(m)) return;
    switch (m.t) {
      case 'reload':
        if (stopping) return;
        proxy.reload(localConfig(m.config)).then(
          () => {
            // Same tick as the switch: new connections see the new pools with their states.
            applier.apply(proxy.pools, m.state);
            reportEjections(proxy);
            send({ t: 'reloaded', id: m.id, addresses: proxy.addresses() });
          },
          (err: unknown) => send({ t: 'reload-failed', id: m.id, error: toIpcError(err) }),
        );
        return;
      case 'state':
        applier.apply(proxy.pools, m.state);
        if (m.id !== 0) send({ t: 'state-applied', id: m.id });
        return;
      case 'stats?':
        send({ t: 'stats', id: m.id, stats: collectWorkerStats(proxy) });
        return;
      case 'drain':
        void stop('drain', m.timeoutMs, m.spreadMs);
        return;
      case 'close':
        void stop('close');
        return;
      case 'reopen-logs':
        proxy.reopenLogs();
        return;
      case 'init':
        return;
    }
  });
}

/**
 * Replaces each pool's state-change hook: in a worker it fires only for passive
 * ejections, which the primary logs and shares (so each is logged once, not per worker).
 */
function reportEjections(proxy: Proxy): void {
  for (const pool of proxy.pools.values()) pool.onStateChange = (b, reason) => onEjected(pool, b, reason);
}

function onEjected(pool: Pool, b: Parameters<NonNullable<Pool['onStateChange']>>[0], reason: string): void {
  if (b.ejectedUntil <= Date.now()) return;
  send({ t: 'ejected', pool: pool.name, backend: b.name, until: b.ejectedUntil, ejections: b.ejections, reason });
}

/**
 * node:cluster's own handler for a closed IPC channel calls process.exit(0) at once, cutting
 * every connection the worker carries, unless the worker is marked as leaving on purpose
 * (`exitedAfterDisconnect`). It emits the worker's 'disconnect' just before that check and
 * before the process's other 'disconnect' listeners run, so setting the mark there lets ours
 * drain instead. Without node:cluster (a plain fork) there is nothing to undo.
 */
function keepRunningWithoutPrimary(): void {
  const worker = cluster.worker;
  if (!worker) return;
  worker.once('disconnect', () => {
    worker.exitedAfterDisconnect = true;
  });
}

function exit(logger: Logger, code: number): void {
  const done = () => process.exit(code);
  setTimeout(done, EXIT_FLUSH_MS).unref();
  logger.flush(() => done());
}
