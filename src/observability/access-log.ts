/**
 * @module observability/access-log — one JSON line per closed connection.
 *
 * Goes to stderr with the process log (default), to a file (reopened on SIGUSR1 for
 * logrotate), or nowhere (`off`). Lines are built by hand, not by pino: the fields of a
 * record are known, so the line is a handful of string concatenations (JSON.stringify only
 * for a string that needs escaping), and it goes to a {@link LineWriter}, which writes once
 * per event-loop turn (docs/performance.md, "Fifth pass").
 */
import { pino, type Logger } from 'pino';
import type { AccessRecord } from '../proxy/connection.js';
import { LineWriter } from './line-writer.js';
import { processLineWriter } from './log.js';

export interface AccessLog {
  /** False for `off`: callers need not build records at all. */
  readonly enabled: boolean;
  write(rec: AccessRecord): void;
  /** Reopens the file after logrotate moved it (no-op for stderr/off). */
  reopen(): void;
  /** Writes every line accepted so far (drain, close, reload). */
  flush(): void;
  /** Flushes and lets go of the file (the log was replaced by a reload). */
  close(): void;
  /** Lines dropped since this log was created (a slow pipe, a failed write). */
  readonly dropped: number;
}

/** At most one warning about dropped lines per this many milliseconds. */
export const ACCESS_DROP_WARN_INTERVAL_MS = 10_000;
/** pino's numeric value of `info`: stderr access lines are info lines of the process log. */
const INFO_LEVEL = 30;

/** Characters JSON cannot carry as they are: quote, backslash, controls, lone surrogates. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

function str(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

function num(n: number): string {
  if (Number.isInteger(n)) return `${n}`;
  // Hundredths (connectMs is rounded to them) written from integers: the double-to-string
  // conversion V8 makes otherwise is most of a line's number formatting. Only for a number
  // that is exactly the double nearest to i.ff, whose shortest form (what JSON.stringify
  // writes) is then i.ff itself.
  const c = n * 100;
  if (c > 0 && c < 1e9 && c === Math.floor(c) && c / 100 === n) {
    const i = Math.floor(c / 100);
    const f = c - i * 100;
    return `${i}.${f < 10 ? `0${f}` : f % 10 === 0 ? f / 10 : f}`;
  }
  return Number.isFinite(n) ? `${n}` : 'null';
}

let lastMs = -1;
let lastIso = '';
let lastSecond = -1;
/** `YYYY-MM-DDTHH:MM:SS.` of `lastSecond`. */
let secondPrefix = '';

/**
 * `new Date().toISOString()`, made once per millisecond from a prefix made once per second
 * (toISOString formats through snprintf: a few thousand instructions).
 */
export function isoNow(now = Date.now()): string {
  if (now !== lastMs) {
    lastMs = now;
    const second = Math.floor(now / 1000);
    if (second !== lastSecond) {
      lastSecond = second;
      secondPrefix = new Date(second * 1000).toISOString().slice(0, 20);
    }
    const ms = now - second * 1000;
    lastIso = `${secondPrefix}${ms < 10 ? '00' : ms < 100 ? '0' : ''}${ms}Z`;
  }
  return lastIso;
}

/**
 * The fields of `r` after the line's head, in the documented order (README, docs/errors.md),
 * undefined ones left out, as JSON.stringify would.
 */
export function formatAccessFields(r: AccessRecord): string {
  let s = `,"listener":${str(r.listener)},"client":${str(r.client)},"clientPort":${num(r.clientPort)}`;
  if (r.pool !== undefined) s += `,"pool":${str(r.pool)}`;
  if (r.backend !== undefined) s += `,"backend":${str(r.backend)}`;
  if (r.backendAddress !== undefined) s += `,"backendAddress":${str(r.backendAddress)}`;
  if (r.serverName !== undefined) s += `,"serverName":${str(r.serverName)}`;
  s +=
    `,"tries":${num(r.tries)},"retries":${num(r.retries)},"connectMs":${num(r.connectMs)},"durationMs":${num(r.durationMs)}` +
    `,"bytesUp":${num(r.bytesUp)},"bytesDown":${num(r.bytesDown)}` +
    `,"closedFirst":${str(r.closedFirst)},"closeKind":${str(r.closeKind)},"reason":${str(r.reason)}`;
  if (r.code !== undefined) s += `,"code":${str(r.code)}`;
  if (r.error !== undefined) s += `,"error":${str(r.error)}`;
  if (r.mirrorBytes !== undefined) s += `,"mirrorBytes":${num(r.mirrorBytes)}`;
  if (r.mirrorDropped !== undefined) s += `,"mirrorDropped":${str(r.mirrorDropped)}`;
  if (r.replays !== undefined) s += `,"replays":${num(r.replays)}`;
  if (r.faults !== undefined) s += `,"faults":${JSON.stringify(r.faults)}`;
  // A UDP session's record adds its own fields after these (protocol, datagram counts).
  if ((r as { protocol?: string }).protocol !== undefined) s += extraFields(r);
  return `${s}}\n`;
}

/** The fields of a record beyond {@link AccessRecord}'s, in their order, as JSON.stringify writes them. */
const KNOWN_FIELDS = new Set([
  'listener', 'client', 'clientPort', 'pool', 'backend', 'backendAddress', 'serverName', 'tries', 'retries',
  'connectMs', 'durationMs', 'bytesUp', 'bytesDown', 'closedFirst', 'closeKind', 'reason', 'code', 'error',
  'mirrorBytes', 'mirrorDropped', 'replays', 'faults',
]);

function extraFields(r: AccessRecord): string {
  let s = '';
  for (const [k, v] of Object.entries(r)) {
    if (KNOWN_FIELDS.has(k) || v === undefined) continue;
    s += `,${JSON.stringify(k)}:${JSON.stringify(v)}`;
  }
  return s;
}

const OFF: AccessLog = { enabled: false, dropped: 0, write() {}, reopen() {}, flush() {}, close() {} };

/** Creates the access log for `target`: 'stderr', 'off', or a file path. */
export function createAccessLog(target: string, processLogger: Logger): AccessLog {
  if (target === 'off') return OFF;
  if (target === 'stderr') {
    const writer = processLineWriter(processLogger);
    if (writer === undefined) return viaLogger(processLogger);
    // The head pino would write for `logger.info({…}, 'access')`-style lines of this logger:
    // its bindings (pid, a cluster worker's number) and msg first, as the child did before.
    const bindings = (processLogger as unknown as Record<symbol, string>)[pino.symbols.chindingsSym] ?? '';
    const tail = `"${bindings},"msg":"access"`;
    return new WriterAccessLog(writer, processLogger, target, (r) =>
      processLogger.levelVal > INFO_LEVEL ? undefined : `{"level":"info","time":"${isoNow()}${tail}${formatAccessFields(r)}`,
    );
  }
  const writer = LineWriter.forFile(target);
  return new WriterAccessLog(writer, processLogger, target, (r) => `{"time":"${isoNow()}"${formatAccessFields(r)}`, true);
}

/** The stderr access log of an embedder's own logger: its lines go where its other lines go. */
function viaLogger(logger: Logger): AccessLog {
  const child = logger.child({ msg: 'access' });
  return {
    enabled: true,
    dropped: 0,
    write(rec) {
      child.info(rec);
    },
    reopen() {},
    flush() {},
    close() {},
  };
}

class WriterAccessLog implements AccessLog {
  readonly enabled = true;
  readonly #writer: LineWriter;
  readonly #logger: Logger;
  readonly #target: string;
  readonly #format: (r: AccessRecord) => string | undefined;
  /** The writer is this log's own (a file), not the shared stderr writer. */
  readonly #owned: boolean;
  /** The writer's drop count when this log was created, and when the last warning went out. */
  readonly #base: number;
  #warned: number;
  #lastWarnAt = 0;

  constructor(writer: LineWriter, logger: Logger, target: string, format: (r: AccessRecord) => string | undefined, owned = false) {
    this.#writer = writer;
    this.#logger = logger;
    this.#target = target;
    this.#format = format;
    this.#owned = owned;
    this.#base = this.#warned = writer.dropped;
  }

  get dropped(): number {
    return this.#writer.dropped - this.#base;
  }

  write(rec: AccessRecord): void {
    const line = this.#format(rec);
    if (line === undefined) return;
    this.#writer.write(line);
    if (this.#writer.dropped !== this.#warned) this.#warnDropped();
  }

  /** One warning per interval, saying how many lines were lost since the last one. */
  #warnDropped(): void {
    const now = Date.now();
    if (now - this.#lastWarnAt < ACCESS_DROP_WARN_INTERVAL_MS) return;
    const w = this.#writer;
    const err = w.lastError;
    w.lastError = undefined;
    this.#logger.warn(
      { target: this.#target, dropped: w.dropped - this.#warned, err: err?.message },
      'access-log lines dropped: the log target is slower than the traffic or failing',
    );
    this.#lastWarnAt = now;
    this.#warned = w.dropped;
  }

  reopen(): void {
    this.#writer.reopen();
  }

  flush(): void {
    this.#writer.flushSync();
  }

  close(): void {
    if (this.#owned) this.#writer.close();
    else this.#writer.flushSync();
  }
}
