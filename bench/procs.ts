/**
 * @module bench/procs — start, track and always stop the benchmark's child processes.
 *
 * Every child runs in its own process group (`detached: true`) so that stopping it also stops
 * what it forked (nginx workers, l4lb workers) and so that a Ctrl-C in the terminal reaches only
 * the bench, which then stops the groups itself. The registry is emptied on normal exit, on
 * SIGINT/SIGTERM and on an uncaught error; temp dirs registered here are removed at the same time.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, rmSync } from 'node:fs';
import { connect } from 'node:net';

/** How long a stopped child gets between SIGTERM and SIGKILL. */
const STOP_GRACE_MS = 2000;
/** How much of a long-running child's output is kept for error messages. */
const TAIL_CHARS = 8192;
/** Poll interval while waiting for a port to accept connections. */
const PORT_POLL_MS = 50;

/** How a child ended. */
export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Options of {@link startProcess}. */
export interface StartOptions {
  /** CPU list for `taskset -c` (e.g. `0` or `0,1`); omitted means no pinning. */
  cpus?: string;
  /** Open an IPC channel to the child (Node children only). */
  ipc?: boolean;
  /** Keep all of stdout instead of a tail (for commands whose output is parsed). */
  keepStdout?: boolean;
  /** Send stdout / stderr to this file (created or truncated) instead of a pipe: a proxy's log. */
  stdoutFile?: string;
  stderrFile?: string;
  env?: NodeJS.ProcessEnv;
}

/** A child process the registry will stop on exit. */
export class ManagedProcess {
  readonly name: string;
  readonly child: ChildProcess;
  readonly pid: number;
  /** Resolves when the process has exited. */
  readonly exited: Promise<ExitInfo>;
  #exit: ExitInfo | undefined;
  #stdout = '';
  #stderr = '';
  #keepStdout: boolean;
  #lineWaiters: Array<{ re: RegExp; resolve: (line: string) => void }> = [];
  #partialLine = '';

  constructor(name: string, child: ChildProcess, keepStdout: boolean) {
    this.name = name;
    this.child = child;
    if (child.pid === undefined) throw new Error(`${name}: spawn failed`);
    this.pid = child.pid;
    this.#keepStdout = keepStdout;
    child.stdout?.setEncoding('utf8').on('data', (s: string) => this.#onStdout(s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => {
      this.#stderr = (this.#stderr + s).slice(-TAIL_CHARS);
    });
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => {
        this.#exit = { code, signal };
        registry.delete(this);
        resolve(this.#exit);
      });
    });
  }

  /** Exit status, or undefined while the process runs. */
  get exit(): ExitInfo | undefined {
    return this.#exit;
  }

  get stdout(): string {
    return this.#stdout;
  }

  get stderr(): string {
    return this.#stderr;
  }

  /** The last lines of stderr (or stdout when stderr is empty), for error messages. */
  tail(maxChars = 600): string {
    const text = (this.#stderr.trim() || this.#stdout.trim()).slice(-maxChars);
    return text.replace(/\s+/g, ' ');
  }

  /** Resolves with the first stdout line matching `re` (already printed or to come). */
  waitForLine(re: RegExp, timeoutMs: number): Promise<string> {
    const seen = this.#stdout.split('\n').find((l) => re.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#lineWaiters = this.#lineWaiters.filter((w) => w !== waiter);
        reject(new Error(`${this.name}: no line matching ${re} within ${timeoutMs} ms (${this.tail()})`));
      }, timeoutMs);
      const waiter = {
        re,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      this.#lineWaiters.push(waiter);
      void this.exited.then((e) => {
        clearTimeout(timer);
        reject(new Error(`${this.name}: exited (${describeExit(e)}) before printing ${re}: ${this.tail()}`));
      });
    });
  }

  /** SIGTERM to the process group, SIGKILL after a grace period; resolves once exited. */
  async stop(): Promise<void> {
    if (this.#exit) return;
    signalGroup(this.pid, 'SIGTERM');
    const timer = setTimeout(() => signalGroup(this.pid, 'SIGKILL'), STOP_GRACE_MS);
    await this.exited;
    clearTimeout(timer);
    // Grandchildren (nginx workers) may outlive the leader by a moment.
    signalGroup(this.pid, 'SIGKILL');
  }

  #onStdout(s: string): void {
    this.#stdout = this.#keepStdout ? this.#stdout + s : (this.#stdout + s).slice(-TAIL_CHARS);
    if (this.#lineWaiters.length === 0) return;
    const lines = (this.#partialLine + s).split('\n');
    this.#partialLine = lines.pop() ?? '';
    for (const line of lines) {
      for (const w of [...this.#lineWaiters]) {
        if (w.re.test(line)) {
          this.#lineWaiters = this.#lineWaiters.filter((x) => x !== w);
          w.resolve(line);
        }
      }
    }
  }
}

const registry = new Set<ManagedProcess>();
const tempDirs = new Set<string>();
let hooksInstalled = false;

function signalGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/** Human-readable exit status. */
export function describeExit(e: ExitInfo): string {
  return e.signal ? `signal ${e.signal}` : `code ${e.code}`;
}

/** Starts a long-running child in its own process group, optionally pinned with taskset. */
export function startProcess(name: string, cmd: string, args: string[], opts: StartOptions = {}): ManagedProcess {
  installCleanupHooks();
  const [file, argv] = opts.cpus !== undefined ? ['taskset', ['-c', opts.cpus, cmd, ...args]] : [cmd, args];
  const out = opts.stdoutFile !== undefined ? openSync(opts.stdoutFile, 'w') : 'pipe';
  const err = opts.stderrFile !== undefined ? openSync(opts.stderrFile, 'w') : 'pipe';
  const child = spawn(file, argv, {
    detached: true,
    stdio: opts.ipc ? ['ignore', out, err, 'ipc'] : ['ignore', out, err],
    env: opts.env ?? process.env,
  });
  // The child has its own copies of the descriptors.
  for (const fd of [out, err]) if (typeof fd === 'number') closeSync(fd);
  // A spawn failure (ENOENT) surfaces as an 'error' event and an exit; keep it from throwing.
  child.on('error', () => {});
  const managed = new ManagedProcess(name, child, opts.keepStdout ?? false);
  registry.add(managed);
  return managed;
}

/** Result of {@link runCommand}. */
export interface CommandResult extends ExitInfo {
  stdout: string;
  stderr: string;
  timedOut: boolean;
}

/** Runs a command to completion (killed after `timeoutMs`), keeping all of its stdout. */
export async function runCommand(
  name: string,
  cmd: string,
  args: string[],
  opts: StartOptions & { timeoutMs: number },
): Promise<CommandResult> {
  const p = startProcess(name, cmd, args, { ...opts, keepStdout: true });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    void p.stop();
  }, opts.timeoutMs);
  const exit = await p.exited;
  clearTimeout(timer);
  // Let the pipes drain: 'exit' can come before the last 'data' event.
  await new Promise((r) => setImmediate(r));
  return { ...exit, stdout: p.stdout, stderr: p.stderr, timedOut };
}

/** Resolves once `host:port` accepts a TCP connection; rejects after `timeoutMs`. */
export async function waitForPort(host: string, port: number, timeoutMs: number, proc?: ManagedProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc?.exit) throw new Error(`${proc.name}: exited (${describeExit(proc.exit)}): ${proc.tail()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) {
      throw new Error(`${proc?.name ?? `${host}:${port}`}: port ${port} not open within ${timeoutMs} ms${proc ? ` (${proc.tail()})` : ''}`);
    }
    await sleep(PORT_POLL_MS);
  }
}

/** Registers a directory to remove when the bench exits. */
export function registerTempDir(dir: string): void {
  installCleanupHooks();
  tempDirs.add(dir);
}

/** Stops every registered child (gracefully, in parallel) and removes the temp dirs. */
export async function cleanupAll(): Promise<void> {
  await Promise.all([...registry].map((p) => p.stop()));
  removeTempDirs();
}

function removeTempDirs(): void {
  for (const dir of tempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true });
    } catch {
      // Best effort: a leftover temp dir is not worth failing the exit over.
    }
    tempDirs.delete(dir);
  }
}

/** Kills everything synchronously: the last line of defence when the process exits. */
function killAllNow(): void {
  for (const p of registry) signalGroup(p.pid, 'SIGKILL');
  registry.clear();
  removeTempDirs();
}

function installCleanupHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllNow);
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const) {
    process.on(signal, () => {
      process.stderr.write(`\nbench: ${signal}, stopping ${registry.size} child process(es)\n`);
      const force = setTimeout(() => process.exit(code), STOP_GRACE_MS + 1000);
      void cleanupAll().finally(() => {
        clearTimeout(force);
        process.exit(code);
      });
    });
  }
  process.on('uncaughtException', (err) => {
    process.stderr.write(`bench: uncaught error: ${err.stack ?? err}\n`);
    killAllNow();
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    process.stderr.write(`bench: unhandled rejection: ${err instanceof Error ? err.stack : String(err)}\n`);
    killAllNow();
    process.exit(1);
  });
}

/** Promise-based sleep. */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
