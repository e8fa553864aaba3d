/**
 * @module test/balancers/conformance — the contract every balancing algorithm keeps.
 *
 * One suite, run for each name in `balancerNames` (as hono runs one router suite over
 * every router): the `Balancer.pick` contract from src/balancers/types.ts, checked with
 * varied backend lists, weights, client addresses and refusal patterns.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { balancerNames, createBalancer, isBalancerName } from '../../src/balancers/index.js';
import type { PickContext } from '../../src/balancers/types.js';
import { L4lbError, ErrorCodes } from '../../src/errors.js';

import { seededRandom, type TestBackend } from './support.js';

function makeBackends(weights: readonly number[]): TestBackend[] {
  return weights.map((weight, i) => ({ name: `backend-${i}`, weight, active: 0 }));
}

/** The i-th of many different clients: IPv4 mostly, some IPv6, varied ports. */
function clientContext(i: number): PickContext {
  const clientAddress =
    i % 5 === 4
      ? `2001:db8::${(i * 7919) % 65536}:${i % 97}`
      : `10.${(i >>> 16) & 255}.${(i * 131) & 255}.${(i * 17 + 3) & 255}`;
  return { clientAddress, clientPort: 1024 + ((i * 7877) % 60000) };
}

/**
 * Models connections the way a pool would: a picked backend's `active` goes up, and the
 * oldest connection closes once `maxOpen` are open, so least-connections and P2C see load move.
 */
class ConnectionModel {
  readonly #open: TestBackend[] = [];
  constructor(readonly maxOpen: number) {}
  opened(backend: TestBackend): void {
    backend.active++;
    this.#open.push(backend);
    if (this.#open.length > this.maxOpen) this.#open.shift()!.active--;
  }
}

const WEIGHT_TABLES: readonly (readonly number[])[] = [[1], [1, 1], [3, 1, 2], [1, 1, 1, 1, 1, 1, 1], [0.1, 4, 1, 2.5, 1]];

for (const name of balancerNames) {
  describe(`the ${name} balancer`, () => {
    test('it returns undefined when accept refuses every backend, after asking each backend exactly once', () => {
      for (const weights of WEIGHT_TABLES) {
        for (const hashPort of [false, true]) {
          const backends = makeBackends(weights);
          const balancer = createBalancer(name, backends, { hashPort, random: seededRandom(1) });
          for (let p = 0; p < 40; p++) {
            const asked = new Map<string, number>();
            let calls = 0;
            const result = balancer.pick(clientContext(p), (b) => {
              // Throwing turns a balancer that would loop forever into a failed test.
              if (++calls > backends.length) throw new Error(`accept called ${calls} times for ${backends.length} backends`);
              asked.set(b.name, (asked.get(b.name) ?? 0) + 1);
              return false;
            });
            assert.equal(result, undefined);
            assert.equal(asked.size, backends.length, `every backend is asked (weights ${weights})`);
            for (const [backend, count] of asked) assert.equal(count, 1, `${backend} asked once`);
          }
        }
      }
    });

    test('it never returns a refused backend and returns the first one accept takes', () => {
      const random = seededRandom(7);
      for (const weights of WEIGHT_TABLES) {
        const backends = makeBackends(weights);
        const balancer = createBalancer(name, backends, { random: seededRandom(2) });
        const model = new ConnectionModel(5);
        for (let p = 0; p < 400; p++) {
          const answers = new Map<TestBackend, boolean>();
          const order: TestBackend[] = [];
          const result = balancer.pick(clientContext(p), (b) => {
            if (answers.has(b)) throw new Error(`${b.name} asked twice in one pick`);
            const yes = random() < 0.4;
            answers.set(b, yes);
            order.push(b);
            return yes;
          });
          if (result === undefined) {
            assert.equal(answers.size, backends.length, 'gives up only after asking everyone');
            assert.ok([...answers.values()].every((yes) => !yes));
          } else {
            assert.equal(answers.get(result), true, `${result.name} was accepted`);
            assert.equal(order.at(-1), result, 'nothing is asked after a backend is accepted');
            assert.equal(order.filter((b) => answers.get(b)).length, 1);
            model.opened(result);
          }
        }
      }
    });

    test('it always returns the only backend of a one-backend pool', () => {
      const backends = makeBackends([2]);
      const balancer = createBalancer(name, backends, { random: seededRandom(3) });
      for (let p = 0; p < 50; p++) assert.equal(balancer.pick(clientContext(p), () => true), backends[0]);
    });

    test('it returns undefined for an empty pool without calling accept', () => {
      const balancer = createBalancer(name, [] as TestBackend[], { random: seededRandom(4) });
      let calls = 0;
      const result = balancer.pick(clientContext(1), () => {
        calls++;
        return true;
      });
      assert.equal(result, undefined);
      assert.equal(calls, 0);
    });

    test('it picks every backend eventually across many different clients', () => {
      for (const hashPort of [false, true]) {
        const backends = makeBackends([1, 2, 1, 3, 0.5]);
        const balancer = createBalancer(name, backends, { hashPort, random: seededRandom(5) });
        // Enough open connections that even the lightest backend is least loaded at times.
        const model = new ConnectionModel(30);
        const counts = new Map<string, number>();
        for (let p = 0; p < 2000; p++) {
          const b = balancer.pick(clientContext(p), () => true)!;
          counts.set(b.name, (counts.get(b.name) ?? 0) + 1);
          model.opened(b);
        }
        for (const b of backends) assert.ok((counts.get(b.name) ?? 0) > 0, `${b.name} picked (hashPort ${hashPort})`);
      }
    });

    test('it takes back a backend that was refused on one pick and accepted on the next', () => {
      const backends = makeBackends([1, 1, 1]);
      const flaky = backends[1];
      const balancer = createBalancer(name, backends, { random: seededRandom(6) });
      const model = new ConnectionModel(4);
      let pickedWhenAccepted = 0;
      for (let p = 0; p < 300; p++) {
        // Refused for four picks, accepted for the next four, and so on.
        const refuseFlaky = p % 8 < 4;
        const b = balancer.pick(clientContext(p), (x) => !(refuseFlaky && x === flaky));
        assert.ok(b !== undefined);
        if (refuseFlaky) assert.notEqual(b, flaky, 'not returned while refused');
        else if (b === flaky) pickedWhenAccepted++;
        model.opened(b);
      }
      assert.ok(pickedWhenAccepted > 5, `picked ${pickedWhenAccepted} times once accepted again`);
    });

    test('it keeps choosing among its own copy when the caller changes the array afterwards', () => {
      const backends = makeBackends([1, 1, 1]);
      const balancer = createBalancer(name, backends, { random: seededRandom(8) });
      const originals = new Set(backends);
      backends.length = 0;
      backends.push(...makeBackends([5]));
      for (let p = 0; p < 30; p++) assert.ok(originals.has(balancer.pick(clientContext(p), () => true)!));
    });
  });
}

describe('the balancer registry', () => {
  test('it lists exactly the seven algorithm names of the config', () => {
    assert.deepEqual(
      [...balancerNames].sort(),
      [
        'least-connections',
        'maglev',
        'power-of-two-choices',
        'random',
        'round-robin',
        'source-ip-hash',
        'weighted-round-robin',
      ],
    );
  });

  test('it recognises algorithm names and nothing else', () => {
    for (const name of balancerNames) assert.equal(isBalancerName(name), true);
    for (const other of ['', 'roundrobin', 'toString', '__proto__', 'Maglev', 42, undefined]) {
      assert.equal(isBalancerName(other), false, String(other));
    }
  });

  test('it refuses to build an unknown balancer with a config error code', () => {
    assert.throws(
      () => createBalancer('fastest' as never, makeBackends([1])),
      (err: unknown) => err instanceof L4lbError && err.code === ErrorCodes.CONFIG_INVALID && /fastest/.test(err.message),
    );
  });
});
