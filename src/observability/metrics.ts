/**
 * @module observability/metrics — the Prometheus registry, fed from status snapshots.
 *
 * The data path never calls prom-client: it bumps plain counters (observability/stats.ts,
 * Backend fields). At scrape time `render()` takes one snapshot through the `read`
 * function and every metric's `collect()` copies its numbers from that snapshot, so one
 * scrape is one consistent instant. In multi-process mode `read` returns the aggregated
 * snapshot and nothing here changes.
 *
 * Process metrics come from prom-client's default collectors on a private registry,
 * created once per process (they install a GC observer and an event-loop monitor).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import { MetricNames } from './metric-names.js';
import type { HistogramSnapshot, StatusSnapshot } from '../admin/status.js';

let processRegistry: Registry | undefined;

/** The process-wide registry of prom-client's default process and Node.js metrics. */
function defaultMetricsRegistry(): Registry {
  if (!processRegistry) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** One labelled series of a {@link SnapshotHistogram}. */
interface HistogramSeries {
  labels: Record<string, string>;
  h: HistogramSnapshot;
}

const BACKEND_STATES = ['up', 'down', 'draining', 'disabled'] as const;

/**
 * A histogram whose buckets are copied from a snapshot's plain {@link HistogramSnapshot}s
 * (prom-client's Histogram only takes observations one by one). Values are converted from
 * milliseconds to seconds, as Prometheus conventions ask.
 */
class SnapshotHistogram {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly #values: () => HistogramSeries[];

  constructor(name: string, help: string, values: () => HistogramSeries[]) {
    this.name = name;
    this.help = help;
    this.#values = values;
  }

  async get() {
    const out: Array<{ labels: Record<string, string | number>; value: number; metricName: string }> = [];
    for (const { labels, h } of this.#values()) {
      let acc = 0;
      h.bounds.forEach((bound, i) => {
        acc += h.counts[i];
        out.push({ labels: { ...labels, le: bound / 1000 }, value: acc, metricName: `${this.name}_bucket` });
      });
      out.push({ labels: { ...labels, le: '+Inf' }, value: h.count, metricName: `${this.name}_bucket` });
      out.push({ labels, value: h.sum / 1000, metricName: `${this.name}_sum` });
      out.push({ labels, value: h.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: out };
  }

  reset(): void {}
}

/** Prometheus metrics of one proxy (or one cluster), read from status snapshots. */
export class MetricsRegistry {
  /** The l4lb metrics (the default process metrics live in a shared registry). Its collect
   * callbacks read the snapshot `render()` takes, so only `render()` may scrape it. */
  readonly #registry = new Registry();
  readonly #read: () => Promise<StatusSnapshot>;
  #current: StatusSnapshot | undefined;
  /** Scrapes run one after the other so that each sees its own snapshot. */
  #queue: Promise<unknown> = Promise.resolve();
  readonly #adminActions: Counter<'action' | 'status'>;

  constructor(read: () => Promise<StatusSnapshot>) {
    this.#read = read;
    const reg = [this.#registry];
    const snap = (): StatusSnapshot => this.#current!;
    const n = MetricNames;

    new Gauge({
      name: n.info, help: 'l4lb version information; always 1.', labelNames: ['version'], registers: reg,
      collect() {
        this.reset();
        this.set({ version: snap().process.version }, 1);
      },
    });

    // --- per listener ---
    type L = StatusSnapshot['listeners'][number];
    const perListener = (name: string, help: string, kind: 'counter' | 'gauge', value: (l: L) => number) => {
      const collect = function (this: Counter<'listener'> | Gauge<'listener'>) {
        this.reset();
        for (const l of snap().listeners) {
          if (this instanceof Counter) this.inc({ listener: l.name }, value(l));
          else this.set({ listener: l.name }, value(l));
        }
      };
      if (kind === 'counter') new Counter({ name, help, labelNames: ['listener'], registers: reg, collect });
      else new Gauge({ name, help, labelNames: ['listener'], registers: reg, collect });
    };
    perListener(n.connectionsAccepted, 'Connections accepted by a listener, admitted or not.', 'counter', (l) => l.accepted);
    perListener(n.connectionsActive, 'Connections open right now.', 'gauge', (l) => l.active);
    perListener(n.connectRetries, 'Connect attempts beyond the first one of a connection.', 'counter', (l) => l.retries);
    perListener(n.replays, 'Times kept client bytes were sent again to another backend (retryOnEmptyResponse).', 'counter', (l) => l.replays);
    const perReason = (name: string, help: string, map: (l: L) => Record<string, number>) =>
      new Counter({
        name, help, labelNames: ['listener', 'reason'], registers: reg,
        collect() {
          this.reset();
          for (const l of snap().listeners) for (const [reason, v] of Object.entries(map(l))) this.inc({ listener: l.name, reason }, v);
        },
      });
    perReason(n.connectionsClosed, 'Admitted connections that ended, by termination reason.', (l) => l.closed);
    perReason(n.connectionsRejected, 'Connections refused before reaching a backend, by reason.', (l) => l.rejected);
    new Counter({
      name: n.listenerBytes, help: 'Bytes relayed by closed connections; direction up = client to backend.',
      labelNames: ['listener', 'direction'], registers: reg,
      collect() {
        this.reset();
        for (const l of snap().listeners) {
          this.inc({ listener: l.name, direction: 'up' }, l.bytesUp);
          this.inc({ listener: l.name, direction: 'down' }, l.bytesDown);
        }
      },
    });
    this.#registry.registerMetric(
      new SnapshotHistogram(n.connectDuration, 'Time to connect to a backend, successful attempts only.', () =>
        snap().listeners.map((l) => ({ labels: { listener: l.name }, h: l.connectMs })),
      ) as unknown as Metric,
    );

    // --- UDP listeners (also counted above: sessions as connections, drops as rejected) ---
    const udpListeners = () => snap().listeners.filter((l) => l.protocol === 'udp');
    new Gauge({
      name: n.udpSessionsActive, help: 'UDP sessions open right now.', labelNames: ['listener'], registers: reg,
      collect() {
        this.reset();
        for (const l of udpListeners()) this.set({ listener: l.name }, l.active);
      },
    });
    new Counter({
      name: n.udpSessions, help: 'UDP sessions opened.', labelNames: ['listener'], registers: reg,
      collect() {
        this.reset();
        for (const l of udpListeners()) this.inc({ listener: l.name }, l.accepted);
      },
    });
    for (const [name, help, map] of [
      [n.udpSessionsEnded, 'UDP sessions that ended, by reason.', (l: L) => l.closed],
      [n.udpDatagramsDropped, 'UDP datagrams dropped, by reason.', (l: L) => l.rejected],
    ] as const) {
      new Counter({
        name, help, labelNames: ['listener', 'reason'], registers: reg,
        collect() {
          this.reset();
          for (const l of udpListeners()) for (const [reason, v] of Object.entries(map(l))) this.inc({ listener: l.name, reason }, v);
        },
      });
    }
    new Counter({
      name: n.udpDatagrams, help: 'UDP datagrams forwarded; direction up = client to backend.',
      labelNames: ['listener', 'direction'], registers: reg,
      collect() {
        this.reset();
        for (const l of udpListeners()) {
          this.inc({ listener: l.name, direction: 'up' }, l.datagramsUp ?? 0);
          this.inc({ listener: l.name, direction: 'down' }, l.datagramsDown ?? 0);
        }
      },
    });

    // --- injected faults (faults/, docs/faults.md) ---
    new Counter({
      name: n.faultConnections, help: 'Connections an injected fault (toxic) affected.',
      labelNames: ['listener', 'toxic'], registers: reg,
      collect() {
        this.reset();
        for (const l of snap().listeners) {
          for (const [toxic, v] of Object.entries(l.faults?.connections ?? {})) this.inc({ listener: l.name, toxic }, v);
        }
      },
    });
    new Gauge({
      name: n.faultsActive, help: '1 while a listener has an active fault (a toxic, or down), else 0.',
      labelNames: ['listener'], registers: reg,
      collect() {
        this.reset();
        for (const l of snap().listeners) if (l.faults) this.set({ listener: l.name }, l.faults.active ? 1 : 0);
      },
    });

    // --- per backend ---
    type B = StatusSnapshot['pools'][number]['backends'][number];
    const perBackend = (name: string, help: string, kind: 'counter' | 'gauge', value: (b: B) => number) => {
      const collect = function (this: Counter<'pool' | 'backend'> | Gauge<'pool' | 'backend'>) {
        this.reset();
        for (const p of snap().pools) {
          for (const b of p.backends) {
            const labels = { pool: p.name, backend: b.name };
            if (this instanceof Counter) this.inc(labels, value(b));
            else this.set(labels, value(b));
          }
        }
      };
      if (kind === 'counter') new Counter({ name, help, labelNames: ['pool', 'backend'], registers: reg, collect });
      else new Gauge({ name, help, labelNames: ['pool', 'backend'], registers: reg, collect });
    };
    perBackend(n.backendConnectionsActive, 'Connections to a backend open right now, attempts in flight included.', 'gauge', (b) => b.active);
    perBackend(n.backendConnections, 'Connections relayed to a backend.', 'counter', (b) => b.total);
    perBackend(n.backendConnectFailures, 'Failed connect attempts to a backend.', 'counter', (b) => b.failures);
    perBackend(n.backendConnectAverage, 'Exponentially weighted average connect time of a backend.', 'gauge', (b) => b.connectMsAvg / 1000);
    perBackend(n.backendUp, '1 when the backend takes new connections (state up), else 0.', 'gauge', (b) => (b.state === 'up' ? 1 : 0));
    perBackend(n.backendHealthy, 'Result of the active health checks: 1 healthy, 0 not (1 without checks).', 'gauge', (b) => (b.healthy ? 1 : 0));
    perBackend(n.backendWeight, 'Configured weight of a backend.', 'gauge', (b) => b.weight);
    new Counter({
      name: n.backendBytes, help: 'Bytes relayed by closed connections to a backend; direction up = client to backend.',
      labelNames: ['pool', 'backend', 'direction'], registers: reg,
      collect() {
        this.reset();
        for (const p of snap().pools) {
          for (const b of p.backends) {
            this.inc({ pool: p.name, backend: b.name, direction: 'up' }, b.bytesIn);
            this.inc({ pool: p.name, backend: b.name, direction: 'down' }, b.bytesOut);
          }
        }
      },
    });
    new Counter({
      name: n.backendUdpDatagrams, help: 'UDP datagrams forwarded to a backend (up) and from it (down); backends that carried UDP only.',
      labelNames: ['pool', 'backend', 'direction'], registers: reg,
      collect() {
        this.reset();
        for (const p of snap().pools) {
          for (const b of p.backends) {
            if (b.datagramsIn === undefined) continue;
            this.inc({ pool: p.name, backend: b.name, direction: 'up' }, b.datagramsIn);
            this.inc({ pool: p.name, backend: b.name, direction: 'down' }, b.datagramsOut ?? 0);
          }
        }
      },
    });
    new Gauge({
      name: n.backendState, help: '1 for the backend\'s current state, 0 for the other states.',
      labelNames: ['pool', 'backend', 'state'], registers: reg,
      collect() {
        this.reset();
        for (const p of snap().pools) {
          for (const b of p.backends) {
            for (const state of BACKEND_STATES) this.set({ pool: p.name, backend: b.name, state }, b.state === state ? 1 : 0);
          }
        }
      },
    });

    // --- per pool ---
    new Gauge({
      name: n.poolBackendsUp, help: 'Backends of a pool in state up.', labelNames: ['pool'], registers: reg,
      collect() {
        this.reset();
        for (const p of snap().pools) this.set({ pool: p.name }, p.backendsUp);
      },
    });
    new Gauge({
      name: n.poolBackends, help: 'Backends of a pool.', labelNames: ['pool'], registers: reg,
      collect() {
        this.reset();
        for (const p of snap().pools) this.set({ pool: p.name }, p.backends.length);
      },
    });
    // Pools with a queue (queue.size > 0) only.
    new Gauge({
      name: n.poolQueueWaiting, help: "Connections waiting in a pool's queue for a backend slot.", labelNames: ['pool'], registers: reg,
      collect() {
        this.reset();
        for (const p of snap().pools) if (p.queue) this.set({ pool: p.name }, p.queue.waiting);
      },
    });
    for (const [name, help, field] of [
      [n.poolQueued, "Connections that waited in a pool's queue.", 'queued'],
      [n.poolQueueOverflows, "Connections closed because a pool's queue was full.", 'overflowed'],
      [n.poolQueueTimeouts, "Connections closed after waiting a pool's queue timeout.", 'timedOut'],
    ] as const) {
      new Counter({
        name, help, labelNames: ['pool'], registers: reg,
        collect() {
          this.reset();
          for (const p of snap().pools) if (p.queue) this.inc({ pool: p.name }, p.queue[field]);
        },
      });
    }
    // Pools with a mirror only (docs/mirroring.md).
    new Gauge({
      name: n.mirrorConnectionsActive, help: "Mirror connections open now, by the mirrored pool.", labelNames: ['pool'], registers: reg,
      collect() {
        this.reset();
        for (const p of snap().pools) if (p.mirror) this.set({ pool: p.name }, p.mirror.active);
      },
    });
    for (const [name, help, field] of [
      [n.mirrorConnections, 'Mirror connections started (one per mirrored connection), by the mirrored pool.', 'connections'],
      [n.mirrorBytes, 'Client bytes written to mirror backends, by the mirrored pool.', 'bytes'],
    ] as const) {
      new Counter({
        name, help, labelNames: ['pool'], registers: reg,
        collect() {
          this.reset();
          for (const p of snap().pools) if (p.mirror) this.inc({ pool: p.name }, p.mirror[field]);
        },
      });
    }
    new Counter({
      name: n.mirrorDropped, help: 'Mirror connections given up (the primary goes on), by the mirrored pool and reason.', labelNames: ['pool', 'reason'], registers: reg,
      collect() {
        this.reset();
        for (const p of snap().pools) {
          if (p.mirror) for (const [reason, v] of Object.entries(p.mirror.dropped)) this.inc({ pool: p.name, reason }, v);
        }
      },
    });

    // --- process ---
    new Counter({
      name: n.configReloads, help: 'Config reloads, by result.', labelNames: ['result'], registers: reg,
      collect() {
        this.reset();
        this.inc({ result: 'success' }, snap().process.reloads);
        this.inc({ result: 'failure' }, snap().process.reloadFailures);
      },
    });
    new Counter({
      name: n.acceptErrors, help: 'Errors accepting connections (EMFILE and the like).', registers: reg,
      collect() {
        this.reset();
        this.inc(snap().process.acceptErrors);
      },
    });
    new Counter({
      name: n.fdExhausted, help: 'Accepts and backend dials that failed for lack of file descriptors.', registers: reg,
      collect() {
        this.reset();
        this.inc(snap().process.fdExhausted);
      },
    });
    new Counter({
      name: n.accessLogDropped, help: 'Access-log lines dropped because the log target was slower than the traffic or failing.', registers: reg,
      collect() {
        this.reset();
        this.inc(snap().process.accessLogDropped);
      },
    });
    new Gauge({
      name: n.connectionsHeld, help: 'Connections held over an accept-time limit (overLimit: queue).', registers: reg,
      collect() {
        this.set(snap().process.heldConnections);
      },
    });
    // Only when a listener uses a shared store of source limits.
    new Counter({
      name: n.sourceLimitStoreErrors, help: 'Failed or timed-out commands to the shared store of source limits, and connection errors.', registers: reg,
      collect() {
        this.reset();
        const st = snap().process.sourceLimitStore;
        if (st) this.inc(st.errors);
      },
    });
    new Counter({
      name: n.sourceLimitStoreFallbacks, help: 'Times a process fell back from the shared store of source limits (it went away).', registers: reg,
      collect() {
        this.reset();
        const st = snap().process.sourceLimitStore;
        if (st) this.inc(st.fallbacks);
      },
    });
    new Gauge({
      name: n.sourceLimitStoreAway, help: 'Processes whose shared store of source limits is away now (0 = all reach it).', registers: reg,
      collect() {
        this.reset();
        const st = snap().process.sourceLimitStore;
        if (st) this.set(st.away);
      },
    });
    this.#adminActions = new Counter({
      name: n.adminActions, help: 'Admin API actions, by action and HTTP status.', labelNames: ['action', 'status'], registers: reg,
    });
  }

  /** Content-Type of {@link render}'s output. */
  get contentType(): string {
    return this.#registry.contentType;
  }

  /** Counts one admin action (called by the admin server, off the data path). */
  countAdminAction(action: string, status: number): void {
    this.#adminActions.inc({ action, status: String(status) });
  }

  /** The Prometheus text exposition of every metric, from one fresh snapshot. */
  render(): Promise<string> {
    const run = async (): Promise<string> => {
      this.#current = await this.#read();
      try {
        const own = await this.#registry.metrics();
        const proc = await defaultMetricsRegistry().metrics();
        return `${own}\n${proc}`;
      } finally {
        this.#current = undefined;
      }
    };
    const p = this.#queue.then(run);
    this.#queue = p.catch(() => undefined);
    return p;
  }
}
