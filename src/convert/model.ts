/**
 * @module convert/model — what a converter builds from an HAProxy or nginx config, and how it
 * is written out as l4lb YAML with a comment on everything that could not be carried over.
 */

/** A directive of the source config, as a note on the converted output. */
export interface Note {
  /** Line in the source file. */
  line: number;
  /** The directive as written (trimmed). */
  text: string;
  /** Why it was not carried over, or what it became when that needs saying. */
  why: string;
  /** True when the directive's effect is lost (the command exits 3). */
  dropped: boolean;
}

/** A listener or pool of the output, with the notes that belong next to it. */
export interface Section {
  value: Record<string, unknown>;
  notes: Note[];
}

/** The converted config, before it is written out. */
export interface Converted {
  /** `HAProxy` or `nginx`. */
  source: string;
  /** Top-level keys other than listeners and pools (workers, maxConnections). */
  top: Record<string, unknown>;
  listeners: Section[];
  pools: Section[];
  /** Notes about the whole file (process settings, sections out of scope). */
  notes: Note[];
}

/** A source config that cannot be read as the format it claims to be. */
export class ConvertSyntaxError extends Error {
  readonly line: number;

  constructor(line: number, message: string) {
    super(message);
    this.name = 'ConvertSyntaxError';
    this.line = line;
  }
}

/** Collects notes for one place of the output. */
export class Notes {
  readonly list: Note[] = [];

  /** The directive's effect is lost. */
  drop(line: number, text: string, why: string): void {
    this.list.push({ line, text, why, dropped: true });
  }

  /** Carried over, with something the reader should know. */
  note(line: number, text: string, why: string): void {
    this.list.push({ line, text, why, dropped: false });
  }
}

/** Durations as the source writes them (`5s`, `30000`, `1m`), in l4lb's form; undefined if not one. */
export function durationOf(text: string, defaultUnit: 'ms' | 's'): string | undefined {
  const m = /^(\d+)(us|ms|s|m|h|d)?$/.exec(text.trim());
  if (m === null) return undefined;
  const unit = m[2] ?? defaultUnit;
  if (unit === 'us') return `${Math.max(1, Math.round(Number(m[1]) / 1000))}ms`;
  return `${m[1]}${unit}`;
}

/** Milliseconds of an l4lb duration produced by {@link durationOf}. */
export function durationMs(d: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(d);
  if (m === null) return NaN;
  const factor = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as 'ms' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * factor;
}

// ---------------------------------------------------------------------------------------------
// YAML output.

const PLAIN_RE = /^[A-Za-z0-9_][A-Za-z0-9_.:/@-]*$/;
const YAML_WORDS = /^(true|false|yes|no|on|off|null|y|n|~)$/i;

function scalar(v: unknown): string {
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  const s = String(v);
  // Plain when YAML reads it back as the same string; JSON's quoting is valid YAML otherwise.
  if (PLAIN_RE.test(s) && !YAML_WORDS.test(s) && !/^[\d.+-]+$/.test(s) && !/:$/.test(s)) return s;
  return JSON.stringify(s);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A value on one line: scalars, and flow `{ }` / `[ ]` for small objects and lists. */
function flow(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(flow).join(', ')}]`;
  if (isRecord(v)) {
    const entries = Object.entries(v).filter(([, x]) => x !== undefined);
    return `{ ${entries.map(([k, x]) => `${k}: ${flow(x)}`).join(', ')} }`;
  }
  return scalar(v);
}

/** Keys whose value is a list of objects written one per line. */
const BLOCK_LISTS = new Set(['backends', 'acl', 'routes', 'certificates']);

/** The order keys are written in, as docs/configuration.md lists them; others after. */
const KEY_ORDER = [
  'name', 'listen', 'pool', 'balance', 'hashKey', 'retries', 'maxConnections', 'timeouts', 'acl', 'aclDefault', 'sourceLimits',
  'acceptProxy', 'tls', 'routes', 'slowStart', 'proxyProtocol', 'healthCheck', 'passive', 'backends',
];

function rank(k: string): number {
  const i = KEY_ORDER.indexOf(k);
  return i < 0 ? KEY_ORDER.length : i;
}

/** One mapping at `indent`, the first line prefixed by `first` (`- ` for a list item). */
function block(v: Record<string, unknown>, indent: string, first: string): string[] {
  const out: string[] = [];
  let prefix = first;
  for (const [k, x] of Object.entries(v).sort(([a], [b]) => rank(a) - rank(b))) {
    if (x === undefined) continue;
    const lead = `${indent}${prefix}`;
    prefix = ' '.repeat(first.length);
    if (Array.isArray(x) && BLOCK_LISTS.has(k) && x.length > 0) {
      out.push(`${lead}${k}:`);
      for (const item of x) out.push(`${indent}${' '.repeat(first.length)}  - ${flow(item)}`);
    } else {
      out.push(`${lead}${k}: ${flow(x)}`);
    }
  }
  return out;
}

function comment(n: Note, file: string, indent: string): string {
  const what = n.dropped ? 'not carried over' : 'note';
  return `${indent}# ${file}:${n.line}: ${what}: ${n.text.replace(/\s+/g, ' ')} -- ${n.why}`;
}

/** Writes the converted config as YAML, a comment for every note. */
export function toYaml(c: Converted, file: string): string {
  const dropped = [c.notes, ...c.listeners.map((s) => s.notes), ...c.pools.map((s) => s.notes)].flat().filter((n) => n.dropped).length;
  const out = [
    `# l4lb config converted from ${c.source} (${file}) by \`l4lb convert\`.`,
    dropped > 0
      ? `# ${dropped} directive(s) could not be carried over: see the "not carried over" comments.`
      : '# Every directive was carried over.',
    '# Check it with `l4lb check FILE`; docs/coming-from-haproxy-nginx.md maps the terms.',
  ];
  for (const n of c.notes) out.push(comment(n, file, ''));
  for (const [k, v] of Object.entries(c.top)) if (v !== undefined) out.push(`${k}: ${flow(v)}`);
  for (const [key, sections] of [['listeners', c.listeners], ['pools', c.pools]] as const) {
    out.push(`${key}:`);
    if (sections.length === 0) out.push('  []');
    for (const s of sections) {
      for (const n of s.notes) out.push(comment(n, file, '  '));
      out.push(...block(s.value, '  ', '- '));
    }
  }
  return `${out.join('\n')}\n`;
}

/** Whether anything was dropped (the command's exit code 3). */
export function anythingDropped(c: Converted): boolean {
  return [c.notes, ...c.listeners.map((s) => s.notes), ...c.pools.map((s) => s.notes)].flat().some((n) => n.dropped);
}
