/**
 * Hot reload, the real way: `l4lb --config FILE`, the file rewritten, SIGHUP (or `--watch`).
 * Existing connections continue untouched, listeners that stay keep their sockets (nothing is
 * refused), new listeners open, removed ones drain, backend changes apply to new connections,
 * and an invalid config leaves the old one serving.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { echoServer, nameServer, request, waitFor } from '../support/net.js';
import { startL4lb, config, listener, pool, type RawConfig } from '../faults/harness.js';
import { pacedEcho, steadyStream, echoOnce } from '../faults/traffic.js';

const T = { timeout: 120_000 };

/** The port of listener `name` after the last successful reload, from the log. */
function listenerPorts(logs: Record<string, unknown>[]): number[] {
  const last = logs.filter((l) => l.msg === 'config reloaded' || l.msg === 'l4lb started').at(-1);
  return ((last?.listeners as string[]) ?? []).map((a) => Number(a.slice(a.lastIndexOf(':') + 1)));
}

test('20 reloads under load: every long transfer completes intact and no new connection is refused', T, async (t) => {
  const backends = await Promise.all([echoServer(), echoServer(), echoServer()]);
  const [a, b, c] = backends.map((s) => s.port);
  const base = (n: number): RawConfig => {
    // Each reload changes something different; the main listener always stays.
    const variants: RawConfig[] = [
      config([listener('main', 'p')], [pool('p', [a, b])]),
      config([listener('main', 'p')], [pool('p', [{ address: `127.0.0.1:${a}`, weight: 3 }, b, c])]),
      config([listener('main', 'p'), listener('extra', 'q')], [pool('p', [b, c]), pool('q', [a])]),
      config([listener('main', 'p', { timeouts: { idle: '5m' } })], [pool('p', [c], { balance: 'least-connections' })]),
    ];
    return variants[n % variants.length];
  };
  const l4lb = await startL4lb(base(0));
  t.after(async () => {
    await l4lb.close();
    await Promise.all(backends.map((s) => s.close()));
  });

  // 100 slow transfers (~1 MiB each way over ~2.5s) and a steady stream of short connections.
  const transfers = Array.from({ length: 100 }, () => pacedEcho(l4lb.port, { chunks: 100, chunkSize: 10 * 1024, intervalMs: 25 }));
  const stream = steadyStream(() => l4lb.port, 4);
  t.after(() => stream.stop());
  for (let i = 1; i <= 20; i++) {
    const r = await l4lb.reload(base(i));
    assert.ok(r.ok, `reload ${i} applied: ${JSON.stringify(r.line)}`);
    await new Promise((res) => setTimeout(res, 50));
  }
  const results = await Promise.all(transfers);
  const s = await stream.stop();

  const broken = results.filter((r) => !r.intact);
  assert.equal(broken.length, 0, `broken transfers: ${JSON.stringify(broken.slice(0, 3))}`);
  assert.ok(results.every((r) => r.sent === 100 * 10 * 1024));
  assert.equal(s.refused, 0, 'no connection refused during reloads');
  assert.equal(s.resetEmpty, 0, 'no connection reset during reloads');
  assert.equal(s.failed, 0, `short connections failed: ${s.errors.join(', ')}`);
  assert.ok(s.completed > 20, `a steady stream ran (${s.completed} connections)`);
  assert.equal(l4lb.reloadOutcomes().length, 20);
});

test('a new listener opens on reload; a removed one stops accepting while its connections finish', T, async (t) => {
  const e = await echoServer();
  const l4lb = await startL4lb(config([listener('main', 'p'), listener('old', 'p')], [pool('p', [e.port])]));
  t.after(async () => {
    await l4lb.close();
    await e.close();
  });
  const oldPort = l4lb.ports[1];
  // A long transfer on the listener about to be removed.
  const inFlight = pacedEcho(oldPort, { chunks: 40, chunkSize: 16 * 1024, intervalMs: 25 });
  await new Promise((r) => setTimeout(r, 100));

  const r = await l4lb.reload(config([listener('main', 'p'), listener('new', 'p')], [pool('p', [e.port])]));
  assert.ok(r.ok);
  const [mainPort, newPort] = listenerPorts(l4lb.logs());
  assert.equal(mainPort, l4lb.port, 'the listener that stays keeps its port');
  assert.equal((await echoOnce(newPort)).intact, true, 'the new listener serves');
  assert.equal((await echoOnce(l4lb.port)).intact, true, 'the kept listener serves');
  const refused = await echoOnce(oldPort);
  assert.equal(refused.error, 'ECONNREFUSED', 'the removed listener no longer accepts');
  const done = await inFlight;
  assert.ok(done.intact, `the connection on the removed listener completed: ${JSON.stringify(done)}`);
});

test('backends added, removed and reweighted take effect for new connections; open ones continue', T, async (t) => {
  const servers = await Promise.all(['a', 'b', 'c'].map((n) => nameServer(n)));
  const slow = await echoServer();
  const [a, b, c] = servers.map((s) => s.port);
  const l4lb = await startL4lb(config([listener('main', 'p'), listener('long', 'q')], [pool('p', [a]), pool('q', [slow.port])]));
  t.after(async () => {
    await l4lb.close();
    await Promise.all([...servers, slow].map((s) => s.close()));
  });
  const ask = async (n: number) => {
    const seen: string[] = [];
    for (let i = 0; i < n; i++) seen.push((await request(l4lb.port, 'x')).trim());
    return seen;
  };
  assert.deepEqual(new Set(await ask(3)), new Set(['a']));
  const inFlight = pacedEcho(l4lb.ports[1], { chunks: 30, chunkSize: 8 * 1024, intervalMs: 20 });
  // The long connection must reach its backend before the reload takes that backend away
  // (otherwise l4lb may dial it after the reload, to the pool's new backend).
  await waitFor(() => slow.accepted === 1, 5000, 'the long connection to reach its backend');

  // Remove a, add b and c; the pool of the long connection loses its only backend.
  assert.ok((await l4lb.reload(config([listener('main', 'p'), listener('long', 'q')], [pool('p', [b, c]), pool('q', [a])]))).ok);
  assert.deepEqual(new Set(await ask(4)), new Set(['b', 'c']));
  // Reweight: c gets all the weight it can against b.
  const weighted = config(
    [listener('main', 'p'), listener('long', 'q')],
    [pool('p', [{ address: `127.0.0.1:${b}`, weight: 1 }, { address: `127.0.0.1:${c}`, weight: 9 }], { balance: 'weighted-round-robin' }), pool('q', [a])],
  );
  assert.ok((await l4lb.reload(weighted)).ok);
  const seen = await ask(20);
  const cs = seen.filter((x) => x === 'c').length;
  assert.ok(cs >= 16 && cs <= 19, `c answered ${cs} of 20 at weight 9:1`);
  const done = await inFlight;
  assert.ok(done.intact, `the connection to the removed backend completed: ${JSON.stringify(done)}`);
});

test('an invalid config or a listener that cannot bind is rejected, logged, and the old config keeps serving', T, async (t) => {
  const e = await echoServer();
  const taken = net.createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  const takenPort = (taken.address() as net.AddressInfo).port;
  const l4lb = await startL4lb(config([listener('main', 'p')], [pool('p', [e.port])]));
  t.after(async () => {
    await l4lb.close();
    await e.close();
    await new Promise((r) => taken.close(r));
  });
  const invalid = { ...config([listener('main', 'p')], [pool('p', [e.port])]), maxConnections: -1 };
  const r1 = await l4lb.reload(invalid);
  assert.equal(r1.ok, false);
  assert.match(String(r1.line.err), /maxConnections/, 'the error names the bad key');
  assert.equal((await echoOnce(l4lb.port)).intact, true, 'still serving after an invalid config');

  const unbindable = config([listener('main', 'p'), { listen: `127.0.0.1:${takenPort}`, pool: 'p' }], [pool('p', [1])]);
  const r2 = await l4lb.reload(unbindable);
  assert.equal(r2.ok, false);
  assert.match(String(r2.line.err), /address already in use/);
  // Atomic: the pool change in the same file was not applied either (backend port 1 would refuse).
  assert.equal((await echoOnce(l4lb.port)).intact, true, 'the old pool still serves');

  assert.ok((await l4lb.reload(config([listener('main', 'p')], [pool('p', [e.port])]))).ok, 'a valid config applies again');
});

test('--watch reloads when the file is replaced by a rename and when it is rewritten in place', T, async (t) => {
  const [x, y] = await Promise.all([nameServer('x'), nameServer('y')]);
  const l4lb = await startL4lb(config([listener('main', 'p')], [pool('p', [x.port])]), { args: ['--watch'] });
  t.after(async () => {
    await l4lb.close();
    await Promise.all([x.close(), y.close()]);
  });
  assert.equal((await request(l4lb.port, 'q')).trim(), 'x');
  // Editors and deploy tools: write a new file, rename it over the old one.
  l4lb.writeConfig(config([listener('main', 'p')], [pool('p', [y.port])]));
  await l4lb.waitReloads(1);
  await waitFor(async () => (await request(l4lb.port, 'q')).trim() === 'y', 5000, 'y answers after the rename');
  // In place, as `echo > file` does.
  l4lb.writeConfig(config([listener('main', 'p')], [pool('p', [x.port])]), { inPlace: true });
  await l4lb.waitReloads(2);
  await waitFor(async () => (await request(l4lb.port, 'q')).trim() === 'x', 5000, 'x answers after the rewrite');
  assert.ok(l4lb.reloadOutcomes().every((l) => l.msg === 'config reloaded'));
});
