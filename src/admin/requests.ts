/**
 * @module admin/requests — turn request bodies into {@link AdminAction}s, strictly: a
 * wrong type, a missing or unknown field is a 400 that says which and why.
 */
import { parseHostPort } from '../util/address.js';
import { nameProblem, outOfRange } from '../config/schema.js';
import type { AdminState } from '../config/types.js';
import { AdminError } from './errors.js';
import type { AdminAction, NewBackend, StatusSnapshot } from './status.js';

/** Largest weight the API accepts (weights are ratios; this only catches typos). */
export const MAX_WEIGHT = 1_000_000;


const STATES: readonly AdminState[] = ['enabled', 'draining', 'disabled'];

function bad(reason: string, message: string): AdminError {
  return new AdminError(400, reason, message);
}

function objectBody(body: unknown, what: string): Record<string, unknown> {
  if (body === undefined) return {};
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw bad('bad_body', `${what}: the body must be a JSON object`);
  }
  return body as Record<string, unknown>;
}

function onlyKeys(body: Record<string, unknown>, allowed: readonly string[], what: string): void {
  for (const k of Object.keys(body)) {
    if (!allowed.includes(k)) {
      const hint = allowed.length > 0 ? ` (allowed: ${allowed.join(', ')})` : ' (it takes no fields)';
      throw bad('unknown_field', `${what}: unknown field "${k}"${hint}`);
    }
  }
}

/** A body that must be empty or `{}` (drain, enable, disable, remove). */
export function expectNoFields(body: unknown, what: string): void {
  onlyKeys(objectBody(body, what), [], what);
}

/** Checks a weight value. */
export function parseWeight(v: unknown, what: string): number {
  if (typeof v === 'number' && !Number.isFinite(v)) throw bad('bad_weight', `${what}: "weight": ${outOfRange(v)}`);
  if (typeof v !== 'number') throw bad('bad_weight', `${what}: "weight" must be a number, got ${JSON.stringify(v) ?? 'nothing'}`);
  if (v <= 0 || v > MAX_WEIGHT) throw bad('bad_weight', `${what}: "weight" must be greater than 0 and at most ${MAX_WEIGHT}, got ${v}`);
  return v;
}

/** `{"weight": N}`. */
export function parseWeightBody(body: unknown): number {
  const b = objectBody(body, 'weight');
  onlyKeys(b, ['weight'], 'weight');
  if (!('weight' in b)) throw bad('missing_field', 'weight: the body needs a "weight" field, e.g. {"weight": 3}');
  return parseWeight(b.weight, 'weight');
}

/** `{"address": "HOST:PORT", "name"?, "weight"?, "backup"?, "state"?, "maxConnections"?, "check"?}`. */
export function parseNewBackend(body: unknown): NewBackend {
  const what = 'add backend';
  if (body === undefined) throw bad('missing_body', `${what}: send a JSON body such as {"address": "127.0.0.1:9003"}`);
  const b = objectBody(body, what);
  onlyKeys(b, ['address', 'name', 'weight', 'backup', 'state', 'maxConnections', 'check'], what);
  if (typeof b.address !== 'string') throw bad('missing_field', `${what}: "address" ("HOST:PORT") is required and must be a string`);
  const address = b.address.trim();
  const a = parseHostPort(address);
  if ('error' in a) throw bad('bad_address', `${what}: "address": ${a.error}`);
  let name = address;
  if (b.name !== undefined) {
    if (typeof b.name !== 'string') throw bad('bad_name', `${what}: "name" must be a string`);
    const problem = nameProblem(b.name);
    if (problem !== undefined) throw bad('bad_name', `${what}: "name": ${problem}`);
    name = b.name;
  }
  const weight = b.weight === undefined ? 1 : parseWeight(b.weight, what);
  if (b.backup !== undefined && typeof b.backup !== 'boolean') throw bad('bad_backup', `${what}: "backup" must be true or false`);
  if (b.check !== undefined && typeof b.check !== 'boolean') throw bad('bad_check', `${what}: "check" must be true or false`);
  if (b.state !== undefined && !STATES.includes(b.state as AdminState)) {
    throw bad('bad_state', `${what}: "state" must be one of ${STATES.join(', ')}`);
  }
  const max = b.maxConnections;
  if (max !== undefined && (typeof max !== 'number' || !Number.isInteger(max) || max < 0)) {
    throw bad('bad_max_connections', `${what}: "maxConnections" must be a whole number ≥ 0`);
  }
  return {
    address,
    name,
    host: a.host,
    port: a.port,
    weight,
    backup: (b.backup as boolean | undefined) ?? false,
    state: (b.state as AdminState | undefined) ?? 'enabled',
    maxConnections: (max as number | undefined) ?? 0,
    check: (b.check as boolean | undefined) ?? true,
  };
}

/**
 * Checks that the action's pool and backend exist in `s` (404) and that an added name is
 * free (409), before anything is prepared or applied. The source checks again when it
 * applies the action; this early check keeps the answers the same when persistence is on.
 */
export function checkAction(s: StatusSnapshot, action: AdminAction): void {
  const pool = s.pools.find((p) => p.name === action.pool);
  if (!pool) throw new AdminError(404, 'unknown_pool', `no pool named "${action.pool}"`);
  if (action.kind === 'add-backend') {
    if (pool.backends.some((b) => b.name === action.backend.name)) {
      throw new AdminError(409, 'duplicate_backend', `pool "${pool.name}" already has a backend named "${action.backend.name}"`);
    }
    return;
  }
  if (!pool.backends.some((b) => b.name === action.backend)) {
    throw new AdminError(404, 'unknown_backend', `no backend named "${action.backend}" in pool "${pool.name}"`);
  }
}
