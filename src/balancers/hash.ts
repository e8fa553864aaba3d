/**
 * @module balancers/hash — the deterministic 32-bit hash shared by the hash balancers.
 *
 * Hash balancers must place a client on the same backend in every worker process and
 * after every restart, so the hash is fixed code and never a per-process seeded one:
 * FNV-1a over the string's UTF-16 code units (low byte, then high byte when non-zero),
 * finished with murmur3's `fmix32` so that every input bit reaches the low bits a
 * `% size` keeps (plain FNV-1a mixes short inputs poorly there). All math is 32-bit
 * (`Math.imul`), so hashing allocates nothing and costs a few ns per address.
 */

const FNV_OFFSET_BASIS = 0x811c9dc5;
const FNV_PRIME = 0x01000193;
/** Odd constant (2^32 / golden ratio) used to derive a fresh hash from a previous one. */
const GOLDEN_GAMMA = 0x9e3779b9;
/** Node reports IPv4 clients of a dual-stack listener as `::ffff:a.b.c.d`. */
const IPV4_MAPPED_PREFIX_LENGTH = 7;

/** murmur3's 32-bit finalizer: a bijection with full avalanche. Returns an unsigned 32-bit int. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** Continues an FNV-1a state over `s[start..]`; returns the raw (unfinished) state. */
function fnv1aUpdate(h: number, s: string, start: number): number {
  for (let i = start; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h = Math.imul(h ^ (c & 0xff), FNV_PRIME);
    if (c > 0xff) h = Math.imul(h ^ (c >>> 8), FNV_PRIME);
  }
  return h;
}

/** Starting state for a given seed; seeds pick independent-looking hash functions. */
function initialState(seed: number): number {
  return seed === 0 ? FNV_OFFSET_BASIS : (FNV_OFFSET_BASIS ^ fmix32(seed)) | 0;
}

/** Hashes a string to an unsigned 32-bit integer; the same input and seed give the same result in every process. */
export function hashString(s: string, seed = 0): number {
  return fmix32(fnv1aUpdate(initialState(seed), s, 0));
}

/**
 * Hashes a client's address (and its port when `withPort`) to an unsigned 32-bit integer.
 * An IPv4-mapped IPv6 address hashes like the plain IPv4 address, so a client keeps its
 * backend whether it reached an IPv4 or a dual-stack listener.
 */
export function hashClient(address: string, port: number, withPort: boolean, seed = 0): number {
  let start = 0;
  if (
    address.length > IPV4_MAPPED_PREFIX_LENGTH &&
    (address.startsWith('::ffff:') || address.startsWith('::FFFF:')) &&
    address.indexOf('.', IPV4_MAPPED_PREFIX_LENGTH) > 0
  ) {
    start = IPV4_MAPPED_PREFIX_LENGTH;
  }
  let h = fnv1aUpdate(initialState(seed), address, start);
  if (withPort) {
    h = Math.imul(h ^ (port & 0xff), FNV_PRIME);
    h = Math.imul(h ^ ((port >>> 8) & 0xff), FNV_PRIME);
  }
  return fmix32(h);
}

/** Derives the next hash in a deterministic sequence from `h` (for "try another slot" walks). */
export function rehash(h: number): number {
  return fmix32((h + GOLDEN_GAMMA) | 0);
}

/**
 * Copies `backends` sorted by name (UTF-16 code-unit order, never locale-dependent; equal
 * names keep their order), so hash balancers built from the same set in any order agree.
 */
export function orderByName<B extends { readonly name: string }>(backends: readonly B[]): B[] {
  return backends
    .map((backend, index) => ({ backend, index }))
    .sort((x, y) => (x.backend.name < y.backend.name ? -1 : x.backend.name > y.backend.name ? 1 : x.index - y.index))
    .map((entry) => entry.backend);
}
