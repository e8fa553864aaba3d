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
  return {
    enabled: true,
    write(rec) {
      // Written by hand rather than through a pino logger: a file line carries no level, and
      // pino cannot drop the level (a level formatter returning {} makes it write `{,"time"`).
      dest.write(`${JSON.stringify({ time: new Date().toISOString(), ...rec })}\n`);
    },
    reopen() {
      dest.reopen();
    },
    flush() {
      dest.flushSync();
    },
  };
}
