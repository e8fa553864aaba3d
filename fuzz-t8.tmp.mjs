import { TARGETS } from './dist/test/fuzz/targets.js';
import { loadSeeds } from './dist/test/fuzz/corpus.js';
import { Rng, mutate } from './dist/test/fuzz/mutate.js';
const t = TARGETS.config; const seeds = loadSeeds('config'); const rng = new Rng(3);
const agg = {}; let n = 0; const c0 = process.cpuUsage(); const t0 = performance.now();
const slow = [];
while (performance.now() - t0 < 6000) {
  const b = rng.pick(seeds);
  const bytes = mutate(rng, b.bytes, seeds.filter(s => s.variant === b.variant).map(s => s.bytes), t.profile);
  const m = performance.now(); let v;
  try { v = t.check({ variant: b.variant, bytes }); } catch (e) { v = 'finding' }
  const d = performance.now() - m; const k = `${b.variant}-${v}-${bytes.length > 2000 ? 'big' : 'small'}`;
  agg[k] ??= [0, 0]; agg[k][0]++; agg[k][1] += d; n++;
  if (d > 20) slow.push([Math.round(d), bytes.length, v]);
}
const c = process.cpuUsage(c0);
console.log(n, Math.round(n / ((c.user + c.system) / 1e6)), '/CPU-s');
for (const [k, [c, s]] of Object.entries(agg).sort()) console.log(k, c, (s / c).toFixed(2), 'ms avg', Math.round(s), 'ms total');
console.log(slow.slice(0, 20));
