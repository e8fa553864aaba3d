/**
 * @module observability/access-log — one JSON line per closed connection.
 *
 * Goes to stderr with the process log (default), to a file (reopened on SIGUSR1 for
 * logrotate), or nowhere (`off`). Lines are built by hand, not by pino: the fields of a
 * record are known, so each is written as bytes straight into the {@link LineWriter}'s batch
 * (JSON.stringify only for a string that needs escaping), which goes out in batches
 * (docs/performance.md, "Fifth pass" to "Seventh pass").
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

/** Most bytes a number takes as JSON (`-1.2345678901234567e-308`). */
const NUMBER_MAX = 25;

/** Writes the ASCII string `s` (a field name, punctuation, a number) as it is. */
function ascii(buf: Buffer, at: number, s: string): number {
  for (let i = 0; i < s.length; i++) buf[at++] = s.charCodeAt(i);
  return at;
}

/** Most bytes `s` takes as a JSON string: `\uXXXX` for every UTF-16 unit, and the quotes. */
function strMax(s: string): number {
  return 6 * s.length + 2;
}

/**
 * Writes `s` as a JSON string, as JSON.stringify would. Printable ASCII (every name and
 * address l4lb itself makes) is copied in the same pass that checks it; anything else (a
 * quote, a backslash, a control character, non-ASCII, a lone surrogate) goes through
 * JSON.stringify and a UTF-8 write.
 */
function str(buf: Buffer, at: number, s: string): number {
  const start = at;
  buf[at++] = 0x22;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return start + buf.write(JSON.stringify(s), start);
    buf[at++] = c;
  }
  buf[at++] = 0x22;
  return at;
}

/** Writes the decimal digits of the integer 0 <= n < 1e15. */
function digits(buf: Buffer, at: number, n: number): number {
  if (n < 10) {
    buf[at] = 0x30 + n;
    return at + 1;
  }
  if (n >= 0x80000000) return ascii(buf, at, `${n}`);
  // In int32 arithmetic: a division by 10 is then a multiplication.
  let v = n | 0;
  let end = at + 2;
  for (let p = 100; p <= v && p < 1e9; p *= 10) end++;
  if (v >= 1e9) end++;
  for (let i = end - 1; i >= at; i--) {
    const q = (v / 10) | 0;
    buf[i] = 0x30 + v - q * 10;
    v = q;
  }
  return end;
}

/** Writes `n` as JSON.stringify would. */
function num(buf: Buffer, at: number, n: number): number {
  if (n >= 0 && n < 1e15) {
    if (n === Math.floor(n)) return digits(buf, at, n);
    // Hundredths (connectMs is rounded to them) written from integers: the double-to-string
    // conversion V8 makes otherwise is most of a line's number formatting. Only for a number
    // that is exactly the double nearest to i.ff, whose shortest form (what JSON.stringify
    // writes) is then i.ff itself.
    const c = n * 100;
    if (c < 1e9 && c === Math.floor(c) && c / 100 === n) {
      const i = Math.floor(c / 100);
      const f = c - i * 100;
      at = digits(buf, at, i);
      buf[at++] = 0x2e;
      if (f < 10) buf[at++] = 0x30;
      return digits(buf, at, f % 10 === 0 && f >= 10 ? f / 10 : f);
    }
  }
  return ascii(buf, at, Number.isFinite(n) ? `${n}` : 'null');
}

/** `YYYY-MM-DDTHH:MM:SS.mmmZ` of `lastMs`, as bytes (see {@link setTime}). */
const isoBytes = Buffer.alloc(24);
/** The length of `YYYY-MM-DDTHH:MM:SS.`: where the milliseconds start in {@link isoBytes}. */
const MS_AT = 20;
let lastMs = -1;
let lastSecond = Number.NaN;

/**
 * Makes {@link isoBytes} `new Date(now).toISOString()`: once per millisecond the three digits,
 * once per second the rest (toISOString formats through snprintf: a few thousand
 * instructions).
 */
function setTime(now: number): void {
  if (now === lastMs) return;
  lastMs = now;
  const second = Math.floor(now / 1000);
  if (second !== lastSecond) {
    lastSecond = second;
    ascii(isoBytes, 0, new Date(second * 1000).toISOString().slice(0, MS_AT));
    isoBytes[23] = 0x5a;
  }
  const ms = now - second * 1000;
  const h = Math.floor(ms / 100);
  const t = Math.floor(ms / 10) - h * 10;
  isoBytes[MS_AT] = 0x30 + h;
  isoBytes[MS_AT + 1] = 0x30 + t;
  isoBytes[MS_AT + 2] = 0x30 + ms - h * 100 - t * 10;
}

/** `new Date(now).toISOString()`, from the same per-second prefix the access lines use. */
export function isoNow(now = Date.now()): string {
  setTime(now);
  return isoBytes.toString('latin1');
}

/** Copies `src` (a field name, a line's fixed head or tail). */
function bytes(buf: Buffer, at: number, src: Uint8Array): number {
  for (let i = 0, n = src.length; i < n; i++) buf[at++] = src[i];
  return at;
}

function key(name: string): Uint8Array {
  return Buffer.from(`,"${name}":`);
}

/** Each field's `,"name":` as bytes: copying bytes takes about half the time of copying a string's characters. */
const K = {
  listener: key('listener'),
  client: key('client'),
  clientPort: key('clientPort'),
  pool: key('pool'),
  backend: key('backend'),
  backendAddress: key('backendAddress'),
  serverName: key('serverName'),
  tries: key('tries'),
  retries: key('retries'),
  connectMs: key('connectMs'),
  durationMs: key('durationMs'),
  bytesUp: key('bytesUp'),
  bytesDown: key('bytesDown'),
  closedFirst: key('closedFirst'),
  closeKind: key('closeKind'),
  reason: key('reason'),
  code: key('code'),
  error: key('error'),
  mirrorBytes: key('mirrorBytes'),
  mirrorDropped: key('mirrorDropped'),
  replays: key('replays'),
};

/**
 * Field names, punctuation and the numbers of a line at their longest: with {@link strMax} of
 * its strings, at least what {@link writeFields} writes.
 */
const FIELDS_FIXED_MAX = Object.values(K).reduce((n, k) => n + k.length, '}\n'.length) + 9 * NUMBER_MAX;

/** The JSON text of a line's `faults` and a UDP session's own fields, made by {@link fieldsMax} for {@link writeFields}. */
let lineTail = '';

/**
 * Most bytes {@link writeFields} writes for `r`; call it right before writeFields, which
 * takes the rare fields' text it makes.
 */
function fieldsMax(r: AccessRecord): number {
  let n = FIELDS_FIXED_MAX + strMax(r.listener) + strMax(r.client) + strMax(r.closedFirst) + strMax(r.closeKind) + strMax(r.reason);
  if (r.pool !== undefined) n += strMax(r.pool);
  if (r.backend !== undefined) n += strMax(r.backend);
  if (r.backendAddress !== undefined) n += strMax(r.backendAddress);
  if (r.serverName !== undefined) n += strMax(r.serverName);
  if (r.code !== undefined) n += strMax(r.code);
  if (r.error !== undefined) n += strMax(r.error);
  if (r.mirrorDropped !== undefined) n += strMax(r.mirrorDropped);
  lineTail = '';
  if (r.faults !== undefined) lineTail = `,"faults":${JSON.stringify(r.faults)}`;
  // A UDP session's record adds its own fields after these (protocol, datagram counts).
  if ((r as { protocol?: string }).protocol !== undefined) lineTail += extraFields(r);
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  return n + 3 * lineTail.length;
}

/**
 * Writes the fields of `r` after the line's head, in the documented order (README,
 * docs/operations.md), undefined ones left out, as JSON.stringify would, then `}` and the
 * line end. {@link fieldsMax} must come first.
 */
function writeFields(buf: Buffer, at: number, r: AccessRecord): number {
  at = str(buf, bytes(buf, at, K.listener), r.listener);
  at = str(buf, bytes(buf, at, K.client), r.client);
  at = num(buf, bytes(buf, at, K.clientPort), r.clientPort);
  if (r.pool !== undefined) at = str(buf, bytes(buf, at, K.pool), r.pool);
  if (r.backend !== undefined) at = str(buf, bytes(buf, at, K.backend), r.backend);
  if (r.backendAddress !== undefined) at = str(buf, bytes(buf, at, K.backendAddress), r.backendAddress);
  if (r.serverName !== undefined) at = str(buf, bytes(buf, at, K.serverName), r.serverName);
  at = num(buf, bytes(buf, at, K.tries), r.tries);
  at = num(buf, bytes(buf, at, K.retries), r.retries);
  at = num(buf, bytes(buf, at, K.connectMs), r.connectMs);
  at = num(buf, bytes(buf, at, K.durationMs), r.durationMs);
  at = num(buf, bytes(buf, at, K.bytesUp), r.bytesUp);
  at = num(buf, bytes(buf, at, K.bytesDown), r.bytesDown);
  at = str(buf, bytes(buf, at, K.closedFirst), r.closedFirst);
  at = str(buf, bytes(buf, at, K.closeKind), r.closeKind);
  at = str(buf, bytes(buf, at, K.reason), r.reason);
  if (r.code !== undefined) at = str(buf, bytes(buf, at, K.code), r.code);
  if (r.error !== undefined) at = str(buf, bytes(buf, at, K.error), r.error);
  if (r.mirrorBytes !== undefined) at = num(buf, bytes(buf, at, K.mirrorBytes), r.mirrorBytes);
  if (r.mirrorDropped !== undefined) at = str(buf, bytes(buf, at, K.mirrorDropped), r.mirrorDropped);
  if (r.replays !== undefined) at = num(buf, bytes(buf, at, K.replays), r.replays);
  if (lineTail !== '') {
    at += buf.write(lineTail, at);
    lineTail = '';
  }
  buf[at++] = 0x7d;
  buf[at++] = 0x0a;
  return at;
}

/**
 * The fields of `r` after the line's head, in the documented order (README, docs/errors.md),
 * undefined ones left out, as JSON.stringify would, and `}\n`: the text the access log writes
 * as bytes.
 */
export function formatAccessFields(r: AccessRecord): string {
  const buf = Buffer.allocUnsafe(fieldsMax(r));
  return buf.toString('utf8', 0, writeFields(buf, 0, r));
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
    return new WriterAccessLog(writer, processLogger, target, '{"level":"info","time":"', `"${bindings},"msg":"access"`, () => processLogger.levelVal <= INFO_LEVEL);
  }
  return new WriterAccessLog(LineWriter.forFile(target), processLogger, target, '{"time":"', '"', undefined, true);
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

/**
 * An access log on a {@link LineWriter}: each line is written as bytes straight into the
 * writer's batch (`head`, the time, `tail`, the fields), with no string made for it.
 */
class WriterAccessLog implements AccessLog {
  readonly enabled = true;
  readonly #writer: LineWriter;
  readonly #logger: Logger;
  readonly #target: string;
  /** What comes before the time (`{"time":"`), and after it up to the fields, as bytes. */
  readonly #head: Uint8Array;
  readonly #tail: Uint8Array;
  /** Whether lines are written now (stderr: the process log's level lets `info` through). */
  readonly #on: (() => boolean) | undefined;
  /** The writer is this log's own (a file), not the shared stderr writer. */
  readonly #owned: boolean;
  /** The writer's drop count when this log was created, and when the last warning went out. */
  readonly #base: number;
  #warned: number;
  #lastWarnAt = 0;
  readonly #fill = (buf: Buffer, at: number, r: AccessRecord): number => {
    setTime(Date.now());
    at = bytes(buf, bytes(buf, bytes(buf, at, this.#head), isoBytes), this.#tail);
    return writeFields(buf, at, r);
  };

  constructor(writer: LineWriter, logger: Logger, target: string, head: string, tail: string, on: (() => boolean) | undefined, owned = false) {
    this.#writer = writer;
    this.#logger = logger;
    this.#target = target;
    this.#head = Buffer.from(head);
    this.#tail = Buffer.from(tail);
    this.#on = on;
    this.#owned = owned;
    this.#base = this.#warned = writer.dropped;
  }

  get dropped(): number {
    return this.#writer.dropped - this.#base;
  }

  write(rec: AccessRecord): void {
    if (this.#on !== undefined && !this.#on()) return;
    const max = this.#head.length + isoBytes.length + this.#tail.length + fieldsMax(rec);
    this.#writer.writeWith(max, this.#fill, rec);
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
