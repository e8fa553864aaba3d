/**
 * @module test/support/watchdog — runs a server a test starts under a small `sh` watchdog: the
 * shell prints the server's pid, waits for it, and kills it as soon as its own stdin (a pipe
 * from the test process) closes — so the server cannot outlive a test process that is killed
 * before its cleanup runs.
 */
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';

export const WATCHDOG = 'exec 3<&0; "$@" </dev/null & p=$!; echo "$p"; (read _ <&3; kill -9 "$p" 2>/dev/null) & wait "$p"';

/** A server running under {@link WATCHDOG}: the shell, and the server's own pid (0 until printed). */
export interface Watched {
  shell: ChildProcess;
  pid: number;
  exited: boolean;
}

/** Kills a watched server (by its pid) and waits for its watchdog shell to exit. */
export async function stopWatched(run: Watched): Promise<void> {
  if (!run.exited && run.pid > 0) {
    try {
      process.kill(run.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  // Closing stdin ends the watchdog's reader too.
  run.shell.stdin!.end();
  if (!run.exited && run.pid === 0) run.shell.kill('SIGKILL');
  if (!run.exited) await once(run.shell, 'exit');
}
