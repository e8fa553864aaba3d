/**
 * IPv6 sources grouped by prefix for per-source limits, with real IPv6 addresses. This machine
 * (and CI) has only ::1, so the test makes a network namespace of its own (`ip netns`, root;
 * CI runs as root with iproute2) whose loopback carries addresses in two /64s, and runs the
 * proxy and its clients inside it (ipv6-netns-child.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const CHILD = fileURLToPath(new URL('./ipv6-netns-child.js', import.meta.url));
const A1 = '2001:db8:1::1';
const A2 = '2001:db8:1::2'; // same /64 as A1
const B1 = '2001:db8:2::1'; // another /64

test('per-source limits group IPv6 clients by their /64 (and count each address with /128)', { timeout: 60_000 }, async (t) => {
  const ns = `l4lb-v6-${process.pid}`;
  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  ip('netns', 'add', ns);
  t.after(() => ip('netns', 'del', ns));
  ip('-n', ns, 'link', 'set', 'lo', 'up');
  for (const a of [A1, A2, B1]) ip('-n', ns, 'addr', 'add', `${a}/64`, 'dev', 'lo', 'nodad');

  const run = (prefix: number) =>
    JSON.parse(execFileSync('ip', ['netns', 'exec', ns, process.execPath, CHILD, String(prefix), A1, A2, B1], { encoding: 'utf8' })) as {
      result: Record<string, boolean>;
      rejected: Record<string, number>;
    };

  // One connection per /64: A1 takes its prefix's slot, A2 (same /64) is refused, B1 is not.
  const by64 = run(64);
  assert.deepEqual(by64.result, { [A1]: true, [A2]: false, [B1]: true });
  assert.equal(by64.rejected.source_concurrency, 1);

  // Per address: all three are served.
  const by128 = run(128);
  assert.deepEqual(by128.result, { [A1]: true, [A2]: true, [B1]: true });
  assert.deepEqual(by128.rejected, {});
});
