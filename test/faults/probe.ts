/**
 * @module test/faults/probe — loaded into l4lb processes under test with `--import`, so tests
 * can see inside them without any hook in l4lb itself.
 *
 * On SIGUSR2 it collects garbage (when started with --expose-gc) and writes a report to
 * `$L4LB_PROBE_DIR/<pid>.json`: live libuv resources by kind (sockets, servers, timers), heap
 * and RSS, and open file descriptors. The file is written whole then renamed, so a reader never
 * sees half a report. Worker processes inherit the flags, so each writes its own file.
 */
import { readdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** What one process reports. */
export interface ProbeReport {
  pid: number;
  /** Increases with every report from this process. */
  seq: number;
  /** `process.getActiveResourcesInfo()` counted by kind (only ref'ed timers appear). */
  resources: Record<string, number>;
  heapUsed: number;
  /** Memory of Buffers and other array buffers (socket data lives here, not in the heap). */
  arrayBuffers: number;
  rss: number;
  fds: number;
}

const dir = process.env.L4LB_PROBE_DIR;
let seq = 0;

if (dir) {
  process.on('SIGUSR2', () => {
    try {
      report();
    } catch {
      // Out of descriptors, most likely: no report this time; the caller waits and asks again.
    }
  });
}

function report(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc) gc();
  const resources: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) resources[r] = (resources[r] ?? 0) + 1;
  let fds = -1;
  try {
    fds = readdirSync('/proc/self/fd').length - 1; // minus the directory handle readdir holds
  } catch {
    // not Linux
  }
  const mem = process.memoryUsage();
  const r: ProbeReport = { pid: process.pid, seq: seq + 1, resources, heapUsed: mem.heapUsed, arrayBuffers: mem.arrayBuffers, rss: mem.rss, fds };
  const file = join(dir!, `${process.pid}.json`);
  writeFileSync(`${file}.tmp`, JSON.stringify(r));
  renameSync(`${file}.tmp`, file);
  seq++;
}
