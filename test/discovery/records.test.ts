/**
 * How DNS answers become backends (names, tiers, weights) and when lookups repeat:
 * the pure parts of discovery/dns, as tables.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { addressBackends, srvBackends, refreshDelay, retryDelay, DnsDefaults } from '../../src/discovery/dns.js';

const view = (list: ReturnType<typeof srvBackends>) => list.map((b) => [b.name, b.host, b.port, b.weight, b.backup]);

test('A/AAAA answers become one backend per address, named IP:PORT with IPv6 in brackets, in a stable order', () => {
  const got = addressBackends(['127.0.0.3', '::1', '127.0.0.2', '127.0.0.3'], 8080, 2);
  assert.deepEqual(view(got), [
    ['127.0.0.2:8080', '127.0.0.2', 8080, 2, false],
    ['127.0.0.3:8080', '127.0.0.3', 8080, 2, false],
    ['[::1]:8080', '::1', 8080, 2, false],
  ]);
  for (const b of got) assert.equal(b.state, 'enabled');
});

test('SRV records with the lowest priority are primary, all others are backups', () => {
  const addrs = new Map([
    ['a.test', ['10.0.0.1']],
    ['b.test', ['10.0.0.2']],
    ['c.test', ['10.0.0.3']],
    ['d.test', ['10.0.0.4']],
  ]);
  const got = srvBackends(
    [
      { name: 'c.test', port: 3, priority: 20, weight: 1 },
      { name: 'a.test', port: 1, priority: 10, weight: 3 },
      { name: 'd.test.', port: 4, priority: 30, weight: 1 },
      { name: 'B.test', port: 2, priority: 10, weight: 1 },
    ],
    addrs,
  );
  assert.deepEqual(view(got), [
    ['10.0.0.1:1', '10.0.0.1', 1, 3, false],
    ['10.0.0.2:2', '10.0.0.2', 2, 1, false],
    ['10.0.0.3:3', '10.0.0.3', 3, 1, true],
    ['10.0.0.4:4', '10.0.0.4', 4, 1, true],
  ]);
});

test('SRV weight 0 counts as 1 when the whole tier is 0, else as a small share of the lightest positive weight', () => {
  const addrs = new Map([
    ['a.test', ['10.0.0.1']],
    ['b.test', ['10.0.0.2']],
    ['c.test', ['10.0.0.3']],
    ['d.test', ['10.0.0.4']],
  ]);
  const got = srvBackends(
    [
      { name: 'a.test', port: 1, priority: 1, weight: 0 },
      { name: 'b.test', port: 1, priority: 1, weight: 0 },
      { name: 'c.test', port: 1, priority: 2, weight: 0 },
      { name: 'd.test', port: 1, priority: 2, weight: 50 },
    ],
    addrs,
  );
  assert.deepEqual(view(got), [
    ['10.0.0.1:1', '10.0.0.1', 1, 1, false],
    ['10.0.0.2:1', '10.0.0.2', 1, 1, false],
    ['10.0.0.3:1', '10.0.0.3', 1, 50 * DnsDefaults.srvZeroWeightShare, true],
    ['10.0.0.4:1', '10.0.0.4', 1, 50, true],
  ]);
  for (const b of got) assert.ok(b.weight > 0);
});

test('an SRV target with several addresses splits its weight; an address reached twice keeps its best tier', () => {
  const addrs = new Map([
    ['multi.test', ['10.0.0.1', 'fd00::1']],
    ['alias.test', ['10.0.0.1']],
    ['gone.test', []],
  ]);
  const got = srvBackends(
    [
      { name: 'multi.test', port: 80, priority: 1, weight: 4 },
      { name: 'alias.test', port: 80, priority: 1, weight: 1 },
      { name: 'alias.test', port: 80, priority: 5, weight: 9 },
      { name: 'gone.test', port: 80, priority: 0, weight: 1 },
    ],
    addrs,
  );
  // gone.test has no address, so it neither appears nor makes priority 0 the primary tier.
  assert.deepEqual(view(got), [
    ['10.0.0.1:80', '10.0.0.1', 80, 3, false],
    ['[fd00::1]:80', 'fd00::1', 80, 2, false],
  ]);
});

test('SRV records whose targets have no address give no backend', () => {
  assert.deepEqual(srvBackends([{ name: 'x.test', port: 1, priority: 0, weight: 0 }], new Map()), []);
});

test('lookups repeat after the smallest TTL, clamped to minTtl..maxTtl', () => {
  const cfg = { minTtlMs: 1_000, maxTtlMs: 60_000 };
  const table: Array<[number | undefined, number]> = [
    [0, 1_000],
    [500, 1_000],
    [5_000, 5_000],
    [3_600_000, 60_000],
    [undefined, Math.min(DnsDefaults.noTtlRefreshMs, 60_000)],
  ];
  for (const [ttl, want] of table) assert.equal(refreshDelay(ttl, cfg), want, `ttl ${ttl}`);
});

test('after failures lookups are retried at minTtl, doubling, capped at maxTtl and 30s', () => {
  const got = [1, 2, 3, 4, 5, 6, 7, 50].map((n) => retryDelay(n, { minTtlMs: 1_000, maxTtlMs: 300_000 }));
  assert.deepEqual(got, [1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000]);
  assert.deepEqual([1, 2, 3].map((n) => retryDelay(n, { minTtlMs: 100, maxTtlMs: 300 })), [100, 200, 300]);
  // A minTtl above the cap still wins: lookups never repeat faster than minTtl.
  assert.equal(retryDelay(3, { minTtlMs: 60_000, maxTtlMs: 120_000 }), 60_000);
});
