/**
 * @module test/faults/workers — the `workers` values every fault case runs with.
 *
 * Each case in test/faults/ is written once and run for each value here; the value goes into
 * the config file (`workers: N`) of the l4lb under test, and the harness follows the whole
 * process tree (descriptors, sockets, timers, heap, CPU), so the same assertions hold for a
 * multi-process l4lb. To run every case in multi-process mode too, add 2 here: `[1, 2]`.
 * Nothing is skipped on the quiet: a value listed here runs, or fails.
 */
export const FAULT_WORKERS: readonly number[] = [1, 2];
