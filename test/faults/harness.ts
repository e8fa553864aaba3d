/**
 * @module test/faults/harness — l4lb as an operator runs it, for lifecycle and fault tests:
 * the CLI with a config file (`workers` set in it), signals, and a look inside through
 * test/faults/probe.ts (sockets, timers, heap, descriptors) to prove nothing leaks.
 *
 * Every process is found through the process tree of the one started, so the same checks
 * cover a multi-process l4lb (`workers > 1`) once it exists.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import assert from 'node:assert/strict';
import { BIN, waitFor } from '../support/net.js';
import type { ProbeReport } from './probe.js';

const PROBE = pathToFileURL(join(fileURLToPath(new URL('.', import.meta.url)), 'probe.js')).href;

/** A config file's content, as written in YAML/JSON (see docs/configuration.md). */
export type RawConfig = Record<string, unknown>;

/** Options for {@link startL4lb}. */
export interface StartOptions {
  /** Value of `workers` written into the config. Default 1. */
  workers?: number;
  /**
   * Once listening, lower the descriptor limit of every l4lb process to N
   * (`prlimit --pid PID --nofile=N:N`; starting under a tiny limit would fail in module loading).
   */
  nofile?: number;
  /** Extra command-line arguments (e.g. `--watch`). */
  args?: string[];
  /** `listening on` lines to wait for; default: the number of listeners in the config. */
  listeners?: number;
}

/** The processes' view, summed over the process tree. */
export interface Probe {
  resources: Record<string, number>;
  heapUsed: number;
  arrayBuffers: number;
  rss: number;
  fds: number;
  processes: number;
}

/** A running l4lb under test. */
export interface L4lb {
  child: ChildProcess;
  pid: number;
  /** Ports of the `listening on` lines, in order. */
  ports: number[];
  /** The `admin on` URL (the config must have `admin`), once printed. */
  adminUrl(): Promise<string>;
  port: number;
  dir: string;
  configFile: string;
  /** Replaces the config file (write + rename, or in place), keeping `workers`. */
  writeConfig(cfg: RawConfig, o?: { inPlace?: boolean }): void;
  /** Sends SIGHUP (after writing `cfg` when given) and waits for the outcome in the log. */
  reload(cfg?: RawConfig): Promise<{ ok: boolean; line: Record<string, unknown> }>;
  /** Waits for the `n`-th reload outcome line (for --watch). */
  waitReloads(n: number, ms?: number): Promise<Record<string, unknown>[]>;
  /** Reloads finished so far (successful or not). */
  reloadOutcomes(): Record<string, unknown>[];
  probe(): Promise<Probe>;
  /** utime + stime of the whole process tree, in clock ticks (1/100 s). */
  cpuTicks(): number;
  /** Parsed JSON log lines so far. */
  logs(): Record<string, unknown>[];
  stderr(): string;
  /** Sends `signal` and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Kills whatever still runs and removes the temp dir. Safe to call twice. */
  close(): Promise<void>;
}

/** Starts `l4lb --config FILE` with `cfg` (plus `workers`), waiting for its listeners. */
export async function startL4lb(cfg: RawConfig, opts: StartOptions = {}): Promise<L4lb> {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-test-'));
  const configFile = join(dir, 'l4lb.json');
  const workers = opts.workers ?? 1;
  const write = (c: RawConfig, o: { inPlace?: boolean } = {}) => {
    const text = JSON.stringify({ workers, ...c }, null, 2);
    if (o.inPlace) return writeFileSync(configFile, text);
    writeFileSync(`${configFile}.tmp`, text);
    renameSync(`${configFile}.tmp`, configFile);
  };
  write(cfg);
  const nodeArgs = ['--expose-gc', '--import', PROBE, BIN, '--config', configFile, ...(opts.args ?? [])];
  const child = spawn(process.execPath, nodeArgs, { env: { ...process.env, L4LB_PROBE_DIR: dir }, stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const want = opts.listeners ?? (Array.isArray(cfg.listeners) ? cfg.listeners.length : 1);
  const ports: number[] = [];
  let adminUrl: string | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      let buf = '';
      child.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
          const line = buf.slice(0, nl);
          const m = /^listening on .*:(\d+)$/.exec(line);
          buf = buf.slice(nl + 1);
          if (line.startsWith('admin on ')) adminUrl = line.slice('admin on '.length);
          if (m) ports.push(Number(m[1]));
          if (m && ports.length === want) resolve();
        }
      });
      child.once('exit', (code) => reject(new Error(`l4lb exited with ${code} before listening:\n${err}`)));
    });
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }

  if (opts.nofile !== undefined) {
    for (const pid of processTree(child.pid!)) execFileSync('prlimit', ['--pid', String(pid), `--nofile=${opts.nofile}:${opts.nofile}`]);
  }

  const logs = (): Record<string, unknown>[] => {
    const out: Record<string, unknown>[] = [];
    for (const line of err.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // a line still being written
      }
    }
    return out;
  };
  const reloadOutcomes = () => logs().filter((l) => l.msg === 'config reloaded' || l.msg === 'reload failed; the old config keeps serving');
  const tree = () => processTree(child.pid!);

  const l4lb: L4lb = {
    child,
    pid: child.pid!,
    ports,
    async adminUrl() {
      await waitFor(() => adminUrl !== undefined, 10_000, 'the admin on line');
      return adminUrl!;
    },
    port: ports[0],
    dir,
    configFile,
    writeConfig: write,
    async reload(next) {
      const before = reloadOutcomes().length;
      if (next) write(next);
      child.kill('SIGHUP');
      const [line] = (await l4lb.waitReloads(before + 1)).slice(before);
      return { ok: line.msg === 'config reloaded', line };
    },
    async waitReloads(n, ms = 10_000) {
      await waitFor(() => reloadOutcomes().length >= n, ms, `${n} reload(s) in the log`);
      return reloadOutcomes();
    },
    reloadOutcomes,
    async probe() {
      const pids = tree();
      const seqOf = (pid: number): number => {
        try {
          return (JSON.parse(readFileSync(join(dir, `${pid}.json`), 'utf8')) as ProbeReport).seq;
        } catch {
          return 0;
        }
      };
      const before = new Map(pids.map((p) => [p, seqOf(p)]));
      // Ask again until each has answered: a report can fail (e.g. while out of descriptors).
      const deadline = Date.now() + 10_000;
      for (;;) {
        const missing = pids.filter((p) => seqOf(p) <= before.get(p)!);
        if (missing.length === 0) break;
        if (Date.now() > deadline) throw new Error(`no probe report from ${missing.join(', ')}`);
        for (const p of missing) process.kill(p, 'SIGUSR2');
        await new Promise((r) => setTimeout(r, 100));
      }
      const sum: Probe = { resources: {}, heapUsed: 0, arrayBuffers: 0, rss: 0, fds: 0, processes: pids.length };
      for (const p of pids) {
        const r = JSON.parse(readFileSync(join(dir, `${p}.json`), 'utf8')) as ProbeReport;
        for (const [k, v] of Object.entries(r.resources)) sum.resources[k] = (sum.resources[k] ?? 0) + v;
        sum.heapUsed += r.heapUsed;
        sum.arrayBuffers += r.arrayBuffers;
        sum.rss += r.rss;
        sum.fds += r.fds;
      }
      return sum;
    },
    cpuTicks() {
      let ticks = 0;
      for (const p of tree()) {
        try {
          // Fields after the command name (which may hold spaces): utime and stime are 14 and 15.
          const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' ');
          ticks += Number(f[11]) + Number(f[12]);
        } catch {
          // exited
        }
      }
      return ticks;
    },
    logs,
    stderr: () => err,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      const exited = once(child, 'exit');
      child.kill(signal);
      const [code] = (await exited) as [number | null];
      return code;
    },
    async close() {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = once(child, 'exit');
        for (const p of tree().reverse()) {
          try {
            process.kill(p, 'SIGKILL');
          } catch {
            // already gone
          }
        }
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return l4lb;
}

/** `pid` and all its descendants (Linux /proc), parents first. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    try {
      for (const tid of readdirSync(`/proc/${out[i]}/task`)) {
        const kids = readFileSync(`/proc/${out[i]}/task/${tid}/children`, 'utf8').trim();
        if (kids) for (const k of kids.split(/\s+/)) out.push(Number(k));
      }
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** Slack allowed over the baseline when checking for leaks. */
export interface LeakSlack {
  /** Extra heap after GC, bytes. Default 16 MiB. */
  heap?: number;
  /** Extra ref'ed timers. Default 1 (a log flush or a health timer in flight). */
  timers?: number;
}

/**
 * Waits until l4lb is back to `baseline`: no more sockets or descriptors than before, at most
 * `timers` extra timers, heap after GC within `heap`. Fails with the last probe otherwise.
 */
export async function assertNoLeaks(l4lb: L4lb, baseline: Probe, slack: LeakSlack = {}, ms = 10_000): Promise<Probe> {
  const heap = slack.heap ?? 16 * 1024 * 1024;
  const timers = slack.timers ?? 1;
  let last: Probe = baseline;
  const ok = (p: Probe) =>
    (p.resources.TCPSocketWrap ?? 0) <= (baseline.resources.TCPSocketWrap ?? 0) &&
    (p.resources.Timeout ?? 0) <= (baseline.resources.Timeout ?? 0) + timers &&
    p.fds <= baseline.fds &&
    p.heapUsed <= baseline.heapUsed + heap;
  try {
    await waitFor(async () => ok((last = await l4lb.probe())), ms, 'l4lb back to its baseline');
  } catch {
    assert.fail(`l4lb leaks: baseline ${JSON.stringify(baseline)}\n   now ${JSON.stringify(last)}`);
  }
  return last;
}

/** A pool config in file syntax. */
export function pool(name: string, backends: Array<number | Record<string, unknown>>, extra: Record<string, unknown> = {}): RawConfig {
  return {
    name,
    backends: backends.map((b) => (typeof b === 'number' ? `127.0.0.1:${b}` : b)),
    ...extra,
  };
}

/** A listener config in file syntax on 127.0.0.1:0. */
export function listener(name: string, poolName: string, extra: Record<string, unknown> = {}): RawConfig {
  return { name, listen: '127.0.0.1:0', pool: poolName, ...extra };
}

/**
 * A whole config. Logs at info (reload outcomes are info lines) without the access log,
 * unless `extra.log` says otherwise.
 */
export function config(listeners: RawConfig[], pools: RawConfig[], extra: Record<string, unknown> = {}): RawConfig {
  return { log: { level: 'info', access: 'off' }, listeners, pools, ...extra };
}
