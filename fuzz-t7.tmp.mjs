import { TARGETS } from './dist/test/fuzz/targets.js';
import { loadSeeds } from './dist/test/fuzz/corpus.js';
import { Rng, mutate } from './dist/test/fuzz/mutate.js';
const name = process.argv[2];
const t = TARGETS[name]; const seeds = loadSeeds(name); const rng = new Rng(3);
const others = seeds.map(s => s.bytes);
let n = 0; const c0 = process.cpuUsage(); const t0 = performance.now();
let mt = 0, ct = 0;
while (performance.now() - t0 < 3000) {
  for (let k = 0; k < 100; k++) {
  const b = rng.pick(seeds);
  const a = performance.now();
  const bytes = mutate(rng, b.bytes, others, t.profile);
  const m = performance.now();
  try { t.check({ variant: b.variant, bytes }); } catch (e) { }
  ct += performance.now() - m; mt += m - a; n++; }
}
const c = process.cpuUsage(c0);
console.log(name, n, 'inputs', Math.round(n / ((c.user + c.system) / 1e6)), '/CPU-s', 'mutate', (mt / n * 1000).toFixed(1), 'us', 'check', (ct / n * 1000).toFixed(1), 'us');
