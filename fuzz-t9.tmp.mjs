import { TARGETS } from './dist/test/fuzz/targets.js';
import { loadSeeds } from './dist/test/fuzz/corpus.js';
import { Rng, mutate } from './dist/test/fuzz/mutate.js';
const t = TARGETS.config; const seeds = loadSeeds('config'); const rng = new Rng(3);
const slow = []; const t0 = performance.now();
while (performance.now() - t0 < 6000) {
  const b = rng.pick(seeds);
  const bytes = mutate(rng, b.bytes, seeds.filter(s => s.variant === b.variant).map(s => s.bytes), t.profile);
  const m = performance.now();
  try { t.check({ variant: b.variant, bytes }); } catch (e) { }
  const d = performance.now() - m;
  if (d > 20 && bytes.length < 300) slow.push({ variant: b.variant, bytes });
}
for (const s of slow.slice(0, 5)) {
  const c0 = process.cpuUsage(); const m = performance.now();
  for (let i = 0; i < 20; i++) try { t.check(s) } catch {}
  const c = process.cpuUsage(c0);
  console.log(s.bytes.length, ((performance.now() - m) / 20).toFixed(2), 'ms wall', ((c.user + c.system) / 20000).toFixed(2), 'ms cpu', JSON.stringify(s.bytes.toString().slice(0, 200)));
}
