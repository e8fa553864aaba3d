/**
 * @module balancers/maglev — consistent hashing with a Maglev lookup table.
 *
 * From Google's Maglev paper (Eisenbud et al., NSDI 2016, §3.4): every backend derives a
 * permutation of the table's M slots from two hashes of its *name* — `offset = h1 % M`,
 * `skip = h2 % (M - 1) + 1`, slot j of the permutation is `(offset + j·skip) % M` (a
 * full permutation because M is prime) — and the backends take turns claiming their next
 * preferred free slot until the table is full. A client is then `table[hash(key) % M]`:
 * O(1), and when one of N backends leaves, about 1/N of the keys move (mostly the ones it
 * had) instead of nearly all of them as with `hash % N`.
 *
 * Weights are honoured by turns, as in Envoy's weighted Maglev: the heaviest backend takes
 * a turn every round, one of relative weight r takes its k-th turn in round ⌈k / r⌉, so
 * table shares follow the weights; every backend takes a turn in round 0, so even the
 * lightest owns a slot. Weights are read once, when the table is built.
 *
 * M is {@link MAGLEV_DEFAULT_TABLE_SIZE} (prime), or the first prime ≥ 100·N for larger
 * pools, keeping every backend's share within about 1% of its ideal. Backends are ordered
 * by name first and the hash (hash.ts) is fixed code, so every process builds the same
 * table. A refused backend's keys walk forward through the table to the next backend not
 * yet asked, which spreads them over the others roughly by table share.
 */
import type { Balancer, BalancerFactory, BalancerOptions, Candidate, PickContext } from './types.js';
import { hashClient, hashString, orderByName } from './hash.js';
import { VisitMarks } from './visit-marks.js';

/** Table size for pools of up to 655 backends: a prime (Maglev needs one), as in Envoy. */
export const MAGLEV_DEFAULT_TABLE_SIZE = 65537;
/** Slots per backend at least; the table grows (to the next prime) beyond 655 backends. */
export const MAGLEV_MIN_SLOTS_PER_BACKEND = 100;

const OFFSET_SEED = 0x6d61_676c;
const SKIP_SEED = 0x736b_6970;
const KEY_SEED = 0x6b65_7921;
/** Marks a free slot while the table is filled. */
const EMPTY = 0xffff_ffff;

function isPrime(n: number): boolean {
  if (n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** The table size used for `backendCount` backends: a prime ≥ max(65537, 100 × backendCount). */
export function maglevTableSize(backendCount: number): number {
  let size = Math.max(MAGLEV_DEFAULT_TABLE_SIZE, backendCount * MAGLEV_MIN_SLOTS_PER_BACKEND);
  while (!isPrime(size)) size++;
  return size;
}

/**
 * Builds a Maglev lookup table of `size` slots (must be prime and ≥ the number of
 * backends) holding indexes into `names`. Same inputs, same table, in any process.
 */
export function buildMaglevTable(
  names: readonly string[],
  weights: readonly number[],
  size: number,
): Uint16Array | Uint32Array {
  const n = names.length;
  if (!isPrime(size) || size < n) throw new RangeError(`maglev table size ${size} must be a prime >= ${n}`);
  const table = new Uint32Array(size).fill(EMPTY);
  if (n === 0) return table;

  const position = new Float64Array(n);
  const skip = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    position[i] = hashString(names[i], OFFSET_SEED) % size;
    skip[i] = (hashString(names[i], SKIP_SEED) % (size - 1)) + 1;
  }
  let maxWeight = 0;
  for (const w of weights) if (w > maxWeight) maxWeight = w;
  const valid = Number.isFinite(maxWeight) && maxWeight > 0 && weights.every((w) => w > 0);
  const relative = new Float64Array(n);
  for (let i = 0; i < n; i++) relative[i] = valid ? weights[i] / maxWeight : 1;
  const turns = new Float64Array(n);

  let filled = 0;
  // The heaviest backend (relative weight 1) claims a slot every round, so this ends.
  for (let round = 0; ; round++) {
    for (let i = 0; i < n; i++) {
      if (relative[i] * round < turns[i]) continue;
      turns[i]++;
      let slot = position[i];
      while (table[slot] !== EMPTY) {
        slot += skip[i];
        if (slot >= size) slot -= size;
      }
      table[slot] = i;
      slot += skip[i];
      position[i] = slot >= size ? slot - size : slot;
      if (++filled === size) return n <= 0xffff ? Uint16Array.from(table) : table;
    }
  }
}

/** Maglev consistent hashing over a fixed backend set. */
export class MaglevBalancer<B extends Candidate> implements Balancer<B> {
  readonly #backends: readonly B[];
  readonly #hashPort: boolean;
  readonly #table: Uint16Array | Uint32Array;
  readonly #asked: VisitMarks;

  constructor(backends: readonly B[], options: BalancerOptions = {}) {
    this.#backends = orderByName(backends);
    this.#hashPort = options.hashPort ?? false;
    const n = this.#backends.length;
    this.#table =
      n === 0
        ? new Uint16Array(0)
        : buildMaglevTable(
            this.#backends.map((b) => b.name),
            this.#backends.map((b) => b.configuredWeight ?? b.weight),
            maglevTableSize(n),
          );
    this.#asked = new VisitMarks(n);
  }

  pick(ctx: PickContext, accept: (backend: B) => boolean): B | undefined {
    const backends = this.#backends;
    const n = backends.length;
    if (n === 0) return undefined;
    const table = this.#table;
    const size = table.length;
    let slot = hashClient(ctx.clientAddress, ctx.clientPort, this.#hashPort, KEY_SEED) % size;
    let index = table[slot];
    if (accept(backends[index])) return backends[index];
    if (n === 1) return undefined;

    const asked = this.#asked;
    asked.reset();
    asked.add(index);
    let askedCount = 1;
    // Every backend owns a slot (all take a turn in round 0), so the walk reaches them all.
    for (let steps = 1; steps < size && askedCount < n; steps++) {
      slot = slot + 1 === size ? 0 : slot + 1;
      index = table[slot];
      if (asked.has(index)) continue;
      if (accept(backends[index])) return backends[index];
      asked.add(index);
      askedCount++;
    }
    return undefined;
  }
}

/** Builds a {@link MaglevBalancer}. */
export const maglev: BalancerFactory = (backends, options) => new MaglevBalancer(backends, options);
