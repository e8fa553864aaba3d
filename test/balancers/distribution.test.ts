/**
 * @module test/balancers/distribution — who gets how many connections, table by table.
 *
 * Deterministic algorithms are checked exactly (pick order, counts); random ones with a
 * seeded PRNG over enough picks that the tolerances are several standard deviations wide.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { balancerNames, createBalancer } from '../../src/balancers/index.js';
import type { BalancerName } from '../../src/config/types.js';
import type { PickContext } from '../../src/balancers/types.js';

import { seededRandom, type TestBackend } from './support.js';

/** Backends named a, b, c, ... with the given weights and active counts. */
function makeBackends(weights: readonly number[], active: readonly number[] = []): TestBackend[] {
  return weights.map((weight, i) => ({ name: String.fromCharCode(97 + i), weight, active: active[i] ?? 0 }));
}

/** A different client for each i, drawn from a seeded PRNG. */
function randomClients(count: number, seed: number): PickContext[] {
  const random = seededRandom(seed);
  const byte = () => Math.floor(random() * 256);
  return Array.from({ length: count }, () => ({
    clientAddress: `${1 + Math.floor(random() * 223)}.${byte()}.${byte()}.${byte()}`,
    clientPort: 1024 + Math.floor(random() * 64000),
  }));
}

const ANY_CLIENT: PickContext = { clientAddress: '192.0.2.10', clientPort: 40000 };
const acceptAll = () => true;

function shares(picked: readonly TestBackend[], backends: readonly TestBackend[]): number[] {
  return backends.map((b) => picked.filter((x) => x === b).length / picked.length);
}

describe('pick order of the deterministic balancers', () => {
  const cases: { name: BalancerName; weights: number[]; active?: number[]; expected: string; why: string }[] = [
    { name: 'round-robin', weights: [1, 1, 1], expected: 'abcabcabc', why: 'rotation in list order' },
    { name: 'round-robin', weights: [5, 1, 1], expected: 'abcabc', why: 'weights are ignored' },
    { name: 'weighted-round-robin', weights: [5, 1, 1], expected: 'aabacaa'.repeat(3), why: 'nginx smooth WRR' },
    { name: 'weighted-round-robin', weights: [3, 1], expected: 'aaba'.repeat(3), why: 'nginx smooth WRR' },
    { name: 'weighted-round-robin', weights: [2, 1, 1], expected: 'abca'.repeat(3), why: 'nginx smooth WRR' },
    { name: 'weighted-round-robin', weights: [1, 1, 1], expected: 'abc'.repeat(3), why: 'equal weights rotate' },
    { name: 'least-connections', weights: [1, 1, 1], expected: 'abc'.repeat(3), why: 'ties rotate' },
    { name: 'least-connections', weights: [1, 1, 1], active: [5, 0, 0], expected: 'bc'.repeat(4), why: 'a is busier' },
    { name: 'least-connections', weights: [1, 4, 1], active: [1, 3, 0], expected: 'bcbcbc', why: '(active+1)/weight ties b, c' },
  ];
  for (const c of cases) {
    test(`it picks ${c.name} with weights ${c.weights} in the order ${c.expected} (${c.why})`, () => {
      const backends = makeBackends(c.weights, c.active);
      const balancer = createBalancer(c.name, backends, { random: () => 0 });
      let order = '';
      for (let i = 0; i < c.expected.length; i++) order += balancer.pick(ANY_CLIENT, acceptAll)!.name;
      assert.equal(order, c.expected);
    });
  }

  test('it rotates round-robin over the accepted backends, evenly, while one is refused', () => {
    const backends = makeBackends([1, 1, 1, 1]);
    const balancer = createBalancer('round-robin', backends, { random: () => 0 });
    let order = '';
    for (let i = 0; i < 9; i++) order += balancer.pick(ANY_CLIENT, (b) => b.name !== 'b')!.name;
    assert.equal(order, 'acdacdacd');
  });
});

describe('smooth weighted round robin', () => {
  for (const weights of [[5, 1, 1], [100, 1, 1], [4, 3, 2, 1], [7, 2, 1], [15, 9, 1, 1, 18, 15, 4]]) {
    test(`it keeps every prefix within one pick of the weight shares for weights ${weights}`, () => {
      // A bursty WRR (a a a a a b c for 5,1,1) is 1.43 picks ahead after five picks.
      const backends = makeBackends(weights);
      const balancer = createBalancer('weighted-round-robin', backends);
      const total = weights.reduce((x, y) => x + y, 0);
      const counts = new Map<TestBackend, number>();
      for (let t = 1; t <= 3 * total; t++) {
        const b = balancer.pick(ANY_CLIENT, acceptAll)!;
        counts.set(b, (counts.get(b) ?? 0) + 1);
        for (const x of backends) {
          const lag = Math.abs((counts.get(x) ?? 0) - (t * x.weight) / total);
          assert.ok(lag <= 1 + 1e-9, `${x.name} is ${lag.toFixed(2)} picks off its share after ${t} picks`);
        }
      }
      for (const x of backends) assert.equal(counts.get(x), 3 * x.weight);
    });
  }

  test('it never runs the heavy backend of 5, 1, 1 more than four times in a row', () => {
    const backends = makeBackends([5, 1, 1]);
    const balancer = createBalancer('weighted-round-robin', backends);
    let run = 0;
    let longest = 0;
    for (let i = 0; i < 700; i++) {
      run = balancer.pick(ANY_CLIENT, acceptAll)!.name === 'a' ? run + 1 : 0;
      longest = Math.max(longest, run);
    }
    assert.equal(longest, 4);
  });

  test('it reads the weights at every pick, so a changed weight shifts the shares at once', () => {
    const backends = makeBackends([1, 1]);
    const balancer = createBalancer('weighted-round-robin', backends);
    const before = Array.from({ length: 100 }, () => balancer.pick(ANY_CLIENT, acceptAll)!);
    assert.deepEqual(shares(before, backends), [0.5, 0.5]);
    backends[1].weight = 3;
    const after = Array.from({ length: 400 }, () => balancer.pick(ANY_CLIENT, acceptAll)!);
    assert.deepEqual(shares(after, backends), [0.25, 0.75]);
  });

  test('it does not burst a backend that comes back after being refused for a while', () => {
    const backends = makeBackends([1, 1, 1]);
    const balancer = createBalancer('weighted-round-robin', backends);
    for (let i = 0; i < 300; i++) assert.notEqual(balancer.pick(ANY_CLIENT, (b) => b.name !== 'c')!.name, 'c');
    const back = Array.from({ length: 30 }, () => balancer.pick(ANY_CLIENT, acceptAll)!.name).join('');
    assert.ok(!back.includes('cc'), `no back-to-back picks of c: ${back}`);
    assert.equal([...back].filter((x) => x === 'c').length, 10);
  });
});

describe('shares over many picks', () => {
  // `exact`: counts must match the shares exactly; otherwise within `tolerance` (absolute share).
  const cases: { name: BalancerName; weights: number[]; expected: number[]; exact?: boolean; tolerance?: number }[] = [
    { name: 'round-robin', weights: [1, 1, 1], expected: [1 / 3, 1 / 3, 1 / 3], exact: true },
    { name: 'round-robin', weights: [3, 1, 1], expected: [1 / 3, 1 / 3, 1 / 3], exact: true },
    { name: 'weighted-round-robin', weights: [3, 1, 1], expected: [0.6, 0.2, 0.2], exact: true },
    { name: 'weighted-round-robin', weights: [2.5, 0.5, 2], expected: [0.5, 0.1, 0.4], tolerance: 0.001 },
    { name: 'random', weights: [1, 1, 1, 1], expected: [0.25, 0.25, 0.25, 0.25], tolerance: 0.02 },
    { name: 'random', weights: [3, 1, 1], expected: [0.6, 0.2, 0.2], tolerance: 0.02 },
    // With no load at all P2C's tie goes to the first (weighted) draw: plain weighted random.
    { name: 'power-of-two-choices', weights: [3, 1, 1], expected: [0.6, 0.2, 0.2], tolerance: 0.02 },
    { name: 'source-ip-hash', weights: [1, 1, 1, 1], expected: [0.25, 0.25, 0.25, 0.25], tolerance: 0.03 },
    { name: 'source-ip-hash', weights: [2, 1, 1], expected: [0.5, 0.25, 0.25], tolerance: 0.03 },
    { name: 'maglev', weights: [1, 1, 1, 1], expected: [0.25, 0.25, 0.25, 0.25], tolerance: 0.03 },
    { name: 'maglev', weights: [2, 1, 1], expected: [0.5, 0.25, 0.25], tolerance: 0.03 },
  ];
  const PICKS = 12_000;
  for (const c of cases) {
    test(`it gives ${c.name} with weights ${c.weights} the shares ${c.expected.map((x) => x.toFixed(2))}`, () => {
      const backends = makeBackends(c.weights);
      const balancer = createBalancer(c.name, backends, { random: seededRandom(11) });
      const clients = randomClients(PICKS, 12);
      const picked = clients.map((ctx) => balancer.pick(ctx, acceptAll)!);
      const got = shares(picked, backends);
      if (c.exact) {
        // PICKS is a whole number of periods of every exact case, so counts are exact.
        backends.forEach((b, i) =>
          assert.equal(picked.filter((x) => x === b).length, Math.round(c.expected[i] * PICKS), b.name),
        );
      } else {
        got.forEach((share, i) =>
          assert.ok(Math.abs(share - c.expected[i]) <= c.tolerance!, `${backends[i].name}: ${share} vs ${c.expected[i]}`),
        );
      }
    });
  }

  test('it gives least-connections backends open connections in proportion to their weights', () => {
    const backends = makeBackends([2, 1, 1]);
    const balancer = createBalancer('least-connections', backends);
    for (let i = 0; i < 400; i++) balancer.pick(ANY_CLIENT, acceptAll)!.active++;
    assert.ok(Math.abs(backends[0].active - 200) <= 1, `a has ${backends[0].active}`);
    assert.ok(Math.abs(backends[1].active - 100) <= 1, `b has ${backends[1].active}`);
    assert.ok(Math.abs(backends[2].active - 100) <= 1, `c has ${backends[2].active}`);
  });
});

describe('load awareness', () => {
  test('it sends least-connections picks away from a backend holding many long connections', () => {
    const backends = makeBackends([1, 1, 1], [20, 0, 0]);
    const balancer = createBalancer('least-connections', backends);
    const open: TestBackend[] = [];
    const counts = new Map<string, number>();
    for (let i = 0; i < 300; i++) {
      const b = balancer.pick(ANY_CLIENT, acceptAll)!;
      counts.set(b.name, (counts.get(b.name) ?? 0) + 1);
      b.active++;
      open.push(b);
      if (open.length > 6) open.shift()!.active--;
    }
    assert.equal(counts.get('a'), undefined, 'the busy backend gets nothing while the others have fewer');
    assert.equal(counts.get('b'), 150);
    assert.equal(counts.get('c'), 150);
  });

  test('it picks the less loaded of two candidates, so power-of-two-choices favours an idle backend', () => {
    const backends = makeBackends([1, 1, 1, 1], [0, 10, 10, 10]);
    const balancer = createBalancer('power-of-two-choices', backends, { random: seededRandom(21) });
    const picked = Array.from({ length: 20_000 }, () => balancer.pick(ANY_CLIENT, acceptAll)!);
    // a wins every pair it is in: 1 - (3/4)(2/3) = 1/2, where random choice would give 1/4.
    const [a] = shares(picked, backends);
    assert.ok(Math.abs(a - 0.5) < 0.02, `a got ${a}`);
  });

  test('it keeps connections far more even with power-of-two-choices than with random', () => {
    const spread = (name: BalancerName): number => {
      const backends = makeBackends(new Array(10).fill(1));
      const balancer = createBalancer(name, backends, { random: seededRandom(31) });
      for (let i = 0; i < 2000; i++) balancer.pick(ANY_CLIENT, acceptAll)!.active++;
      const actives = backends.map((b) => b.active);
      return Math.max(...actives) - Math.min(...actives);
    };
    const p2c = spread('power-of-two-choices');
    const random = spread('random');
    assert.ok(p2c <= 6, `P2C max-min spread ${p2c}`);
    assert.ok(random > 3 * p2c, `random spread ${random} vs P2C ${p2c}`);
  });

  test('it weighs power-of-two-choices loads by weight', () => {
    const backends = makeBackends([3, 1]);
    const balancer = createBalancer('power-of-two-choices', backends, { random: seededRandom(41) });
    for (let i = 0; i < 4000; i++) balancer.pick(ANY_CLIENT, acceptAll)!.active++;
    const ratio = backends[0].active / backends[1].active;
    assert.ok(Math.abs(ratio - 3) < 0.1, `a:b = ${ratio}`);
  });
});

describe('a backend taken down mid-way', () => {
  for (const name of balancerNames) {
    test(`it gives ${name}'s share of a refused backend to the others, and nothing to it`, () => {
      const backends = makeBackends([1, 1, 1, 1]);
      const down = backends[1];
      const balancer = createBalancer(name, backends, { random: seededRandom(51) });
      const clients = randomClients(4000, 52);
      const open: TestBackend[] = [];
      const run = (accept: (b: TestBackend) => boolean) =>
        clients.map((ctx) => {
          const b = balancer.pick(ctx, accept)!;
          b.active++;
          open.push(b);
          if (open.length > 8) open.shift()!.active--;
          return b;
        });

      const before = run(acceptAll);
      const during = run((b) => b !== down);
      const after = run(acceptAll);

      assert.ok(shares(before, backends)[1] > 0.2, 'it had its share before');
      assert.equal(shares(during, backends)[1], 0, 'nothing while it is refused');
      const beforeShares = shares(before, backends);
      for (const [i, share] of shares(during, backends).entries()) {
        if (i !== 1) assert.ok(share > beforeShares[i] + 0.03, `${backends[i].name} absorbs part: ${beforeShares[i]} → ${share}`);
      }
      assert.ok(shares(after, backends)[1] > 0.2, 'it takes its share again once accepted');
    });
  }

  for (const name of ['source-ip-hash', 'maglev'] as const) {
    test(`it moves only the refused backend's clients with ${name}, and spreads them over the others`, () => {
      const backends = makeBackends([1, 1, 1, 1]);
      const down = backends[1];
      const balancer = createBalancer(name, backends);
      const clients = randomClients(4000, 61);
      const before = clients.map((ctx) => balancer.pick(ctx, acceptAll)!);
      const during = clients.map((ctx) => balancer.pick(ctx, (b) => b !== down)!);
      const after = clients.map((ctx) => balancer.pick(ctx, acceptAll)!);
      const movedTo = new Map<string, number>();
      clients.forEach((_, i) => {
        if (before[i] === down) movedTo.set(during[i].name, (movedTo.get(during[i].name) ?? 0) + 1);
        else assert.equal(during[i], before[i], 'a client of a surviving backend stays');
      });
      assert.equal(movedTo.size, 3, 'the refused backend clients go to all three others');
      for (const [target, count] of movedTo) assert.ok(count > 150, `${target} took ${count}`);
      assert.deepEqual(after, before, 'every client returns to its backend once it is back');
    });
  }
});
