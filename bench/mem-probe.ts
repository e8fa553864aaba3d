/**
 * @module bench/mem-probe — loaded into an l4lb process under test (`node --import`) by
 * `npm run bench:ka-memory -- --detail`: on SIGUSR2 it writes what the process holds, split the
 * way RSS cannot be (V8 heap spaces, external and ArrayBuffer memory, l4lb's pooled read
 * buffers), as one JSON line appended to the file named by {@link PROBE_ENV}; with
 * {@link SNAPSHOT_ENV} set it also writes a heap snapshot next to it.
 *
 * Not part of l4lb: the bench starts l4lb with it only when asked for the breakdown.
 */
import { appendFileSync } from 'node:fs';
import v8 from 'node:v8';

/** Environment variable naming the file the probe appends its readings to. */
export const PROBE_ENV = 'L4LB_MEM_PROBE';
/** Environment variable that makes every reading also write a heap snapshot. */
export const SNAPSHOT_ENV = 'L4LB_MEM_PROBE_SNAPSHOT';

/** Environment variable with the file URL of the socket-reader module of the l4lb under test. */
export const READER_ENV = 'L4LB_MEM_PROBE_READER';

/** One reading, in bytes. */
export interface ProbeReading {
  rss: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  /** Committed (physical) size per V8 heap space. */
  spaces: Record<string, number>;
  /** Pooled read buffers per size class: handed out, and allocated in slabs. */
  pools?: Array<{ size: number; inUse: number; allocated: number }>;
  snapshot?: string;
}

const out = process.env[PROBE_ENV];
if (out !== undefined) {
  // l4lb's own module instance (same URL as the one its bin/l4lb.js imports): the runner names
  // it, since the l4lb under test may be another checkout's.
  const readerUrl = process.env[READER_ENV] ?? new URL('../src/proxy/socket-reader.js', import.meta.url).href;
  process.on('SIGUSR2', () => {
    void (async () => {
      const m = process.memoryUsage();
      const spaces: Record<string, number> = {};
      for (const s of v8.getHeapSpaceStatistics()) spaces[s.space_name] = s.physical_space_size;
      const r: ProbeReading = { rss: m.rss, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, spaces };
      const reader = (await import(readerUrl)) as Partial<typeof import('../src/proxy/socket-reader.js')>;
      r.pools = reader.readBufferPools?.();
      if (process.env[SNAPSHOT_ENV]) r.snapshot = v8.writeHeapSnapshot(`${out}.${Date.now()}.heapsnapshot`);
      appendFileSync(out, `${JSON.stringify(r)}\n`);
    })();
  });
}
