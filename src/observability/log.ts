/**
 * @module observability/log — the process logger (pino, JSON lines on stderr) and the
 * names of the fields every log line uses, in one place.
 */
import { pino, type Logger, type LevelWithSilent } from 'pino';

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

/** Creates the process logger writing JSON lines to stderr (fd 2). */
export function createLogger(level: LevelWithSilent = 'info'): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: 2, sync: false }),
  );
}

/** A logger that drops everything: for embedders and tests that do not want output. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
