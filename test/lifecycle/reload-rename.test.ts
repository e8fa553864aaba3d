/**
 * Renaming a listener without changing its address is a reload like any other: the renamed
 * listener keeps the bound socket (binding the address again used to fail the reload with
 * "address already in use"), connections in flight continue, and new ones are logged under
 * the new name. Runs the CLI from a config file, with one process and with two workers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { echoServer, refusedPort } from '../support/net.js';
import { startL4lb, config, pool } from '../faults/harness.js';
import { pacedEcho, echoOnce } from '../faults/traffic.js';
import { FAULT_WORKERS } from '../faults/workers.js';

for (const workers of FAULT_WORKERS) {
  test(`a listener renamed on the same address keeps its socket and its connections (workers: ${workers})`, { timeout: 60_000 }, async (t) => {
    const e = await echoServer();
    const port = await refusedPort();
    const at = `127.0.0.1:${port}`;
    const l4lb = await startL4lb(config([{ name: 'old-name', listen: at, pool: 'p' }], [pool('p', [e.port])], { log: { level: 'info', access: 'stderr' } }), { workers });
    t.after(async () => {
      await l4lb.close();
      await e.close();
    });
    assert.equal(l4lb.port, port);
    const inFlight = pacedEcho(port, { chunks: 30, chunkSize: 16 * 1024, intervalMs: 25 });
    await new Promise((r) => setTimeout(r, 100));

    const r = await l4lb.reload(config([{ name: 'new-name', listen: at, pool: 'p' }], [pool('p', [e.port])], { log: { level: 'info', access: 'stderr' } }));
    assert.ok(r.ok, `reload: ${JSON.stringify(r.line)}`);
    assert.equal((await echoOnce(port)).intact, true, 'the address still serves');
    const done = await inFlight;
    assert.ok(done.intact, `the connection in flight completed: ${JSON.stringify(done)}`);
    const access = l4lb.logs().filter((l) => l.msg === 'access');
    assert.ok(access.some((l) => l.listener === 'new-name'), 'new connections are logged under the new name');

    // And back, with a second listener taking a fresh address at the same time.
    const other = await refusedPort();
    const back = await l4lb.reload(
      config([{ name: 'old-name', listen: at, pool: 'p' }, { name: 'new-name', listen: `127.0.0.1:${other}`, pool: 'p' }], [pool('p', [e.port])], { log: { level: 'info', access: 'stderr' } }),
    );
    assert.ok(back.ok, `second reload: ${JSON.stringify(back.line)}`);
    assert.equal((await echoOnce(port)).intact, true, 'the first address serves');
    assert.equal((await echoOnce(other)).intact, true, 'the moved name serves on its new address');
  });
}
