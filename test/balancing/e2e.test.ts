/**
 * Balancing and health end to end: a real proxy from a config file, real backends that
 * go down and come back mid-test. Asserts which backends got connections, in what
 * proportion, and how soon after a state change.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { startProxy, type Proxy } from '../../src/proxy/proxy.js';
import { parseConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/observability/log.js';
import { request, waitFor, runL4lb, spawnL4lb } from '../support/net.js';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A backend answering its name, that can be stopped and restarted on the same port. */
class NamedBackend {
  server: net.Server | undefined;
  port = 0;
  sockets = new Set<net.Socket>();
  constructor(readonly name: string) {}

  async start(): Promise<this> {
    this.server = net.createServer((s) => {
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => {});
      s.end(this.name);
    });
    this.server.listen(this.port, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as net.AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise((r) => this.server!.close(r));
  }
}

async function proxyFromYaml(yaml: string): Promise<{ proxy: Proxy; port: number }> {
  const proxy = await startProxy(parseConfigText(yaml, 'test.yaml'), { logger: silentLogger() });
  return { proxy, port: proxy.addresses()[0].port };
}

async function countReplies(port: number, n: number): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await request(port, '');
    counts[r] = (counts[r] ?? 0) + 1;
  }
  return counts;
}

function poolYaml(balance: string, backends: string[], extra = ''): string {
  return `
listeners:
  - { name: l, listen: 127.0.0.1:0, pool: p }
log: { access: off }
pools:
  - name: p
    balance: ${balance}
${extra}
    backends:
${backends.map((b) => `      - ${b}`).join('\n')}
`;
}

test('weighted round robin through the proxy follows the weights 3:1', async (t) => {
  const a = await new NamedBackend('a').start();
  const b = await new NamedBackend('b').start();
  const { proxy, port } = await proxyFromYaml(
    poolYaml('weighted-round-robin', [`{ address: 127.0.0.1:${a.port}, weight: 3 }`, `127.0.0.1:${b.port}`]),
  );
  t.after(async () => {
    await proxy.close();
    await a.stop();
    await b.stop();
  });
  assert.deepEqual(await countReplies(port, 40), { a: 30, b: 10 });
});

test('a backend whose health check fails gets no connections within fall × interval, and is back after rise × interval', async (t) => {
  const a = await new NamedBackend('a').start();
  const b = await new NamedBackend('b').start();
  const { proxy, port } = await proxyFromYaml(
    poolYaml('round-robin', [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
      '    healthCheck: { type: tcp, interval: 100ms, timeout: 100ms, rise: 2, fall: 2, jitter: 0 }\n    passive: { consecutiveFailures: 0 }'),
  );
  t.after(async () => {
    await proxy.close();
    await a.stop().catch(() => {});
    await b.stop();
  });
  assert.deepEqual(await countReplies(port, 10), { a: 5, b: 5 });
  const pool = proxy.pools.get('p')!;
  const backendA = pool.backends.find((x) => x.port === a.port)!;

  await a.stop();
  const downAt = Date.now();
  await waitFor(() => backendA.state() === 'down', 3000, 'a marked down');
  const tookDown = Date.now() - downAt;
  assert.ok(tookDown < 1500, `marked down after ${tookDown}ms (fall 2 × 100ms + timeouts)`);
  // While it is down every connection goes to b, and none is refused.
  assert.deepEqual(await countReplies(port, 10), { b: 10 });

  await a.start(); // same port
  const upAt = Date.now();
  await waitFor(() => backendA.state() === 'up', 3000, 'a back up');
  assert.ok(Date.now() - upAt < 1500);
  assert.deepEqual(await countReplies(port, 10), { a: 5, b: 5 });
});

test('passive health ejects a refusing backend after consecutive failures, without losing a client', async (t) => {
  const a = await new NamedBackend('a').start();
  const b = await new NamedBackend('b').start();
  const { proxy, port } = await proxyFromYaml(
    poolYaml('round-robin', [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
      '    passive: { consecutiveFailures: 3, baseEjection: 10s, maxEjection: 1m }'),
  );
  t.after(async () => {
    await proxy.close();
    await b.stop();
  });
  await a.stop();
  // Every client is still served (the refused dial retries on b).
  assert.deepEqual(await countReplies(port, 12), { b: 12 });
  const backendA = proxy.pools.get('p')!.backends.find((x) => x.port === a.port)!;
  assert.equal(backendA.state(), 'down', 'ejected');
  assert.equal(backendA.failures, 3, 'ejected after exactly 3 refused dials; no further attempts');
});

test('backup backends take connections only while every primary is down', async (t) => {
  const a = await new NamedBackend('a').start();
  const spare = await new NamedBackend('spare').start();
  const { proxy, port } = await proxyFromYaml(
    poolYaml('round-robin', [`127.0.0.1:${a.port}`, `{ address: 127.0.0.1:${spare.port}, backup: true }`],
      '    healthCheck: { type: tcp, interval: 100ms, rise: 1, fall: 1, jitter: 0 }'),
  );
  t.after(async () => {
    await proxy.close();
    await a.stop().catch(() => {});
    await spare.stop();
  });
  assert.deepEqual(await countReplies(port, 6), { a: 6 });
  await a.stop();
  const backendA = proxy.pools.get('p')!.backends.find((x) => x.port === a.port)!;
  await waitFor(() => backendA.state() === 'down', 3000);
  assert.deepEqual(await countReplies(port, 6), { spare: 6 });
  await a.start();
  await waitFor(() => backendA.state() === 'up', 3000);
  assert.deepEqual(await countReplies(port, 6), { a: 6 });
});

test('draining and disabled backends set in the config get no new connections', async (t) => {
  const servers = await Promise.all(['a', 'b', 'c'].map((n) => new NamedBackend(n).start()));
  const [a, b, c] = servers;
  const { proxy, port } = await proxyFromYaml(
    poolYaml('least-connections', [
      `127.0.0.1:${a.port}`,
      `{ address: 127.0.0.1:${b.port}, state: draining }`,
      `{ address: 127.0.0.1:${c.port}, state: disabled }`,
    ]),
  );
  t.after(async () => {
    await proxy.close();
    await Promise.all(servers.map((s) => s.stop()));
  });
  assert.deepEqual(await countReplies(port, 8), { a: 8 });
  const states = proxy.pools.get('p')!.backends.map((x) => x.state());
  assert.deepEqual(states, ['up', 'draining', 'disabled']);
});

test('a flapping backend does not make the pool thrash (rise/fall hysteresis)', async (t) => {
  // The backend goes down right after each check that found it up and comes back right after
  // each check that found it down, so the checks alternate pass/fail. With rise 4 / fall 4 its
  // state never changes. (Flapping on a timer instead raced the checks on a loaded machine: the
  // backend and the checker share this event loop, and when it lagged, a stop could reset a
  // check whose connect had succeeded but was not yet read — four failures in a row.)
  const a = await new NamedBackend('a').start();
  const b = await new NamedBackend('b').start();
  const { proxy } = await proxyFromYaml(
    poolYaml('round-robin', [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
      '    healthCheck: { type: tcp, interval: 100ms, timeout: 80ms, rise: 4, fall: 4, jitter: 0 }'),
  );
  const backendA = proxy.pools.get('p')!.backends.find((x) => x.port === a.port)!;
  const changes: string[] = [];
  const prev = proxy.pools.get('p')!.onStateChange;
  proxy.pools.get('p')!.onStateChange = (bk, why) => {
    changes.push(`${bk.name}: ${why}`);
    prev?.(bk, why);
  };
  // Polled every 5 ms: due before the next check (100 ms after a result), so the backend has
  // moved before it, however late the event loop runs.
  const results: boolean[] = [];
  let seen = backendA.lastCheckAt;
  const flap = setInterval(() => {
    if (backendA.lastCheckAt === seen) return;
    seen = backendA.lastCheckAt;
    const ok = backendA.lastCheckOk === true;
    results.push(ok);
    void (ok ? a.stop() : a.start());
  }, 5);
  t.after(async () => {
    clearInterval(flap);
    await proxy.close();
    await a.stop().catch(() => {});
    await b.stop();
  });
  await waitFor(() => results.length >= 14, 10_000, '14 checks of the flapping backend');
  clearInterval(flap);
  for (let i = 1; i < results.length; i++) assert.notEqual(results[i], results[i - 1], `checks alternate: ${results.join(' ')}`);
  assert.deepEqual(changes, [], 'no state change while flapping');
  assert.equal(backendA.state(), 'up');
});

test('l4lb check validates a file: exit 0 when valid, exit 2 with file, line, path and reason when not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-check-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const good = join(dir, 'good.yaml');
  writeFileSync(good, poolYaml('maglev', ['127.0.0.1:9001', '127.0.0.1:9002']));
  const ok = await runL4lb(['check', good]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /good\.yaml: OK \(1 listener\(s\), 1 pool\(s\)\)/);
  const okFlag = await runL4lb(['--config', good, '--check']);
  assert.equal(okFlag.code, 0);

  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, poolYaml('round-robin', ['127.0.0.1:9001', '{ address: "::1:80", weight: 0 }']));
  const r = await runL4lb(['check', bad]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /L4LB_ERR_CONFIG_INVALID/);
  assert.match(r.stderr, /bad\.yaml:\d+: pools\[0\]\.backends\[1\]\.address: .*brackets/);
  assert.match(r.stderr, /bad\.yaml:\d+: pools\[0\]\.backends\[1\]\.weight: /);

  // The same file refuses to start the proxy, with the same errors.
  const run = await runL4lb(['--config', bad]);
  assert.equal(run.code, 2);
  assert.match(run.stderr, /pools\[0\]\.backends\[1\]\.address/);

  const missing = await runL4lb(['check', join(dir, 'nope.yaml')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /L4LB_ERR_CONFIG_READ/);
});

test('--balance runs each algorithm from the command line', async (t) => {
  const a = await new NamedBackend('a').start();
  const b = await new NamedBackend('b').start();
  t.after(async () => {
    await a.stop();
    await b.stop();
  });
  for (const name of ['round-robin', 'weighted-round-robin', 'least-connections', 'random', 'power-of-two-choices', 'source-ip-hash', 'maglev']) {
    const l4lb = await spawnL4lb(['--balance', name, '--log-level', 'warn', `127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]);
    try {
      const counts = await countReplies(l4lb.port, 20);
      assert.equal((counts.a ?? 0) + (counts.b ?? 0), 20, name);
      if (name === 'source-ip-hash' || name === 'maglev') assert.equal(Object.keys(counts).length, 1, `${name} keeps one client on one backend`);
      if (name === 'round-robin' || name === 'weighted-round-robin') assert.deepEqual(counts, { a: 10, b: 10 }, name);
    } finally {
      await l4lb.stop('SIGKILL');
    }
  }
});
