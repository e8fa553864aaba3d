/**
 * @module test/fuzz/mutate — a seeded random source and the byte-level mutators of the fuzzer:
 * bit flips, byte overwrites, truncation, splicing with another corpus entry, corruption of
 * length fields (binary) and numbers (text), insertion of random bytes and dictionary tokens,
 * deletion and repetition of ranges. Several are stacked per input, as AFL's "havoc" stage does.
 *
 * Everything is driven by {@link Rng}, so a seed and an input index name one input exactly.
 */

/** mulberry32: a small, fast 32-bit generator; plenty for choosing mutations. */
export class Rng {
  #s: number;

  constructor(seed: number) {
    this.#s = seed >>> 0;
  }

  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.#s = (this.#s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return n <= 1 ? 0 : this.u32() % n;
  }

  /** True with probability 1/n. */
  oneIn(n: number): boolean {
    return this.below(n) === 0;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.below(xs.length)];
  }
}

/** Mixes a seed with a label and a number into a new 32-bit seed (FNV-1a over the parts). */
export function deriveSeed(seed: number, label: string, n = 0): number {
  let h = 0x811c9dc5;
  const mix = (byte: number) => {
    h ^= byte & 0xff;
    h = Math.imul(h, 0x01000193) >>> 0;
  };
  for (const x of [seed >>> 0, n >>> 0]) for (let i = 0; i < 4; i++) mix(x >>> (8 * i));
  for (let i = 0; i < label.length; i++) mix(label.charCodeAt(i));
  return h >>> 0;
}

/** How a target's inputs look to the mutators. */
export interface MutationProfile {
  /** Text targets get number corruption instead of binary length-field corruption. */
  text: boolean;
  /** Tokens worth inserting (keywords, delimiters, magic bytes). */
  dictionary: readonly Buffer[];
  /** Inputs are cut to this many bytes. */
  maxLength: number;
}

const INTERESTING_8 = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x0a, 0x0d, 0x20, 0x25, 0x2e, 0x2f, 0x3a, 0x5b, 0x7b];
const INTERESTING_16 = [0x0000, 0x0001, 0x00ff, 0x0100, 0x3fff, 0x4000, 0x4001, 0x7fff, 0x8000, 0xfffe, 0xffff];
const INTERESTING_32 = [0, 1, 0x7fffffff, 0x80000000, 0xffffffff, 0x01000000, 0x00ffffff];
const INTERESTING_NUMBERS = [
  '0', '-1', '1', '65535', '65536', '-0', '1e309', '-1e309', '0.5', '1e-7', '2147483647', '2147483648', '4294967296',
  '9007199254740993', '99999999999999999999', 'NaN', 'Infinity', '0x10', '010', '1_000', '.5', '5.',
];

/** One repetition in this many fills the input to its size cap. */
const FILL_ONE_IN = 64;

/** Applies 1 to 4 stacked mutations to `input`; `others` are splice and insertion partners. */
export function mutate(rng: Rng, input: Buffer, others: readonly Buffer[], profile: MutationProfile): Buffer {
  let b = input;
  const rounds = 1 + rng.below(4);
  for (let i = 0; i < rounds; i++) b = mutateOnce(rng, b, others, profile);
  return b.length > profile.maxLength ? b.subarray(0, profile.maxLength) : b;
}

function mutateOnce(rng: Rng, b: Buffer, others: readonly Buffer[], p: MutationProfile): Buffer {
  switch (rng.below(11)) {
    case 0:
      return flipBits(rng, b);
    case 1:
      return setByte(rng, b);
    case 2:
      return truncate(rng, b);
    case 3:
      return splice(rng, b, others.length > 0 ? rng.pick(others) : b);
    case 4:
    case 5:
      return p.text ? corruptNumber(rng, b) : corruptLength(rng, b);
    case 6:
      return insert(rng, b, randomBytes(rng, 1 + rng.below(8)));
    case 7:
      return p.dictionary.length > 0 ? insert(rng, b, rng.pick(p.dictionary)) : setByte(rng, b);
    case 8:
      return deleteRange(rng, b);
    case 9:
      return repeatRange(rng, b, p.maxLength);
    default:
      return others.length > 0 ? insert(rng, b, chunkOf(rng, rng.pick(others))) : flipBits(rng, b);
  }
}

function randomBytes(rng: Rng, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) out[i] = rng.below(256);
  return out;
}

function flipBits(rng: Rng, b: Buffer): Buffer {
  if (b.length === 0) return randomBytes(rng, 1);
  const out = Buffer.from(b);
  const n = 1 + rng.below(3);
  for (let i = 0; i < n; i++) out[rng.below(out.length)] ^= 1 << rng.below(8);
  return out;
}

function setByte(rng: Rng, b: Buffer): Buffer {
  if (b.length === 0) return Buffer.from([rng.pick(INTERESTING_8)]);
  const out = Buffer.from(b);
  out[rng.below(out.length)] = rng.oneIn(2) ? rng.pick(INTERESTING_8) : rng.below(256);
  return out;
}

function truncate(rng: Rng, b: Buffer): Buffer {
  return b.subarray(0, rng.below(b.length + 1));
}

/** The head of `a` up to a random point, then the tail of `c` from a random point. */
function splice(rng: Rng, a: Buffer, c: Buffer): Buffer {
  return Buffer.concat([a.subarray(0, rng.below(a.length + 1)), c.subarray(rng.below(c.length + 1))]);
}

/** Writes an interesting (or off-by-one) value as u8/u16/u24/u32 big-endian at a random offset. */
function corruptLength(rng: Rng, b: Buffer): Buffer {
  const width = 1 + rng.below(4);
  if (b.length < width) return setByte(rng, b);
  const out = Buffer.from(b);
  const at = rng.below(out.length - width + 1);
  const old = out.readUIntBE(at, width);
  const max = 2 ** (8 * width) - 1;
  let v: number;
  switch (rng.below(4)) {
    case 0:
      v = old + 1;
      break;
    case 1:
      v = old - 1;
      break;
    case 2:
      v = rng.pick(width === 1 ? INTERESTING_8 : width === 4 ? INTERESTING_32 : INTERESTING_16);
      break;
    default:
      v = rng.oneIn(2) ? b.length - at : max;
  }
  out.writeUIntBE(((v % (max + 1)) + max + 1) % (max + 1), at, width);
  return out;
}

/** Replaces a run of digits (or, without one, a random point) with an interesting number. */
function corruptNumber(rng: Rng, b: Buffer): Buffer {
  const digits: number[] = [];
  for (let i = 0; i < b.length; i++) if (b[i] >= 0x30 && b[i] <= 0x39 && (i === 0 || b[i - 1] < 0x30 || b[i - 1] > 0x39)) digits.push(i);
  const num = Buffer.from(rng.pick(INTERESTING_NUMBERS), 'latin1');
  if (digits.length === 0) return insert(rng, b, num);
  const start = rng.pick(digits);
  let end = start;
  while (end < b.length && b[end] >= 0x30 && b[end] <= 0x39) end++;
  return Buffer.concat([b.subarray(0, start), num, b.subarray(end)]);
}

function insert(rng: Rng, b: Buffer, what: Buffer): Buffer {
  const at = rng.below(b.length + 1);
  return Buffer.concat([b.subarray(0, at), what, b.subarray(at)]);
}

function deleteRange(rng: Rng, b: Buffer): Buffer {
  if (b.length === 0) return b;
  const at = rng.below(b.length);
  const n = 1 + rng.below(Math.min(16, b.length - at));
  return Buffer.concat([b.subarray(0, at), b.subarray(at + n)]);
}

/** Repeats a short range many times: deep nesting, long runs, repeated fields. */
function repeatRange(rng: Rng, b: Buffer, maxLength: number): Buffer {
  if (b.length === 0) return b;
  const at = rng.below(b.length);
  const n = 1 + rng.below(Math.min(8, b.length - at));
  const chunk = b.subarray(at, at + n);
  // Mostly a few copies; now and then enough to fill the input (a 10,000-deep `[`): rarely,
  // since an input at the size cap costs a text parser a hundred small ones.
  const times = rng.oneIn(FILL_ONE_IN) ? Math.max(1, Math.floor((maxLength - b.length) / n)) : 2 + rng.below(16);
  return Buffer.concat([b.subarray(0, at + n), ...Array<Buffer>(times).fill(chunk), b.subarray(at + n)]);
}

function chunkOf(rng: Rng, b: Buffer): Buffer {
  if (b.length === 0) return b;
  const at = rng.below(b.length);
  return b.subarray(at, at + 1 + rng.below(Math.min(32, b.length - at)));
}
