/**
 * Run inside a network namespace by port-zero-race.test.ts (`ip netns exec NS node …`), whose
 * ephemeral port range is a few ports wide. A "port eater" keeps taking free ports from that
 * range (listening on port 0, holding each port a short while), as the other programs and
 * outgoing connections of a busy machine do; meanwhile clusters with port-0 listeners start
 * in `shared` mode, reload with one more port-0 listener, and close. Prints one JSON line: how
 * each start and reload went, and how hard the eater pressed.
 */
import net from 'node:net';
import { startCluster } from '../../src/cluster/primary.js';
import { normalizeConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/observability/log.js';

const rounds = Number(process.argv[2] ?? 4);
const [low, high] = (process.argv[3] ?? '').split('-').map(Number);
/** Ports the eater leaves free (the cluster needs 4, and each reservation its own). */
const LEAVE_FREE = 6;
/** How long the eater keeps a port before letting it go and taking another, ms. */
const EAT_HOLD_MS = 15;

const eaten = { binds: 0, exhausted: 0 };
const held = new Set<net.Server>();
/** Binds under way: counted with the held ones, so the eater never takes more than its share. */
let pending = 0;
let eating = true;
function eat(): void {
  if (!eating) return;
  if (held.size + pending >= high - low + 1 - LEAVE_FREE) {
    setTimeout(eat, 1);
    return;
  }
  pending++;
  const s = net.createServer();
  s.once('error', () => {
    pending--;
    eaten.exhausted++;
    setTimeout(eat, 1);
  });
  s.listen({ host: '127.0.0.1', port: 0, exclusive: true }, () => {
    pending--;
    eaten.binds++;
    held.add(s);
    setTimeout(() => {
      held.delete(s);
      s.close();
    }, EAT_HOLD_MS);
    setImmediate(eat);
  });
}
for (let i = 0; i < 3; i++) eat();

const listener = (name: string) => ({ name, listen: '127.0.0.1:0', pool: 'p' });
const raw = (names: string[]) => ({
  workers: 2,
  listeners: names.map(listener),
  // Outside the namespace's ephemeral range; nothing listens there (no connection is made).
  pools: [{ name: 'p', backends: ['127.0.0.1:20000'] }],
  log: { level: 'error', access: 'off' },
});

const results: { round: number; step: string; ok: boolean; ports?: number[]; error?: string }[] = [];
for (let round = 1; round <= rounds; round++) {
  let step = 'start';
  try {
    const primary = await startCluster(normalizeConfig(raw(['a', 'b', 'c']), 'race.json'), { mode: 'shared', logger: silentLogger() });
    try {
      results.push({ round, step, ok: true, ports: primary.addresses().map((a) => a.port) });
      step = 'reload';
      await primary.reload(normalizeConfig(raw(['a', 'b', 'c', 'd']), 'race.json'));
      results.push({ round, step, ok: true, ports: primary.addresses().map((a) => a.port) });
    } finally {
      await primary.close();
    }
  } catch (err) {
    results.push({ round, step, ok: false, error: (err as Error).message });
  }
}
eating = false;
for (const s of held) s.close();
process.stdout.write(`${JSON.stringify({ results, eaten })}\n`);
process.exit(0);
