import { TARGETS } from './dist/test/fuzz/targets.js';
import { loadSeeds } from './dist/test/fuzz/corpus.js';
import { Rng, mutate } from './dist/test/fuzz/mutate.js';
const t = TARGETS.config; const seeds = loadSeeds('config'); const rng = new Rng(3);
const buckets = {};
const t0 = performance.now(); let n = 0;
while (performance.now() - t0 < 5000) {
  const b = rng.pick(seeds); const bytes = mutate(rng, b.bytes, seeds.filter(s=>s.variant===b.variant).map(s=>s.bytes), t.profile);
  const k = bytes.length > 4096 ? 'big' : 'small';
  const s = performance.now(); try { t.check({ variant: b.variant, bytes }); } catch (e) { } const d = performance.now() - s;
  buckets[k] ??= [0, 0]; buckets[k][0]++; buckets[k][1] += d; n++;
}
console.log(n, JSON.stringify(buckets));
for (const s of seeds) { const a = performance.now(); for (let i = 0; i < 200; i++) t.check(s); console.log(s.variant, s.bytes.length, ((performance.now() - a) / 200).toFixed(3), 'ms'); }
