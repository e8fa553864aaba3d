/**
 * The port-0 race of `shared` cluster mode (node:cluster binds the listening socket only when
 * the first worker listens): the port the primary chose must stay out of everyone else's reach
 * until then. A network namespace of the test's own (`ip netns`, root, as CI runs) gets an
 * ephemeral range of 16 ports, kept busy by a port eater, while clusters with port-0
 * listeners start and reload in it (port-zero-race-child.ts). A port let go of for even a
 * moment is taken: with the primary's old probe-and-close, starts failed with "address already
 * in use".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./port-zero-race-child.js', import.meta.url));
const LOW = 40000;
const HIGH = 40015;
const ROUNDS = 4;

interface Outcome {
  results: { round: number; step: string; ok: boolean; ports?: number[]; error?: string }[];
  eaten: { binds: number; exhausted: number };
}

test('shared mode: port-0 listeners start and reload while other programs keep taking free ports', { timeout: 180_000 }, (t) => {
  const ns = `l4lb-port0-${process.pid}`;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  ip('netns', 'add', ns);
  t.after(() => ip('netns', 'del', ns));
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  ip('netns', 'exec', ns, 'sysctl', '-q', '-w', `net.ipv4.ip_local_port_range=${LOW} ${HIGH}`);

  const out = JSON.parse(
    execFileSync('ip', ['netns', 'exec', ns, process.execPath, CHILD, String(ROUNDS), `${LOW}-${HIGH}`], { encoding: 'utf8', timeout: 170_000 }),
  ) as Outcome;

  const failed = out.results.filter((r) => !r.ok);
  assert.deepEqual(failed, [], 'every start and reload succeeded');
  assert.equal(out.results.length, ROUNDS * 2);
  for (const r of out.results) {
    const ports = r.ports ?? [];
    assert.equal(ports.length, r.step === 'start' ? 3 : 4, `round ${r.round} ${r.step}: every listener bound`);
    assert.equal(new Set(ports).size, ports.length, `round ${r.round} ${r.step}: distinct ports ${ports}`);
    for (const p of ports) assert.ok(p >= LOW && p <= HIGH, `port ${p} from the namespace's ephemeral range`);
  }
  // The eater kept the range busy: it took ports again and again all along.
  assert.ok(out.eaten.binds > 100, `the eater took ${out.eaten.binds} ports`);
});
