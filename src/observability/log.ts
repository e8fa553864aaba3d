/**
 * @module observability/log — the process logger (pino, JSON lines on stderr) and the
 * names of the fields every log line uses, in one place.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';
import { stderrLines, type LineWriter } from './line-writer.js';

export type { Logger };

/** Field names used across log lines; keep them stable, users grep for them. */
export const LogFields = {
  listener: 'listener',
  pool: 'pool',
  /** The backend's name (as the admin API, metrics and events show it). */
  backend: 'backend',
  /** The backend's HOST:PORT, next to its name. */
  backendAddress: 'backendAddress',
  client: 'client',
  clientPort: 'clientPort',
  reason: 'reason',
  err: 'err',
} as const;

/** Marks a logger made by {@link createLogger} with the writer its lines go to. */
const WRITER = Symbol('l4lb.lineWriter');

/**
 * Creates the process logger writing JSON lines to stderr (fd 2), through the process's one
 * batched stderr writer (observability/line-writer.ts), which the stderr access log shares.
 */
export function createLogger(level: LevelWithSilent = 'info'): Logger {
  const writer = stderrLines();
  // pino calls flush(cb) from logger.flush() when the destination has one; cb runs once the
  // lines have left the process (a cluster worker waits for it before process.exit).
  const destination = {
    write: (line: string) => void writer.write(line),
    flush: (cb: () => void) => writer.whenWritten(cb),
  };
  const logger = pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
  Object.defineProperty(logger, WRITER, { value: writer });
  return logger;
}

/** The writer of a logger made by {@link createLogger} (or a child of one), else undefined. */
export function processLineWriter(logger: Logger): LineWriter | undefined {
  return (logger as unknown as Record<symbol, LineWriter | undefined>)[WRITER];
}

/** A logger that drops everything: for embedders and tests that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
