import { TARGETS } from './dist/test/fuzz/targets.js';
import { loadSeeds } from './dist/test/fuzz/corpus.js';
import { Rng, mutate } from './dist/test/fuzz/mutate.js';
const t = TARGETS.config; const seeds = loadSeeds('config'); const rng = new Rng(3);
let n = 0; const t0 = performance.now(); const c0 = process.cpuUsage();
while (performance.now() - t0 < 15000) {
  const b = rng.pick(seeds);
  const bytes = mutate(rng, b.bytes, seeds.filter(s => s.variant === b.variant).map(s => s.bytes), t.profile);
  try { t.check({ variant: b.variant, bytes }); } catch (e) { } n++;
}
const c = process.cpuUsage(c0); console.log(n, Math.round(n / ((c.user + c.system) / 1e6)), '/CPU-s');
