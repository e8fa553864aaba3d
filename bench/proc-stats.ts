/**
 * @module bench/proc-stats — a process tree's CPU time and resident memory from /proc.
 *
 * A proxy may be several processes (nginx master + worker, l4lb with workers), so every reading
 * sums the whole tree below the process the bench started. CPU time is utime+stime from
 * /proc/PID/stat (all threads, so GC and libuv threads count too) in clock ticks.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

/** Used when `getconf CLK_TCK` cannot be run; the value on every Linux/x86 and arm64 build. */
const DEFAULT_CLK_TCK = 100;

let clkTck: number | undefined;

/** Clock ticks per second (`getconf CLK_TCK`), cached. */
export function clockTicksPerSecond(): number {
  if (clkTck === undefined) {
    try {
      clkTck = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || DEFAULT_CLK_TCK;
    } catch {
      clkTck = DEFAULT_CLK_TCK;
    }
  }
  return clkTck;
}

interface StatFields {
  ppid: number;
  utime: number;
  stime: number;
}

/** Parses /proc/PID/stat; the command name may hold spaces and parentheses, so split after the last ')'. */
function readStat(pid: number): StatFields | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  const rest = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // rest[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
  return { ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]) };
}

/** The pid and all its descendants that are alive now. */
export function processTree(rootPid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const stack = [rootPid];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.push(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/** CPU time of a process tree, in seconds. */
export interface CpuTimes {
  /** utime: the program's own code (for Node: JS, V8, libuv). */
  userS: number;
  /** stime: the kernel on its behalf (syscalls, TCP on loopback). */
  sysS: number;
}

/** Summed utime and stime of a process tree. */
export function cpuTimes(rootPid: number): CpuTimes {
  let utime = 0;
  let stime = 0;
  for (const pid of processTree(rootPid)) {
    const st = readStat(pid);
    utime += st?.utime ?? 0;
    stime += st?.stime ?? 0;
  }
  const tck = clockTicksPerSecond();
  return { userS: utime / tck, sysS: stime / tck };
}

/** Summed VmRSS of a process tree, in KiB. */
export function rssKiB(rootPid: number): number {
  let kib = 0;
  for (const pid of processTree(rootPid)) {
    try {
      const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) kib += Number(m[1]);
    } catch {
      // The process ended between listing and reading.
    }
  }
  return kib;
}

/** The soft limit on open files of this process (children inherit it). */
export function openFilesLimit(): number {
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
  if (!m || m[1] === 'unlimited') return Number.MAX_SAFE_INTEGER;
  return Number(m[1]);
}

/** Busy and total ticks of one `/proc/stat` cpu line. */
function cpuLineTotals(line: string): { busy: number; total: number } {
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest time is already inside user).
  const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
  return { busy: total - f[3] - f[4], total };
}

function cpuTotals(): { busy: number; total: number } {
  return cpuLineTotals(readFileSync('/proc/stat', 'utf8').split('\n')[0]);
}

/** Busy time so far of the given CPUs (user, system, irq, softirq, steal), in seconds. */
export function cpuBusySeconds(cpus: number[]): number {
  let busy = 0;
  for (const line of readFileSync('/proc/stat', 'utf8').split('\n')) {
    const m = /^cpu(\d+) /.exec(line);
    if (m && cpus.includes(Number(m[1]))) busy += cpuLineTotals(line).busy;
  }
  return busy / clockTicksPerSecond();
}

/** Parses a taskset CPU list such as `0`, `0,1` or `0-3`. */
export function parseCpuList(list: string): number[] {
  return list.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number);
    return b === undefined ? [a] : Array.from({ length: b - a + 1 }, (_, i) => a + i);
  });
}

/**
 * CPU in use by the whole machine, in cores, over `ms` of wall time. Called while the bench and
 * its servers are idle, it measures what other processes take: the bench shares the machine.
 */
export async function machineBusyCores(ms: number, cores: number): Promise<number> {
  const a = cpuTotals();
  await new Promise((r) => setTimeout(r, ms));
  const b = cpuTotals();
  return b.total > a.total ? ((b.busy - a.busy) / (b.total - a.total)) * cores : 0;
}

/** CPU ticks and parent of every process at one moment. */
export interface ProcessSnapshot {
  atMs: number;
  procs: Map<number, StatFields>;
}

/** Reads every process's CPU ticks (a few milliseconds for a few hundred processes). */
export function snapshotProcesses(): ProcessSnapshot {
  const procs = new Map<number, StatFields>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (st) procs.set(Number(name), st);
  }
  return { atMs: performance.now(), procs };
}

/** Kernel threads descend from kthreadd (pid 2); on loopback they mostly carry our own packets. */
const KTHREADD_PID = 2;

function descendants(root: number, procs: Map<number, StatFields>): Set<number> {
  const children = new Map<number, number[]>();
  for (const [pid, st] of procs) {
    const list = children.get(st.ppid) ?? [];
    list.push(pid);
    children.set(st.ppid, list);
  }
  const out = new Set<number>();
  const stack = [root];
  while (stack.length > 0) {
    const pid = stack.pop()!;
    out.add(pid);
    stack.push(...(children.get(pid) ?? []));
  }
  return out;
}

/**
 * CPU cores used between two snapshots by processes that are neither ours (`ownRoot` and its
 * descendants) nor kernel threads: the load of whoever else shares the machine. Processes that
 * ended between the snapshots are not seen, so this is a lower bound.
 */
export function foreignCores(a: ProcessSnapshot, b: ProcessSnapshot, ownRoot: number): number {
  const ours = descendants(ownRoot, b.procs);
  for (const pid of descendants(ownRoot, a.procs)) ours.add(pid);
  const kernel = descendants(KTHREADD_PID, b.procs);
  let ticks = 0;
  for (const [pid, after] of b.procs) {
    if (ours.has(pid) || kernel.has(pid)) continue;
    // A process born meanwhile counts whole; one that died meanwhile is not seen.
    const before = a.procs.get(pid) ?? { utime: 0, stime: 0 };
    ticks += after.utime + after.stime - before.utime - before.stime;
  }
  const seconds = (b.atMs - a.atMs) / 1000;
  return seconds > 0 ? ticks / clockTicksPerSecond() / seconds : 0;
}
