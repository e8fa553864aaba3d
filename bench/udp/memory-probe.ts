/**
 * @module bench/udp/memory-probe — loaded into a measured l4lb with `node --expose-gc --import
 * …/memory-probe.js bin/l4lb.js …` (bench/udp/session-memory.ts): on SIGUSR2 it collects
 * garbage and prints one `memory {json}` line on stdout with `process.memoryUsage()` and the
 * heap's resident size.
 *
 * Not part of l4lb: l4lb never loads it, and SIGUSR2 means nothing to l4lb itself.
 */
import { setImmediate as turn } from 'node:timers/promises';
import v8 from 'node:v8';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('memory-probe: run node with --expose-gc');

process.on('SIGUSR2', () => {
  void (async () => {
    // Twice with a turn between: weak callbacks and finalizers of the first pass free more.
    gc();
    await turn();
    gc();
    await turn();
    // heapPhysical: the heap's resident part (heapTotal is reserved, partly not resident).
    const m = { ...process.memoryUsage(), heapPhysical: v8.getHeapStatistics().total_physical_size };
    process.stdout.write(`memory ${JSON.stringify(m)}\n`);
  })();
});
