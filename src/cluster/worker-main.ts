/**
 * @module cluster/worker-main — the entry point the cluster primary forks its workers with.
 */
import { runWorker } from './worker.js';

runWorker().catch((err: unknown) => {
  process.stderr.write(`l4lb worker: ${err instanceof Error && err.stack ? err.stack : String(err)}\n`);
  process.exit(1);
});
