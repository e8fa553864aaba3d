/**
 * The default number of retries is bounded (3, HAProxy's default), not "every backend once":
 * a large pool of dead backends must not turn each client into hundreds of connect attempts,
 * and the connect-failure warning is rate-limited. Runs the built CLI from a config file.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, readAll, refusedPort, spawnL4lb, waitFor } from '../support/net.js';

const DEAD_BACKENDS = 200;
const CLIENTS = 60;

async function runAgainstDeadPool(t: { after(fn: () => unknown): void }, retries: number | undefined) {
  const dead = await refusedPort();
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-retries-'));
  // 127.0.0.2 … 127.0.0.201 on a port where nothing listens: every connect is refused at once.
  const backends = Array.from({ length: DEAD_BACKENDS }, (_, i) => `127.0.0.${i + 2}:${dead}`);
  const file = join(dir, 'l4lb.json');
  writeFileSync(
    file,
    JSON.stringify({
      log: { level: 'info', access: 'stderr' },
      listeners: [{ name: 'main', listen: '127.0.0.1:0', pool: 'dead', ...(retries !== undefined && { retries }) }],
      pools: [{ name: 'dead', backends, passive: { consecutiveFailures: 0 } }],
    }),
  );
  const l4lb = await spawnL4lb(['--config', file]);
  t.after(async () => {
    await l4lb.stop('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CLIENTS }, async () => {
      const s = await connect(l4lb.port);
      await readAll(s).catch(() => Buffer.alloc(0));
      s.destroy();
    }),
  );
  const lines = () =>
    l4lb
      .stderr()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  await waitFor(() => lines().filter((l) => l.msg === 'access').length === CLIENTS, 5000, 'an access line per client');
  const seconds = (performance.now() - started) / 1000;
  const access = lines().filter((l) => l.msg === 'access');
  const warnings = lines().filter((l) => l.level === 'warn' && l.code === 'L4LB_ERR_CONNECT_REFUSED');
  return { access, warnings, seconds };
}

test('by default a connection tries 1 + 3 backends of a dead pool, and the connect warning is rate-limited', async (t) => {
  const { access, warnings, seconds } = await runAgainstDeadPool(t, undefined);
  for (const a of access) {
    assert.equal(a.reason, 'backend_connect_refused');
    assert.equal(a.tries, 4, `tries of ${JSON.stringify(a)}`);
    assert.equal(a.retries, 3);
  }
  const failures = CLIENTS * 4;
  // 10 lines a second per pool and code; a second of slack for the window edges.
  const allowed = 10 * (Math.ceil(seconds) + 1);
  assert.ok(warnings.length <= allowed, `${warnings.length} warnings for ${failures} failures in ${seconds.toFixed(1)} s (at most ${allowed})`);
  assert.ok(warnings.length > 0, 'failures are still logged');
});

test('an explicit retries setting is kept, bounded by the pool size', async (t) => {
  const { access } = await runAgainstDeadPool(t, 10);
  for (const a of access) assert.equal(a.tries, 11, `tries of ${JSON.stringify(a)}`);
});
