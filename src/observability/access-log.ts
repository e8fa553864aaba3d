/**
 * @module observability/access-log — one JSON line per closed connection.
 *
 * Goes to stderr with the process log (default), to a file (reopened on SIGUSR1 for
 * logrotate), or nowhere (`off`).
 */
import { pino, type Logger } from 'pino';
import type { AccessRecord } from '../proxy/connection.js';

export interface AccessLog {
  /** False for `off`: callers need not build records at all. */
  readonly enabled: boolean;
  write(rec: AccessRecord): void;
  /** Reopens the file after logrotate moved it (no-op for stderr/off). */
  reopen(): void;
  flush(): void;
}

/** Creates the access log for `target`: 'stderr', 'off', or a file path. */
export function createAccessLog(target: string, processLogger: Logger): AccessLog {
  if (target === 'off') return { enabled: false, write() {}, reopen() {}, flush() {} };
  if (target === 'stderr') {
    const child = processLogger.child({ msg: 'access' });
    return {
      enabled: true,
      write(rec) {
        child.info(rec);
      },
      reopen() {},
      flush() {},
    };
  }
  const dest = pino.destination({ dest: target, sync: false, mkdir: true });
  const logger = pino(
    { base: undefined, timestamp: pino.stdTimeFunctions.isoTime, formatters: { level: () => ({}) } },
    dest,
  );
  return {
    enabled: true,
    write(rec) {
      logger.info(rec);
    },
    reopen() {
      dest.reopen();
    },
    flush() {
      dest.flushSync();
    },
  };
}
