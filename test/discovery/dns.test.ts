/**
 * DnsDiscovery against a real DNS server (dnsmasq on a loopback port): a pool follows
 * A/AAAA and SRV records as they change, keeps its last good set through resolver
 * failures and NXDOMAIN, and counts what happened.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pool } from '../../src/proxy/pool.js';
import { DnsDiscovery } from '../../src/discovery/dns.js';
import { Defaults, defaultPassive, type DnsDiscoveryConfig, type PoolConfig } from '../../src/config/types.js';
import { silentLogger } from '../../src/observability/log.js';
import { waitFor } from '../support/net.js';
import { Dnsmasq, RECORD_TTL_S, captureLogger } from './support.js';

function poolConfig(name: string): PoolConfig {
  return {
    name,
    balance: 'round-robin',
    hashKey: 'source-ip',
    backends: [],
    passive: defaultPassive(),
    slowStartMs: 0,
    queue: { size: 0, timeoutMs: Defaults.queueTimeoutMs },
  };
}

function dnsConfig(server: string, o: Partial<DnsDiscoveryConfig>): DnsDiscoveryConfig {
  return {
    resolvers: [server],
    minTtlMs: Defaults.dnsMinTtlMs,
    maxTtlMs: Defaults.dnsMaxTtlMs,
    keepLastOnFailure: true,
    weight: 1,
    ...o,
  };
}

const names = (p: Pool) => p.backends.map((b) => b.name).sort();

test('a pool follows A/AAAA records within their TTL, keeping the Backend objects (and admin state) of addresses that stay', async (t) => {
  const dns = await Dnsmasq.start({ hosts: { 'app.test': ['127.0.0.2', '127.0.0.3', '::1'] } });
  const pool = new Pool(poolConfig('app'));
  // Default minTtl (1s): the record TTL (1s) alone decides when the next lookup happens.
  const d = new DnsDiscovery(pool, dnsConfig(dns.server, { name: 'app.test', port: 9000 }), silentLogger());
  t.after(async () => {
    d.stop();
    await dns.close();
  });
  await d.start();
  assert.deepEqual(names(pool), ['127.0.0.2:9000', '127.0.0.3:9000', '[::1]:9000']);
  assert.equal(pool.find('[::1]:9000')!.host, '::1');
  assert.equal(d.stats.refreshMs, RECORD_TTL_S * 1000);
  const kept = pool.find('127.0.0.3:9000')!;
  kept.total = 42; // counters must survive the change
  kept.admin = 'draining'; // as the admin API would: an operator's choice, not DNS's

  const t0 = Date.now();
  await dns.setHosts({ 'app.test': ['127.0.0.3', '127.0.0.4'] });
  await waitFor(() => names(pool).join() === '127.0.0.3:9000,127.0.0.4:9000', 5000, 'the pool to follow the new records');
  const tookMs = Date.now() - t0;
  // One TTL until the next lookup, plus generous slack for a loaded machine.
  assert.ok(tookMs <= RECORD_TTL_S * 1000 + 2500, `took ${tookMs}ms`);
  assert.equal(pool.find('127.0.0.3:9000'), kept, 'same Backend object for an address that stayed');
  assert.equal(kept.total, 42);
  assert.equal(kept.admin, 'draining', 'an admin drain survives the record change');
  assert.equal(pool.find('127.0.0.4:9000')!.admin, 'enabled');
  assert.equal(d.stats.changes, 2);
  assert.equal(d.stats.failures, 0);
  assert.equal(d.stats.backends, 2);
  assert.ok(d.stats.resolutions >= 2);
});

test('when the resolver goes down the last good set is kept, failures are counted and logged, and it recovers', async (t) => {
  const dns = await Dnsmasq.start({ hosts: { 'app.test': ['127.0.0.2', '127.0.0.3'] } });
  const pool = new Pool(poolConfig('app'));
  const { logger, lines } = captureLogger('warn');
  const d = new DnsDiscovery(pool, dnsConfig(dns.server, { name: 'app.test', port: 9000, minTtlMs: 100, maxTtlMs: 300 }), logger, {
    queryTimeoutMs: 300,
    tries: 1,
  });
  t.after(async () => {
    d.stop();
    await dns.close();
  });
  await d.start();
  const before = [...pool.backends];
  assert.equal(before.length, 2);

  await dns.kill();
  await waitFor(() => d.stats.failures >= 3, 8000, 'three failed lookups');
  assert.deepEqual(pool.backends, before, 'the same backends, untouched');
  assert.ok(d.stats.consecutiveFailures >= 3);
  assert.match(d.stats.lastError ?? '', /app\.test/);
  const warned = lines.filter((l) => l.msg === 'dns lookup failed; keeping the last good backend set');
  assert.ok(warned.length >= 3, `${warned.length} warn lines`);
  assert.equal(warned[0].pool, 'app');

  await dns.setHosts({ 'app.test': ['127.0.0.4'] });
  await dns.restart();
  await waitFor(() => names(pool).join() === '127.0.0.4:9000', 8000, 'the pool to follow once the resolver is back');
  assert.equal(d.stats.consecutiveFailures, 0);
  assert.equal(d.stats.lastError, undefined);
});

test('a lookup where A answers and AAAA is REFUSED (non-authoritative dnsmasq) uses the A records; only when no family answers is it a failure', async (t) => {
  const dns = await Dnsmasq.start({ hosts: { 'app.test': ['127.0.0.2', '127.0.0.3'] }, authoritative: false });
  const { logger, lines } = captureLogger('debug');
  const pool = new Pool(poolConfig('app'));
  const d = new DnsDiscovery(pool, dnsConfig(dns.server, { name: 'app.test', port: 9000, minTtlMs: 100, maxTtlMs: 300 }), logger, { tries: 1 });
  const none = new Pool(poolConfig('none'));
  const dNone = new DnsDiscovery(none, dnsConfig(dns.server, { name: 'gone.test', port: 9000, minTtlMs: 100, maxTtlMs: 300 }), silentLogger(), { tries: 1 });
  t.after(async () => {
    d.stop();
    dNone.stop();
    await dns.close();
  });
  await d.start();
  assert.deepEqual(names(pool), ['127.0.0.2:9000', '127.0.0.3:9000'], 'the A answers are kept');
  assert.equal(d.stats.failures, 0);
  const debug = lines.find((l) => l.msg === 'dns discovery: one address family failed; using the other');
  assert.ok(debug, 'the refused family is logged');
  assert.equal(debug.level, 20, 'at debug level');
  assert.equal(debug.code, 'EREFUSED');
  assert.match(String(debug.err), /AAAA lookup of app\.test/);

  // A name with no record at all: both families REFUSED, which is a failure.
  await dNone.start().catch(() => {});
  await waitFor(() => dNone.stats.failures >= 1, 5000, 'the lookup with no answering family to fail');
  assert.equal(none.backends.length, 0);
  assert.match(dNone.stats.lastError ?? '', /lookup of gone\.test failed: EREFUSED/);
});

test('NXDOMAIN keeps the last good set by default, and empties the pool with keepLastOnFailure false', async (t) => {
  const dns = await Dnsmasq.start({ hosts: { 'app.test': ['127.0.0.2'] } });
  const keepPool = new Pool(poolConfig('keep'));
  const dropPool = new Pool(poolConfig('drop'));
  const cfg = { name: 'app.test', port: 9000, minTtlMs: 100, maxTtlMs: 200 };
  const keep = new DnsDiscovery(keepPool, dnsConfig(dns.server, cfg), silentLogger());
  const drop = new DnsDiscovery(dropPool, dnsConfig(dns.server, { ...cfg, keepLastOnFailure: false }), silentLogger());
  t.after(async () => {
    keep.stop();
    drop.stop();
    await dns.close();
  });
  await Promise.all([keep.start(), drop.start()]);
  assert.deepEqual(names(keepPool), ['127.0.0.2:9000']);
  assert.deepEqual(names(dropPool), ['127.0.0.2:9000']);

  await dns.setHosts({ 'other.test': ['127.0.0.9'] });
  await waitFor(() => keep.stats.failures >= 2 && drop.stats.failures >= 2, 5000, 'NXDOMAIN answers');
  assert.deepEqual(names(keepPool), ['127.0.0.2:9000']);
  assert.deepEqual(names(dropPool), []);
  assert.match(keep.stats.lastError ?? '', /NXDOMAIN/);

  await dns.setHosts({ 'app.test': ['127.0.0.5'] });
  await waitFor(() => names(dropPool).join() === '127.0.0.5:9000' && names(keepPool).join() === '127.0.0.5:9000', 5000, 'records back');
});

test('SRV records give primary and backup backends with their ports and weights, and changes are followed', async (t) => {
  const dns = await Dnsmasq.start({
    hosts: { 'a.test': ['127.0.0.2'], 'b.test': ['127.0.0.3', '::1'], 'c.test': ['127.0.0.4'] },
    srv: {
      '_app._tcp.test': [
        { target: 'a.test', port: 7001, priority: 10, weight: 30 },
        { target: 'b.test', port: 7002, priority: 10, weight: 10 },
        { target: 'c.test', port: 7003, priority: 20, weight: 0 },
        { target: 'missing.test', port: 7004, priority: 10, weight: 5 },
      ],
    },
  });
  const pool = new Pool(poolConfig('srv'));
  const { logger, lines } = captureLogger('warn');
  const d = new DnsDiscovery(pool, dnsConfig(dns.server, { srv: '_app._tcp.test', minTtlMs: 100, maxTtlMs: 5000 }), logger);
  t.after(async () => {
    d.stop();
    await dns.close();
  });
  await d.start();
  const view = () => pool.backends.map((b) => `${b.name} w=${b.configuredWeight} ${b.backup ? 'backup' : 'primary'}`).sort();
  assert.deepEqual(view(), [
    '127.0.0.2:7001 w=30 primary',
    '127.0.0.3:7002 w=5 primary',
    '127.0.0.4:7003 w=1 backup',
    '[::1]:7002 w=5 primary',
  ]);
  // The TTL of SRV answers comes from the targets' address records.
  assert.equal(d.stats.refreshMs, RECORD_TTL_S * 1000);
  assert.ok(lines.some((l) => l.msg === 'dns discovery: SRV targets without addresses left out'));

  await dns.setSrv({ '_app._tcp.test': [{ target: 'c.test', port: 7005, priority: 1, weight: 2 }] });
  await waitFor(() => view().join() === '127.0.0.4:7005 w=2 primary', 5000, 'the pool to follow the new SRV records');
});
