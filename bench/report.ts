/**
 * @module bench/report — turn raw samples into per-metric numbers, ratios against the
 * baseline, PASS/MISS per target, and the tables printed to stdout and written as Markdown.
 */
import type { BulkSample, CpuReading, IdleMemorySample, MaxConnSample, WrkSample } from './measure.js';
import type { ContenderKind } from './servers.js';

/** Other load during a kept sample worth mentioning under the tables, in cores. */
const NOISY_SAMPLE_CORES = 0.1;

/** Every number the bench reports per contender. */
export type MetricId =
  | 'bulk1'
  | 'bulk4'
  | 'cpuPerGB'
  | 'userPerGB'
  | 'connPerSec'
  | 'cpuPerConnUs'
  | 'userPerConnUs'
  | 'logConnPerSec'
  | 'logCpuPerConnUs'
  | 'logLineUs'
  | 'stderrLogCpuPerConnUs'
  | 'stderrLogLineUs'
  | 'kaReqPerSec'
  | 'kaP50Ms'
  | 'kaP99Ms'
  | 'idleKiBPerConn'
  | 'kaKiBPerConn'
  | 'maxHeld';

/** What a contender's results are judged against. */
export interface TargetDef {
  /** `ratio`: contender / baseline; `absolute`: the contender's own value. */
  kind: 'ratio' | 'absolute';
  op: '>=' | '<=';
  /** The threshold, which may depend on the contender (Node version) or the run (concurrency target). */
  value: (c: ContenderResult, run: RunInfo) => number;
  /** How the threshold reads in a table. */
  describe: (c: ContenderResult | undefined, run: RunInfo) => string;
}

/** One reported metric. */
export interface MetricDef {
  id: MetricId;
  label: string;
  /** Short label for the chart. */
  short: string;
  unit: string;
  better: 'higher' | 'lower';
  digits: number;
  target?: TargetDef;
  /** The baseline's metric this one is divided by, when not the same (l4lb's stderr log against HAProxy's file log). */
  baselineId?: MetricId;
}

/** The Node major version a contender runs on, if it runs on Node. */
export function nodeMajor(c: ContenderResult): number | undefined {
  const m = /^v(\d+)\./.exec(c.node ?? '');
  return m ? Number(m[1]) : undefined;
}

const ratio = (op: '>=' | '<=', v: number): TargetDef => ({
  kind: 'ratio',
  op,
  value: () => v,
  describe: () => `${op === '>=' ? '≥' : '≤'} ${v.toFixed(2)}×`,
});

/**
 * A ratio target of issue 14 for Node 24 and later; Node 20 (end of life) keeps the earlier
 * one, which it must not fall below.
 */
const ratioByNode = (op: '>=' | '<=', v: number, node20: number): TargetDef => ({
  kind: 'ratio',
  op,
  value: (c) => ((nodeMajor(c) ?? 24) < 24 ? node20 : v),
  describe: (c) => {
    const sym = op === '>=' ? '≥' : '≤';
    if (c) return `${sym} ${((nodeMajor(c) ?? 24) < 24 ? node20 : v).toFixed(2)}×`;
    return `${sym} ${v}× (Node 20: ${node20}×)`;
  },
});

const absolute = (op: '>=' | '<=', v: number, unit: string): TargetDef => ({
  kind: 'absolute',
  op,
  value: () => v,
  describe: () => `${op === '>=' ? '≥' : '≤'} ${v} ${unit}`,
});

/** Every metric, in table order, with the targets. */
export const METRICS: MetricDef[] = [
  { id: 'bulk1', label: 'bulk throughput, 1 stream', short: 'bulk 1 stream', unit: 'Gbit/s', better: 'higher', digits: 2, target: ratio('>=', 1.3) },
  { id: 'bulk4', label: 'bulk throughput, 4 streams', short: 'bulk 4 streams', unit: 'Gbit/s', better: 'higher', digits: 2, target: ratio('>=', 1.3) },
  { id: 'cpuPerGB', label: 'proxy CPU per GB relayed', short: 'CPU / GB', unit: 'CPU s/GB', better: 'lower', digits: 3, target: ratio('<=', 0.6) },
  { id: 'userPerGB', label: '  ↳ of which user space', short: 'user CPU / GB', unit: 'CPU s/GB', better: 'lower', digits: 3 },
  { id: 'connPerSec', label: 'new connections/s', short: 'new conn/s', unit: 'conn/s', better: 'higher', digits: 0, target: ratioByNode('>=', 0.85, 0.65) },
  { id: 'cpuPerConnUs', label: 'proxy CPU per new connection', short: 'CPU / conn', unit: 'CPU µs', better: 'lower', digits: 1, target: ratioByNode('<=', 1.2, 2.2) },
  { id: 'userPerConnUs', label: '  ↳ of which user space', short: 'user CPU / conn', unit: 'CPU µs', better: 'lower', digits: 1 },
  { id: 'logConnPerSec', label: 'new connections/s, logs on (file)', short: 'new conn/s, logs', unit: 'conn/s', better: 'higher', digits: 0, target: ratio('>=', 0.8) },
  { id: 'logCpuPerConnUs', label: 'proxy CPU per new connection, logs on (file)', short: 'CPU / conn, logs', unit: 'CPU µs', better: 'lower', digits: 1, target: ratio('<=', 1.3) },
  { id: 'logLineUs', label: '  ↳ cost of one log line (logs on − off)', short: 'CPU / log line', unit: 'CPU µs', better: 'lower', digits: 1, target: absolute('<=', 10, 'µs') },
  {
    id: 'stderrLogCpuPerConnUs',
    label: 'proxy CPU per new connection, l4lb defaults (stderr to a file)',
    short: 'CPU / conn, stderr log',
    unit: 'CPU µs',
    better: 'lower',
    digits: 1,
    target: ratio('<=', 1.3),
    baselineId: 'logCpuPerConnUs',
  },
  {
    id: 'stderrLogLineUs',
    label: '  ↳ cost of one log line (defaults − logs off)',
    short: 'CPU / stderr line',
    unit: 'CPU µs',
    better: 'lower',
    digits: 1,
    target: absolute('<=', 10, 'µs'),
    baselineId: 'logLineUs',
  },
  { id: 'kaReqPerSec', label: 'keep-alive req/s', short: 'keep-alive req/s', unit: 'req/s', better: 'higher', digits: 0, target: ratio('>=', 0.9) },
  { id: 'kaP50Ms', label: 'keep-alive latency p50', short: 'p50', unit: 'ms', better: 'lower', digits: 3 },
  { id: 'kaP99Ms', label: 'keep-alive latency p99', short: 'p99', unit: 'ms', better: 'lower', digits: 3, target: ratio('<=', 1.6) },
  {
    id: 'idleKiBPerConn',
    label: 'RSS per idle proxied connection',
    short: 'memory / idle conn',
    unit: 'KiB',
    better: 'lower',
    digits: 2,
    target: absolute('<=', 5, 'KiB'),
  },
  {
    id: 'kaKiBPerConn',
    label: 'RSS per keep-alive connection after a request',
    short: 'memory / keep-alive conn',
    unit: 'KiB',
    better: 'lower',
    digits: 2,
    target: absolute('<=', 4, 'KiB'),
  },
  {
    id: 'maxHeld',
    label: 'concurrent connections held',
    short: 'max concurrent',
    unit: 'conns',
    better: 'higher',
    digits: 0,
    target: {
      kind: 'absolute',
      op: '>=',
      value: (_c, run) => run.maxConnTarget,
      describe: (_c, run) => `≥ ${run.maxConnTarget}`,
    },
  },
];

/** Looks up a metric definition. */
export function metricDef(id: MetricId): MetricDef {
  const m = METRICS.find((d) => d.id === id);
  if (!m) throw new Error(`unknown metric ${id}`);
  return m;
}

/** Raw samples of one contender in one suite. */
export interface ContenderResult {
  id: string;
  kind: ContenderKind;
  workers: number;
  cpus: string;
  /** Node version (`v24.1.0`) for Node contenders. */
  node?: string;
  available: boolean;
  /** Why the contender could not run (start failure), when unavailable. */
  unavailableReason?: string;
  bulk: BulkSample[];
  newConn: WrkSample[];
  /** New connections with an access log to a file (absent in runs before session 5). */
  newConnLog?: WrkSample[];
  /** New connections with l4lb's default log (stderr, to a file); l4lb only. */
  newConnLogStderr?: WrkSample[];
  keepAlive: WrkSample[];
  idleMemory?: IdleMemorySample;
  /** Memory per connection held open after one request and its answer. */
  kaMemory?: IdleMemorySample;
  maxConns?: MaxConnSample;
  /** Phases that failed, with the reason; their samples are missing. */
  failures: string[];
  /** Samples taken again because other processes were busy meanwhile. */
  repeats: number;
}

/** Facts about the run that targets and tables need. */
export interface RunInfo {
  quick: boolean;
  rounds: number;
  durationS: number;
  idleConns: number;
  maxConnTarget: number;
  /** Buffer size given to HAProxy and nginx, when not their defaults. */
  bufferSize?: number;
}

/** One comparison: a set of contenders measured in alternating rounds against a baseline. */
export interface SuiteResult {
  id: string;
  title: string;
  /** Where processes ran. */
  placement: string;
  baseline: string;
  metrics: MetricId[];
  /** Whether targets apply (only to the single-core comparison). */
  judged: boolean;
  contenders: ContenderResult[];
}

/** Median of the finite values; NaN when there are none. */
export function median(values: number[]): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** CPU per unit over all samples together (sum of CPU over sum of units), NaN without CPU readings. */
function cpuPer<T extends CpuReading>(samples: T[], units: (s: T) => number, scale: number, userOnly = false): number {
  let cpu = 0;
  let total = 0;
  for (const s of samples) {
    const c = userOnly ? s.cpuUserS : s.cpuS;
    if (c === undefined) return NaN;
    cpu += c;
    total += units(s);
  }
  return total > 0 ? (cpu / total) * scale : NaN;
}

/** The reported value of one metric for one contender (NaN when not measured). */
export function metricValue(c: ContenderResult, id: MetricId): number {
  switch (id) {
    case 'bulk1':
      return median(c.bulk.filter((s) => s.streams === 1).map((s) => s.gbps));
    case 'bulk4':
      return median(c.bulk.filter((s) => s.streams === 4).map((s) => s.gbps));
    case 'cpuPerGB':
      return cpuPer(c.bulk, (s) => s.bytes / 1e9, 1);
    case 'userPerGB':
      return cpuPer(c.bulk, (s) => s.bytes / 1e9, 1, true);
    case 'connPerSec':
      return median(c.newConn.map((s) => s.reqPerSec));
    case 'cpuPerConnUs':
      return cpuPer(c.newConn, (s) => s.requests, 1e6);
    case 'userPerConnUs':
      return cpuPer(c.newConn, (s) => s.requests, 1e6, true);
    case 'logConnPerSec':
      return median((c.newConnLog ?? []).map((s) => s.reqPerSec));
    case 'logCpuPerConnUs':
      return cpuPer(c.newConnLog ?? [], (s) => s.requests, 1e6);
    case 'logLineUs':
      return metricValue(c, 'logCpuPerConnUs') - metricValue(c, 'cpuPerConnUs');
    case 'stderrLogCpuPerConnUs':
      return cpuPer(c.newConnLogStderr ?? [], (s) => s.requests, 1e6);
    case 'stderrLogLineUs':
      return metricValue(c, 'stderrLogCpuPerConnUs') - metricValue(c, 'cpuPerConnUs');
    case 'kaReqPerSec':
      return median(c.keepAlive.map((s) => s.reqPerSec));
    case 'kaP50Ms':
      return median(c.keepAlive.map((s) => s.p50Ms));
    case 'kaP99Ms':
      return median(c.keepAlive.map((s) => s.p99Ms));
    case 'idleKiBPerConn':
      return c.idleMemory?.kibPerConn ?? NaN;
    case 'kaKiBPerConn':
      return c.kaMemory?.kibPerConn ?? NaN;
    case 'maxHeld':
      return c.maxConns?.held ?? NaN;
  }
}

/** Contender value / baseline value. */
export function ratioToBaseline(suite: SuiteResult, c: ContenderResult, id: MetricId): number {
  const base = suite.contenders.find((x) => x.id === suite.baseline);
  if (!base) return NaN;
  return metricValue(c, id) / metricValue(base, metricDef(id).baselineId ?? id);
}

/** Whether targets are evaluated for a contender: l4lb, and the plain Node proxy as a reference. */
export function isJudged(suite: SuiteResult, c: ContenderResult): boolean {
  return suite.judged && (c.kind === 'l4lb' || c.kind === 'node-pipe');
}

/** PASS / MISS / n/a of one contender against one metric's target, or undefined without a target. */
export function verdict(suite: SuiteResult, c: ContenderResult, m: MetricDef, run: RunInfo): 'PASS' | 'MISS' | 'n/a' | undefined {
  if (!m.target || !isJudged(suite, c)) return undefined;
  const v = m.target.kind === 'ratio' ? ratioToBaseline(suite, c, m.id) : metricValue(c, m.id);
  if (!Number.isFinite(v)) return 'n/a';
  const t = m.target.value(c, run);
  return (m.target.op === '>=' ? v >= t : v <= t) ? 'PASS' : 'MISS';
}

function fmt(v: number, digits: number): string {
  if (!Number.isFinite(v)) return 'n/a';
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Rows of the absolute-value table: metric, unit, one cell per contender. */
function valueRows(suite: SuiteResult): string[][] {
  const header = ['metric', 'unit', ...suite.contenders.map((c) => c.id)];
  const rows = suite.metrics.map((id) => {
    const m = metricDef(id);
    return [m.label, m.unit, ...suite.contenders.map((c) => (c.available ? fmt(metricValue(c, id), m.digits) : 'n/a'))];
  });
  return [header, ...rows];
}

/** Rows of the ratio table: metric, target, one cell per non-baseline proxy (ratio + verdict). */
function ratioRows(suite: SuiteResult, run: RunInfo): string[][] {
  const others = suite.contenders.filter((c) => c.id !== suite.baseline);
  const header = [`ratio vs ${suite.baseline}`, ...(suite.judged ? ['target'] : []), ...others.map((c) => c.id)];
  const rows = suite.metrics.map((id) => {
    const m = metricDef(id);
    const cells = others.map((c) => {
      if (!c.available) return 'n/a';
      let r = fmt(ratioToBaseline(suite, c, id), 2);
      const v = verdict(suite, c, m, run);
      // An absolute target is judged on the value, so show it next to the ratio.
      if (v && m.target?.kind === 'absolute') r += ` (${fmt(metricValue(c, id), m.digits)})`;
      return v && v !== 'n/a' ? `${r} ${v}` : r;
    });
    const target = m.target ? m.target.describe(undefined, run) : '';
    return [`${m.label} (${m.better} is better)`, ...(suite.judged ? [target] : []), ...cells];
  });
  return [header, ...rows];
}

function padTable(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => [...(r[i] ?? '')].length)));
  return rows
    .map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  '))
    .join('\n');
}

function markdownTable(rows: string[][]): string {
  const [head, ...body] = rows;
  const line = (r: string[]) => `| ${r.join(' | ')} |`;
  return [line(head), line(head.map((_, i) => (i === 0 ? '---' : '---:'))), ...body.map(line)].join('\n');
}

function notes(suite: SuiteResult): string[] {
  const out: string[] = [];
  for (const c of suite.contenders) {
    if (!c.available) out.push(`${c.id}: not run: ${c.unavailableReason ?? 'unavailable'}`);
    for (const f of c.failures) out.push(`${c.id}: ${f}`);
    const wrkErrors = [...c.newConn, ...(c.newConnLog ?? []), ...(c.newConnLogStderr ?? []), ...c.keepAlive].reduce((n, s) => n + s.errors, 0);
    if (wrkErrors > 0) out.push(`${c.id}: wrk reported ${wrkErrors} socket errors / non-2xx responses`);
    if (c.maxConns && c.maxConns.errors > 0) {
      const codes = Object.entries(c.maxConns.errorCodes).map(([k, v]) => `${k}×${v}`).join(', ');
      out.push(`${c.id}: concurrency stopped at ${c.maxConns.held} (next step: ${c.maxConns.errors} errors: ${codes})`);
    }
    const samples = [...c.bulk, ...c.newConn, ...(c.newConnLog ?? []), ...(c.newConnLogStderr ?? []), ...c.keepAlive];
    const worst = Math.max(0, ...samples.map((x) => x.foreignCores));
    if (c.repeats > 0 || worst > NOISY_SAMPLE_CORES) {
      out.push(`${c.id}: other processes were busy (${c.repeats} sample(s) taken again; the kept ones saw up to ${worst.toFixed(2)} cores of other load)`);
    }
    if (c.idleMemory && c.idleMemory.errors > 0) out.push(`${c.id}: ${c.idleMemory.errors} errors while holding idle connections`);
    if (c.kaMemory && c.kaMemory.errors > 0) out.push(`${c.id}: ${c.kaMemory.errors} errors while holding keep-alive connections`);
  }
  return out;
}

/** The plain-text report of one suite, as printed to stdout. */
export function textReport(suite: SuiteResult, run: RunInfo): string {
  const parts = [
    `== ${suite.title} ==`,
    `placement: ${suite.placement}`,
    '',
    padTable(valueRows(suite)),
    '',
    padTable(ratioRows(suite, run)),
  ];
  const n = notes(suite);
  if (n.length > 0) parts.push('', 'notes:', ...n.map((x) => `  - ${x}`));
  return parts.join('\n');
}

/** The Markdown report of one suite (for docs/performance.md). */
export function markdownReport(suite: SuiteResult, run: RunInfo): string {
  const parts = [
    `### ${suite.title}`,
    '',
    `Placement: ${suite.placement}.`,
    '',
    markdownTable(valueRows(suite)),
    '',
    markdownTable(ratioRows(suite, run)),
  ];
  const n = notes(suite);
  if (n.length > 0) parts.push('', ...n.map((x) => `- ${x}`));
  return parts.join('\n');
}

/** Per-suite summary stored in the JSON next to the raw samples. */
export function summarize(suite: SuiteResult, run: RunInfo): Record<string, Record<string, { value: number | null; ratio: number | null; verdict?: string }>> {
  const out: Record<string, Record<string, { value: number | null; ratio: number | null; verdict?: string }>> = {};
  const num = (v: number) => (Number.isFinite(v) ? v : null);
  for (const c of suite.contenders) {
    out[c.id] = {};
    for (const id of suite.metrics) {
      const v = verdict(suite, c, metricDef(id), run);
      out[c.id][id] = {
        value: num(metricValue(c, id)),
        ratio: num(ratioToBaseline(suite, c, id)),
        ...(v ? { verdict: v } : {}),
      };
    }
  }
  return out;
}
