/**
 * @module test/support/watchdog — runs a server a test starts under a small `sh` watchdog: the
 * shell prints the server's pid, waits for it, and kills it as soon as its own stdin (a pipe
 * from the test process) closes — so the server cannot outlive a test process that is killed
 * before its cleanup runs.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';

export const WATCHDOG = 'exec 3<&0; "$@" </dev/null & p=$!; echo "$p"; (read _ <&3; kill -9 "$p" 2>/dev/null) & wait "$p"';

/** A server running under {@link WATCHDOG}: the shell, and the server's own pid (0 until printed). */
export interface Watched {
  shell: ChildProcess;
  pid: number;
  exited: boolean;
}

/**
 * Starts `command args…` under {@link WATCHDOG}. The server's pid is read from the shell's first
 * line of output; `onStdout` gets all the output so far (that line included) after each chunk,
 * `onStderr` each chunk of the server's stderr.
 */
export function spawnWatched(command: string, args: readonly string[], onStdout?: (all: string) => void, onStderr?: (chunk: string) => void): Watched {
  const shell = spawn('/bin/sh', ['-c', WATCHDOG, 'sh', command, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  const run: Watched = { shell, pid: 0, exited: false };
  let out = '';
  shell.once('exit', () => (run.exited = true));
  shell.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
    const m = /^(\d+)\n/.exec(out);
    if (m) run.pid = Number(m[1]);
    onStdout?.(out);
  });
  shell.stderr!.on('data', (c: Buffer) => onStderr?.(c.toString()));
  return run;
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
