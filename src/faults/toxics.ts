/**
 * @module faults/toxics — the faults ("toxics", in Toxiproxy's words) l4lb injects, with
 * Toxiproxy's type names, attribute names, units and defaults, and the one validator that the
 * fault API and the config file share.
 *
 * A toxic acts on one direction of a connection (`upstream`: client → backend, `downstream`:
 * backend → client) of a share of connections (`toxicity`, 0–1). Attributes are whole numbers
 * as in Toxiproxy (Go `int64`); unlike Toxiproxy, negative values, values past the bounds below
 * and unknown attribute names are refused (docs/faults.md, "What differs").
 */

/** The toxic types, in Toxiproxy's order of its README. */
export const TOXIC_TYPES = Object.freeze(['latency', 'bandwidth', 'slow_close', 'timeout', 'reset_peer', 'slicer', 'limit_data'] as const);
export type ToxicType = (typeof TOXIC_TYPES)[number];

/** `upstream`: client → backend; `downstream`: backend → client. */
export type ToxicStream = 'upstream' | 'downstream';

/** One toxic, in Toxiproxy's JSON shape. */
export interface ToxicSpec {
  name: string;
  type: ToxicType;
  stream: ToxicStream;
  /** Share of connections it applies to, 0–1. Default 1. */
  toxicity: number;
  /** Every attribute of its type, defaults (0) filled in. */
  attributes: Record<string, number>;
}

/** Toxiproxy's default: a toxic applies to every connection. */
export const DEFAULT_TOXICITY = 1;
/** Toxiproxy's default direction. */
export const DEFAULT_STREAM: ToxicStream = 'downstream';

/**
 * Longest duration, ms: what setTimeout() can wait (~24.8 days), as config/schema.ts's
 * MAX_DURATION_MS (not imported: the schema imports this module).
 */
const MAX_DURATION_MS = 2_147_483_647;
/** Largest byte count an attribute may hold (2^53 − 1: exact in a JavaScript number). */
const MAX_BYTES = Number.MAX_SAFE_INTEGER;
/** Largest `rate`, KB/s: 10^9 KB/s (8 Pbit/s) is already "unlimited". */
const MAX_RATE_KBPS = 1_000_000_000;
/** Largest slicer piece, bytes: a read is at most 64 KiB anyway. */
const MAX_SLICE_BYTES = 1024 * 1024;
/** Largest slicer delay, µs (24 days, as every other duration). */
const MAX_SLICE_DELAY_US = MAX_DURATION_MS * 1000;

interface AttributeRule {
  max: number;
  unit: string;
}

/** Each type's attributes: name → bound and unit (all default to 0, as in Toxiproxy). */
export const TOXIC_ATTRIBUTES: Readonly<Record<ToxicType, Readonly<Record<string, AttributeRule>>>> = Object.freeze({
  latency: { latency: { max: MAX_DURATION_MS, unit: 'ms' }, jitter: { max: MAX_DURATION_MS, unit: 'ms' } },
  bandwidth: { rate: { max: MAX_RATE_KBPS, unit: 'KB/s' } },
  slow_close: { delay: { max: MAX_DURATION_MS, unit: 'ms' } },
  timeout: { timeout: { max: MAX_DURATION_MS, unit: 'ms' } },
  reset_peer: { timeout: { max: MAX_DURATION_MS, unit: 'ms' } },
  slicer: {
    average_size: { max: MAX_SLICE_BYTES, unit: 'bytes' },
    size_variation: { max: MAX_SLICE_BYTES, unit: 'bytes' },
    delay: { max: MAX_SLICE_DELAY_US, unit: 'µs' },
  },
  limit_data: { bytes: { max: MAX_BYTES, unit: 'bytes' } },
});

/** Longest toxic name. */
export const MAX_TOXIC_NAME_LENGTH = 200;

/** A toxic that cannot be accepted: `field` names what is wrong (`type`, `attributes.rate`…). */
export class ToxicError extends Error {
  readonly field: string;
  /** Toxiproxy's kind of error: an unknown type and a bad stream have their own messages. */
  readonly kind: 'type' | 'stream' | 'body';
  constructor(field: string, message: string, kind: ToxicError['kind'] = 'body') {
    super(message);
    this.name = 'ToxicError';
    this.field = field;
    this.kind = kind;
  }
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'string') return `a string (${JSON.stringify(v.length > 40 ? `${v.slice(0, 37)}...` : v)})`;
  if (typeof v === 'number') return `${v}`;
  return typeof v;
}

/** Why `s` cannot name a toxic (it is one URL path segment of the API), or undefined. */
export function toxicNameProblem(s: string): string | undefined {
  if (s.length === 0) return 'must not be empty';
  if (s.length > MAX_TOXIC_NAME_LENGTH) return `is at most ${MAX_TOXIC_NAME_LENGTH} characters`;
  if (s === '.' || s === '..') return 'cannot be "." or ".." (URL paths treat them as directory steps)';
  if (/[\s/\\%?#\p{Cc}\p{Cf}]/u.test(s)) return 'may not contain blanks, "/", "\\", "%", "?", "#" or control characters (it is a URL path segment)';
  return undefined;
}

/** Checks one attribute value: a whole number from 0 to its bound. */
function attributeValue(type: ToxicType, key: string, v: unknown): number {
  const rule = TOXIC_ATTRIBUTES[type][key];
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new ToxicError(`attributes.${key}`, `attributes.${key} must be a number (${rule.unit}), got ${describe(v)}`);
  }
  if (!Number.isInteger(v)) throw new ToxicError(`attributes.${key}`, `attributes.${key} must be a whole number of ${rule.unit}, got ${v}`);
  if (v < 0) throw new ToxicError(`attributes.${key}`, `attributes.${key} must not be negative, got ${v}`);
  if (v > rule.max) throw new ToxicError(`attributes.${key}`, `attributes.${key} is too large: at most ${rule.max} ${rule.unit}, got ${v}`);
  return v;
}

/** Checks an `attributes` object for `type`; `base` holds the values it does not name. */
export function parseAttributes(type: ToxicType, raw: unknown, base?: Record<string, number>): Record<string, number> {
  const rules = TOXIC_ATTRIBUTES[type];
  const out: Record<string, number> = {};
  for (const key of Object.keys(rules)) out[key] = base?.[key] ?? 0;
  if (raw === undefined || raw === null) return out;
  if (!isRecord(raw)) throw new ToxicError('attributes', `attributes must be an object, got ${describe(raw)}`);
  for (const [key, v] of Object.entries(raw)) {
    if (!(key in rules)) {
      throw new ToxicError(`attributes.${key}`, `unknown attribute "${key}" for a ${type} toxic (it has: ${Object.keys(rules).join(', ')})`);
    }
    out[key] = attributeValue(type, key, v);
  }
  if (type === 'slicer' && out.average_size > 0 && out.size_variation >= out.average_size) {
    throw new ToxicError('attributes.size_variation', `attributes.size_variation (${out.size_variation}) must be smaller than average_size (${out.average_size})`);
  }
  return out;
}

/** Checks `toxicity`: a number from 0 to 1. */
export function parseToxicity(v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < 0 || v > 1) {
    throw new ToxicError('toxicity', `toxicity must be a number from 0 to 1, got ${describe(v)}`);
  }
  return v;
}

const TOXIC_KEYS = new Set(['name', 'type', 'stream', 'toxicity', 'attributes']);

/**
 * A toxic from its JSON (the API's POST body, or one entry of a listener's `faults:`), with
 * Toxiproxy's defaults: stream downstream, toxicity 1, name `TYPE_STREAM`. Throws
 * {@link ToxicError}.
 */
export function parseToxic(raw: unknown): ToxicSpec {
  if (!isRecord(raw)) throw new ToxicError('', `a toxic is an object with type, stream, toxicity and attributes, got ${describe(raw)}`);
  for (const key of Object.keys(raw)) {
    if (!TOXIC_KEYS.has(key)) throw new ToxicError(key, `unknown field "${key}" (a toxic has: ${[...TOXIC_KEYS].join(', ')})`);
  }
  const stream = raw.stream ?? DEFAULT_STREAM;
  if (stream !== 'upstream' && stream !== 'downstream') {
    throw new ToxicError('stream', `stream was invalid, can be either upstream or downstream (got ${describe(stream)})`, 'stream');
  }
  const type = raw.type;
  if (typeof type !== 'string' || !(TOXIC_TYPES as readonly string[]).includes(type)) {
    const what = type === undefined ? 'missing' : typeof type === 'string' ? JSON.stringify(type) : describe(type);
    throw new ToxicError('type', `invalid toxic type ${what}: one of ${TOXIC_TYPES.join(', ')}`, 'type');
  }
  // The Go client sends "name": "" for "no name" (Toxiproxy then makes one).
  const name = raw.name === undefined || raw.name === null || raw.name === '' ? `${type}_${stream}` : raw.name;
  if (typeof name !== 'string') throw new ToxicError('name', `name must be a string, got ${describe(name)}`);
  const problem = toxicNameProblem(name);
  if (problem !== undefined) throw new ToxicError('name', `name ${JSON.stringify(name.slice(0, 60))} ${problem}`);
  return {
    name,
    type: type as ToxicType,
    stream,
    toxicity: raw.toxicity === undefined ? DEFAULT_TOXICITY : parseToxicity(raw.toxicity),
    attributes: parseAttributes(type as ToxicType, raw.attributes),
  };
}

/**
 * An update of `current` (Toxiproxy's POST /proxies/P/toxics/T): `attributes` merge into the
 * current ones, `toxicity` replaces it; name, type and stream cannot change. Throws
 * {@link ToxicError}; `current` is not touched.
 */
export function parseToxicUpdate(current: ToxicSpec, raw: unknown): { toxicity: number; attributes: Record<string, number> } {
  if (!isRecord(raw)) throw new ToxicError('', `expected an object with attributes and/or toxicity, got ${describe(raw)}`);
  for (const key of Object.keys(raw)) {
    if (!TOXIC_KEYS.has(key)) throw new ToxicError(key, `unknown field "${key}" (a toxic has: ${[...TOXIC_KEYS].join(', ')})`);
  }
  for (const key of ['name', 'type', 'stream'] as const) {
    if (raw[key] !== undefined && raw[key] !== current[key]) {
      throw new ToxicError(key, `${key} cannot change (${JSON.stringify(current[key])}): remove the toxic and add a new one`);
    }
  }
  return {
    toxicity: raw.toxicity === undefined ? current.toxicity : parseToxicity(raw.toxicity),
    attributes: parseAttributes(current.type, raw.attributes, current.attributes),
  };
}
