/**
 * DNS discovery inside a running proxy, end to end over real sockets: configs through the
 * real loader, dnsmasq as the resolver, TCP backends on several loopback addresses.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { startProxy, type Proxy } from '../../src/proxy/proxy.js';
import type { AccessRecord } from '../../src/proxy/connection.js';
import type { Logger } from '../../src/observability/log.js';
import { silentLogger } from '../../src/observability/log.js';
import { waitFor } from '../support/net.js';
import { Dnsmasq, captureLogger, configFrom, firstLine, namedServer, serversOnOnePort, whoServes, type NamedServer } from './support.js';

const MiB = 1024 * 1024;

/** Starts a proxy from YAML, capturing its access records. */
async function proxyFrom(yaml: string, logger: Logger = silentLogger()) {
  const records: AccessRecord[] = [];
  const proxy = await startProxy(configFrom(yaml), { logger, onAccess: (r) => records.push(r) });
  return { proxy, port: proxy.addresses()[0].port, records };
}

function poolYaml(dns: Dnsmasq, pool: string, extra = ''): string {
  return `
listeners:
  - name: app
    listen: 127.0.0.1:0
    pool: app
pools:
  - name: app
    balance: round-robin
${extra}
    dns: ${pool.replace('RESOLVER', dns.server)}
log: { level: info, access: "off" }
`;
}

async function closeAll(proxy: Proxy | undefined, dns: Dnsmasq, servers: NamedServer[]): Promise<void> {
  // Clients are gone by now; let their relays finish on their own before closing.
  if (proxy) await waitFor(() => proxy.activeConnections() === 0, 2000, 'connections to finish').catch(() => {});
  await proxy?.close();
  await Promise.all(servers.map((s) => s.close()));
  await dns.close();
}

test('with no records at start, clients are closed with no_backend and a log line until records appear, then served', async (t) => {
  const dns = await Dnsmasq.start({ hosts: {} });
  const [backend] = await serversOnOnePort(['127.0.0.2'], () => 'backend-a');
  const { logger, lines } = captureLogger('info');
  let proxy: Proxy | undefined;
  t.after(() => closeAll(proxy, dns, [backend]));
  const started = await proxyFrom(
    poolYaml(dns, `{ name: app.test, port: ${backend.port}, resolvers: ["RESOLVER"], minTtl: 100ms, maxTtl: 300ms }`),
    logger,
  );
  proxy = started.proxy;

  assert.equal(proxy.pools.get('app')!.backends.length, 0);
  assert.equal(await whoServes(started.port), 'closed');
  await waitFor(() => started.records.length >= 1, 2000, 'an access record');
  assert.equal(started.records[0].reason, 'no_backend');
  assert.ok(
    lines.some((l) => l.msg === 'no backend available' && l.reason === 'no_backend' && l.pool === 'app'),
    'a "no backend available" log line',
  );
  assert.ok(lines.some((l) => l.msg === 'dns lookup failed; keeping the last good backend set'), 'the lookup failure is logged');
  assert.ok(proxy.discovery.get('app')!.stats.failures >= 1);

  await dns.setHosts({ 'app.test': ['127.0.0.2'] });
  await waitFor(async () => (await whoServes(started.port)) === 'backend-a', 5000, 'the backend to serve once its record exists');
  assert.equal(proxy.discovery.stats().app.backends, 1);
});

test('a long transfer to a backend whose record is removed runs to the end byte-exact; new clients go elsewhere', async (t) => {
  const dns = await Dnsmasq.start({ hosts: { 'app.test': ['127.0.0.2', '127.0.0.3'] } });
  const servers = await serversOnOnePort(['127.0.0.2', '127.0.0.3']);
  let proxy: Proxy | undefined;
  t.after(() => closeAll(proxy, dns, servers));
  const started = await proxyFrom(
    poolYaml(dns, `{ name: app.test, port: ${servers[0].port}, resolvers: ["RESOLVER"], minTtl: 100ms, maxTtl: 300ms }`),
  );
  proxy = started.proxy;
  const pool = proxy.pools.get('app')!;
  assert.equal(pool.backends.length, 2);

  const { line: first, socket: client } = await firstLine(started.port);
  t.after(() => client.destroy());
  const other = first === '127.0.0.2' ? '127.0.0.3' : '127.0.0.2';
  const sentHash = createHash('sha256');
  const recvHash = createHash('sha256');
  let received = 0;
  client.on('data', (c: Buffer) => {
    received += c.length;
    recvHash.update(c);
  });
  const ended = once(client, 'end');
  client.resume(); // firstLine leaves the socket paused
  const send = async (bytes: number) => {
    for (let sent = 0; sent < bytes; sent += 256 * 1024) {
      const b = randomBytes(256 * 1024);
      sentHash.update(b);
      if (!client.write(b)) await once(client, 'drain');
    }
  };

  await send(8 * MiB);
  // Remove the record of the backend this client is on, mid-transfer.
  await dns.setHosts({ 'app.test': [other] });
  await waitFor(() => pool.backends.length === 1 && pool.backends[0].host === other, 5000, 'the record removal to reach the pool');
  for (let i = 0; i < 4; i++) assert.equal(await whoServes(started.port), other, 'new clients go to the remaining backend');
  await send(8 * MiB);
  client.end();
  await ended;
  assert.equal(received, 16 * MiB, 'every byte echoed back');
  assert.equal(recvHash.digest('hex'), sentHash.digest('hex'), 'SHA-256 of what came back equals what was sent');
});

test('backends added by DNS take traffic only after passing the health check; the first answer at start serves at once', async (t) => {
  const dns = await Dnsmasq.start({ hosts: { 'app.test': ['127.0.0.2'] } });
  const [a] = await serversOnOnePort(['127.0.0.2']);
  const servers: NamedServer[] = [a];
  let proxy: Proxy | undefined;
  t.after(() => closeAll(proxy, dns, servers));
  const started = await proxyFrom(
    poolYaml(
      dns,
      `{ name: app.test, port: ${a.port}, resolvers: ["RESOLVER"], minTtl: 100ms, maxTtl: 300ms }`,
      '    healthCheck: { interval: 300ms, timeout: 200ms, rise: 2, fall: 3 }',
    ),
  );
  proxy = started.proxy;
  const pool = proxy.pools.get('app')!;
  const A = pool.find(`127.0.0.2:${a.port}`)!;
  assert.equal(A.state(), 'up', 'the starting set is up at once, like a static list');
  assert.equal(await whoServes(started.port), '127.0.0.2');

  // B (127.0.0.3) is not listening yet, C (127.0.0.4) never will.
  await dns.setHosts({ 'app.test': ['127.0.0.2', '127.0.0.3', '127.0.0.4'] });
  await waitFor(() => pool.backends.length === 3, 5000, 'the new records to reach the pool');
  const B = pool.find(`127.0.0.3:${a.port}`)!;
  const C = pool.find(`127.0.0.4:${a.port}`)!;
  assert.equal(B.state(), 'down');
  assert.equal(C.state(), 'down');
  // Were they up (fall 3 × 300ms before a failing check could take them out), round robin
  // would dial them now and count connect failures.
  for (let i = 0; i < 6; i++) assert.equal(await whoServes(started.port), '127.0.0.2');
  assert.equal(B.failures + C.failures, 0, 'no connection was ever sent to B or C');

  servers.push(await namedServer('127.0.0.3', '127.0.0.3', a.port));
  await waitFor(() => B.state() === 'up', 5000, 'B to pass its health checks');
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) seen.add(await whoServes(started.port));
  assert.deepEqual([...seen].sort(), ['127.0.0.2', '127.0.0.3']);
  assert.equal(C.state(), 'down');
  assert.equal(C.failures, 0);
});

test('SRV priority tiers: the backup serves only while the primary tier is down', async (t) => {
  const primary = await namedServer('primary', '127.0.0.2');
  const backup = await namedServer('backup', '127.0.0.3');
  const servers = [primary, backup];
  const dns = await Dnsmasq.start({
    hosts: { 'p.test': ['127.0.0.2'], 'b.test': ['127.0.0.3'] },
    srv: {
      '_app._tcp.test': [
        { target: 'p.test', port: primary.port, priority: 10, weight: 1 },
        { target: 'b.test', port: backup.port, priority: 20, weight: 1 },
      ],
    },
  });
  let proxy: Proxy | undefined;
  t.after(() => closeAll(proxy, dns, servers));
  const started = await proxyFrom(
    poolYaml(
      dns,
      `{ srv: _app._tcp.test, resolvers: ["RESOLVER"], minTtl: 100ms, maxTtl: 300ms }`,
      '    healthCheck: { interval: 200ms, timeout: 150ms, rise: 1, fall: 1 }',
    ),
  );
  proxy = started.proxy;
  const pool = proxy.pools.get('app')!;
  assert.deepEqual(pool.backends.map((b) => [b.host, b.backup]).sort(), [['127.0.0.2', false], ['127.0.0.3', true]]);
  for (let i = 0; i < 4; i++) assert.equal(await whoServes(started.port), 'primary');
  assert.equal(started.records.filter((r) => r.backendAddress?.startsWith('127.0.0.3')).length, 0, 'the backup took no client');

  await primary.close();
  const P = pool.backends.find((b) => !b.backup)!;
  await waitFor(() => P.state() === 'down', 5000, 'the primary to be marked down');
  for (let i = 0; i < 4; i++) assert.equal(await whoServes(started.port), 'backup');

  servers.push(await namedServer('primary again', '127.0.0.2', primary.port));
  await waitFor(() => P.state() === 'up', 5000, 'the primary to come back');
  for (let i = 0; i < 4; i++) assert.equal(await whoServes(started.port), 'primary again');
});

test('a reload keeps discovered backends (same objects) and restarts discovery when the dns settings change', async (t) => {
  const dns = await Dnsmasq.start({ hosts: { 'app.test': ['127.0.0.2'], 'new.test': ['127.0.0.3'] } });
  const servers = await serversOnOnePort(['127.0.0.2', '127.0.0.3']);
  let proxy: Proxy | undefined;
  t.after(() => closeAll(proxy, dns, servers));
  const port = servers[0].port;
  const yaml = (name: string, extra = '') =>
    poolYaml(dns, `{ name: ${name}, port: ${port}, resolvers: ["RESOLVER"], minTtl: 100ms, maxTtl: 300ms }`, extra);
  const started = await proxyFrom(yaml('app.test'));
  proxy = started.proxy;
  const pool = proxy.pools.get('app')!;
  const before = pool.backends[0];
  const discovery = proxy.discovery.get('app');
  assert.equal(before.host, '127.0.0.2');

  // Same dns settings, another change (a health check): nothing is re-discovered or emptied.
  await proxy.reload(configFrom(yaml('app.test', '    healthCheck: { interval: 200ms }')));
  assert.equal(pool.backends.length, 1);
  assert.equal(pool.backends[0], before, 'the same Backend object');
  assert.equal(proxy.discovery.get('app'), discovery, 'the same discovery');
  assert.equal(await whoServes(started.port), '127.0.0.2');

  // Another name: the old set serves until the new name answers, then the pool follows it.
  await proxy.reload(configFrom(yaml('new.test')));
  assert.notEqual(proxy.discovery.get('app'), discovery);
  assert.equal(discovery!.running, false, 'the old discovery is stopped');
  await waitFor(() => pool.backends.length === 1 && pool.backends[0].host === '127.0.0.3', 5000, 'the pool to follow the new name');
  assert.equal(await whoServes(started.port), '127.0.0.3');

  // Back to a static list: discovery stops, the list applies.
  await proxy.reload(
    configFrom(`
listeners:
  - { name: app, listen: "127.0.0.1:0", pool: app }
pools:
  - name: app
    backends: ["127.0.0.2:${port}"]
log: { level: info, access: "off" }
`),
  );
  assert.equal(proxy.discovery.get('app'), undefined);
  assert.deepEqual(pool.backends.map((b) => b.host), ['127.0.0.2']);
});
