/**
 * @module test/balancers/maglev — consistency, weights and cross-process determinism of
 * the Maglev table, and stability of the hash every hash balancer relies on.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { maglev, buildMaglevTable, maglevTableSize, MAGLEV_DEFAULT_TABLE_SIZE } from '../../src/balancers/maglev.js';
import { hashClient, hashString } from '../../src/balancers/hash.js';
import type { PickContext } from '../../src/balancers/types.js';

import { seededRandom, type TestBackend } from './support.js';

const KEY_COUNT = 10_000;

/** 10,000 distinct client keys (IPv4 and IPv6), the same in every run. */
function makeKeys(seed = 99): PickContext[] {
  const random = seededRandom(seed);
  const seen = new Set<string>();
  const keys: PickContext[] = [];
  while (keys.length < KEY_COUNT) {
    const n = Math.floor(random() * 2 ** 32);
    const clientAddress =
      keys.length % 4 === 3
        ? `2001:db8:${(n >>> 16).toString(16)}::${(n & 0xffff).toString(16)}`
        : `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
    if (seen.has(clientAddress)) continue;
    seen.add(clientAddress);
    keys.push({ clientAddress, clientPort: 1024 + (n % 60000) });
  }
  return keys;
}

function makeBackends(count: number, weight = 1): TestBackend[] {
  return Array.from({ length: count }, (_, i) => ({ name: `10.0.0.${i + 1}:8080`, weight, active: 0 }));
}

function assign(backends: readonly TestBackend[], keys: readonly PickContext[]): string[] {
  const balancer = maglev(backends);
  return keys.map((ctx) => balancer.pick(ctx, () => true)!.name);
}

function isPrime(n: number): boolean {
  if (n < 2) return false;
  for (let d = 2; d * d <= n; d++) if (n % d === 0) return false;
  return true;
}

const keys = makeKeys();

describe('maglev consistency', () => {
  for (const n of [5, 10]) {
    test(`it remaps at most about 1/${n} of the keys when one of ${n} backends is removed`, () => {
      const backends = makeBackends(n);
      const before = assign(backends, keys);
      const removed = backends[2].name;
      const after = assign(
        backends.filter((b) => b.name !== removed),
        keys,
      );
      let moved = 0;
      let survivorKeys = 0;
      let survivorMoved = 0;
      for (let i = 0; i < keys.length; i++) {
        if (before[i] !== after[i]) moved++;
        if (before[i] !== removed) {
          survivorKeys++;
          if (before[i] !== after[i]) survivorMoved++;
        }
        assert.notEqual(after[i], removed);
      }
      assert.ok(moved / keys.length <= 1.2 / n + 0.01, `moved ${moved / keys.length}`);
      assert.ok(survivorMoved / survivorKeys <= 0.02, `keys of surviving backends moved: ${survivorMoved / survivorKeys}`);
    });

    test(`it remaps at most about 1/${n + 1} of the keys, mostly onto the newcomer, when a backend joins ${n}`, () => {
      const backends = makeBackends(n + 1);
      const newcomer = backends[n].name;
      const before = assign(backends.slice(0, n), keys);
      const after = assign(backends, keys);
      let moved = 0;
      let movedToNewcomer = 0;
      for (let i = 0; i < keys.length; i++) {
        if (before[i] === after[i]) continue;
        moved++;
        if (after[i] === newcomer) movedToNewcomer++;
      }
      assert.ok(moved / keys.length <= 1.2 / (n + 1) + 0.01, `moved ${moved / keys.length}`);
      assert.ok(movedToNewcomer / moved >= 0.9, `moved to the newcomer: ${movedToNewcomer} of ${moved}`);
    });
  }

  test('it assigns keys the same whatever order the backends are listed in', () => {
    const backends = makeBackends(7);
    assert.deepEqual(assign([...backends].reverse(), keys), assign(backends, keys));
  });

  test('it spreads keys evenly over equal backends', () => {
    const backends = makeBackends(8);
    const counts = new Map<string, number>();
    for (const name of assign(backends, keys)) counts.set(name, (counts.get(name) ?? 0) + 1);
    for (const [name, count] of counts) assert.ok(Math.abs(count / KEY_COUNT - 1 / 8) < 0.02, `${name}: ${count}`);
  });
});

describe('maglev weights', () => {
  test('it gives a weight-2 backend about twice the keys of a weight-1 backend', () => {
    const backends: TestBackend[] = [
      { name: 'heavy', weight: 2, active: 0 },
      { name: 'light', weight: 1, active: 0 },
    ];
    const heavy = assign(backends, keys).filter((name) => name === 'heavy').length / KEY_COUNT;
    assert.ok(Math.abs(heavy - 2 / 3) < 0.02, `heavy share ${heavy}`);
  });

  test('it fills table slots in proportion to the weights', () => {
    const weights = [4, 2, 1, 1];
    const table = buildMaglevTable(['a', 'b', 'c', 'd'], weights, MAGLEV_DEFAULT_TABLE_SIZE);
    const slots = new Array(weights.length).fill(0);
    for (const index of table) slots[index]++;
    weights.forEach((w, i) => {
      const share = slots[i] / table.length;
      assert.ok(Math.abs(share - w / 8) < 0.001, `backend ${i}: ${share}`);
    });
  });

  test('it gives even a backend of tiny weight one slot, so a walk past refused backends reaches it', () => {
    const table = buildMaglevTable(['big', 'tiny'], [1, 1e-9], MAGLEV_DEFAULT_TABLE_SIZE);
    assert.equal(table.filter((index) => index === 1).length, 1);
    const backends: TestBackend[] = [
      { name: 'big', weight: 1, active: 0 },
      { name: 'tiny', weight: 1e-9, active: 0 },
    ];
    const balancer = maglev(backends);
    for (const ctx of keys.slice(0, 50)) assert.equal(balancer.pick(ctx, (b) => b.name === 'tiny')?.name, 'tiny');
  });
});

describe('maglev table', () => {
  test('it uses a prime table of at least 100 slots per backend, 65537 for up to 655 backends', () => {
    assert.equal(maglevTableSize(1), MAGLEV_DEFAULT_TABLE_SIZE);
    assert.equal(maglevTableSize(655), MAGLEV_DEFAULT_TABLE_SIZE);
    for (const n of [656, 1000, 2500]) {
      const size = maglevTableSize(n);
      assert.ok(isPrime(size) && size >= 100 * n, `${n} backends: ${size}`);
      for (let m = 100 * n; m < size; m++) assert.ok(!isPrime(m), `${m} is a smaller prime`);
    }
  });

  test('it fills every slot with a backend index', () => {
    const table = buildMaglevTable(['x', 'y', 'z'], [1, 1, 1], 101);
    assert.equal(table.length, 101);
    for (const index of table) assert.ok(index < 3);
    assert.equal(new Set(table).size, 3);
  });

  test('it refuses a table size that is not prime', () => {
    assert.throws(() => buildMaglevTable(['x'], [1], 65536), RangeError);
  });

  test('it hashes the client port only when asked to', () => {
    const backends = makeBackends(10);
    const byIp = maglev(backends);
    const byIpPort = maglev(backends, { hashPort: true });
    const ports = Array.from({ length: 200 }, (_, i) => 20000 + i);
    const ipOnly = new Set(ports.map((clientPort) => byIp.pick({ clientAddress: '198.51.100.7', clientPort }, () => true)));
    const withPort = new Set(ports.map((clientPort) => byIpPort.pick({ clientAddress: '198.51.100.7', clientPort }, () => true)));
    assert.equal(ipOnly.size, 1);
    assert.equal(withPort.size, 10);
  });

  test('it places an IPv4-mapped IPv6 client like the same IPv4 client', () => {
    const balancer = maglev(makeBackends(10));
    for (const ctx of keys.slice(0, 500)) {
      if (ctx.clientAddress.includes(':')) continue;
      const mapped = { clientAddress: `::ffff:${ctx.clientAddress}`, clientPort: ctx.clientPort };
      assert.equal(balancer.pick(mapped, () => true), balancer.pick(ctx, () => true));
    }
  });
});

describe('maglev determinism', () => {
  test('it assigns every key identically in a separate node process', async (t) => {
    const backends = makeBackends(9).map((b, i) => ({ ...b, weight: 1 + (i % 3) }));
    const parentAssignments = assign(backends, keys);
    const parentTable = buildMaglevTable(
      backends.map((b) => b.name),
      backends.map((b) => b.weight),
      MAGLEV_DEFAULT_TABLE_SIZE,
    );
    const parentDigest = createHash('sha256').update(parentTable).digest('hex');

    const moduleUrl = new URL('../../src/balancers/maglev.js', import.meta.url).href;
    const script = `
      import { maglev, buildMaglevTable } from ${JSON.stringify(moduleUrl)};
      import { createHash } from 'node:crypto';
      let input = '';
      for await (const chunk of process.stdin) input += chunk;
      const { backends, keys, size } = JSON.parse(input);
      const balancer = maglev([...backends].reverse());
      const assignments = keys.map((ctx) => balancer.pick(ctx, () => true).name);
      const table = buildMaglevTable(backends.map((b) => b.name), backends.map((b) => b.weight), size);
      const digest = createHash('sha256').update(table).digest('hex');
      process.stdout.write(JSON.stringify({ assignments, digest }));
    `;
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill();
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve, reject) => {
      child.on('error', reject);
      child.on('close', (code) => resolve(code));
    });
    child.stdin.end(JSON.stringify({ backends, keys, size: MAGLEV_DEFAULT_TABLE_SIZE }));
    assert.equal(await exited, 0, stderr);

    const result = JSON.parse(stdout) as { assignments: string[]; digest: string };
    assert.equal(result.digest, parentDigest, 'the same table');
    assert.equal(result.assignments.length, KEY_COUNT);
    const differing = result.assignments.filter((name, i) => name !== parentAssignments[i]).length;
    assert.equal(differing, 0, `${differing} keys placed differently`);
  });
});

describe('the shared hash', () => {
  test('it keeps its values across releases, or every client would move on upgrade', () => {
    // Pinned outputs: changing the hash remaps every source-ip-hash and maglev client.
    assert.equal(hashString(''), 2872998923);
    assert.equal(hashString('backend-1'), 1437033267);
    assert.equal(hashString('backend-1', 7), 1506715775);
    assert.equal(hashClient('10.0.0.1', 443, true), 1981011263);
    assert.equal(hashClient('10.0.0.1', 443, false), 2931590574);
  });

  test('it hashes an IPv4-mapped IPv6 address like the IPv4 address', () => {
    assert.equal(hashClient('::ffff:203.0.113.9', 80, true), hashClient('203.0.113.9', 80, true));
    assert.notEqual(hashClient('::ffff:1', 80, false), hashClient('1', 80, false));
  });

  test('it spreads similar inputs over all residues of a small modulus', () => {
    const buckets = new Array(7).fill(0);
    for (let i = 0; i < 7000; i++) buckets[hashClient(`10.0.0.${i % 256}`, i, true) % 7]++;
    for (const count of buckets) assert.ok(Math.abs(count - 1000) < 120, `bucket ${count}`);
  });
});
