/**
 * @module admin/persist — write an admin change back to the config file (`admin.persist`).
 *
 * The file is edited, not regenerated: YAML goes through the `yaml` package's Document
 * API, so comments, key order, anchors and `${NAME}` references elsewhere survive; JSON is
 * re-serialised (it has no comments to keep). The pool and backend are located through
 * the *resolved* config (so names written with `${NAME}` still match), then edited at the
 * same index in the raw document. The result must load again and show the change, or
 * nothing is written. The write is atomic (temporary file + rename), so a reload never
 * reads half a file.
 */
import { randomBytes } from 'node:crypto';
import { readFile, realpath, rename, stat, unlink, writeFile } from 'node:fs/promises';
import { dirname, extname, join, basename } from 'node:path';
import { isAlias, isMap, isScalar, isSeq, parseDocument, type Document, type YAMLMap, type YAMLSeq } from 'yaml';
import { parseConfigText } from '../config/load.js';
import { Defaults, type BackendConfig, type Config } from '../config/types.js';
import { AdminError } from './errors.js';
import type { AdminAction } from './status.js';

const BOM = '\uFEFF';

function cannot(message: string, cause?: unknown): AdminError {
  return new AdminError(409, 'cannot_persist', `cannot persist to the config file: ${message}`, 'internal', { cause });
}

/** Where the action's pool and backend sit in the file, by index. */
interface Located {
  config: Config;
  pool: number;
  backend: number;
}

function locate(config: Config, action: AdminAction, file: string): Located {
  const pool = config.pools.findIndex((p) => p.name === action.pool);
  if (pool < 0) throw cannot(`${file} has no pool named "${action.pool}"`);
  if (action.kind === 'add-backend') return { config, pool, backend: -1 };
  const backend = config.pools[pool].backends.findIndex((b) => b.name === action.backend);
  if (backend < 0) throw cannot(`pool "${action.pool}" in ${file} has no backend named "${action.backend}"`);
  return { config, pool, backend };
}

/** The entry for a new backend: only what differs from the loader's defaults. */
function newEntry(a: Extract<AdminAction, { kind: 'add-backend' }>['backend']): Record<string, unknown> {
  const e: Record<string, unknown> = { address: a.address };
  if (a.name !== a.address) e.name = a.name;
  if (a.weight !== Defaults.weight) e.weight = a.weight;
  if (a.backup !== Defaults.backup) e.backup = a.backup;
  if (a.state !== Defaults.backendState) e.state = a.state;
  if (a.maxConnections !== Defaults.maxConnections) e.maxConnections = a.maxConnections;
  if (a.check !== Defaults.backendCheck) e.check = a.check;
  return e;
}

/** The key and value an action sets on an existing entry; `undefined` value = the default. */
function fieldOf(action: AdminAction): { key: 'state' | 'weight'; value: unknown; isDefault: boolean } | undefined {
  if (action.kind === 'set-state') return { key: 'state', value: action.state, isDefault: action.state === Defaults.backendState };
  if (action.kind === 'set-weight') return { key: 'weight', value: action.weight, isDefault: action.weight === Defaults.weight };
  return undefined;
}

function editJson(text: string, at: Located, action: AdminAction): string {
  const raw = JSON.parse(text) as { pools: Array<{ backends: unknown[] }> };
  const list = raw.pools[at.pool].backends;
  const field = fieldOf(action);
  if (action.kind === 'add-backend') list.push(newEntry(action.backend));
  else if (action.kind === 'remove-backend') list.splice(at.backend, 1);
  else if (field) {
    let entry = list[at.backend];
    if (typeof entry === 'string') entry = list[at.backend] = { address: entry };
    const rec = entry as Record<string, unknown>;
    if (field.isDefault) delete rec[field.key];
    else rec[field.key] = field.value;
  }
  return `${JSON.stringify(raw, null, 2)}\n`;
}

function editYaml(text: string, at: Located, action: AdminAction, file: string): string {
  const doc: Document = parseDocument(text, { logLevel: 'error' });
  if (doc.errors.length > 0) throw cannot(`${file} no longer parses: ${doc.errors[0].message.split('\n')[0]}`);
  const pools = doc.get('pools', true);
  if (!isSeq(pools)) throw cannot(`"pools" in ${file} is not a plain list`);
  const poolNode = pools.items[at.pool];
  if (!isMap(poolNode)) throw cannot(`pools[${at.pool}] in ${file} is not a plain mapping (an alias?)`);
  const backends = (poolNode as YAMLMap).get('backends', true);
  if (!isSeq(backends)) {
    throw cannot(`pools[${at.pool}].backends in ${file} is not written out as a list (an alias or a merge?)`);
  }
  const seq = backends as YAMLSeq;
  const field = fieldOf(action);
  if (action.kind === 'add-backend') {
    const entry = newEntry(action.backend);
    const allScalars = seq.items.every((i) => isScalar(i));
    seq.add(doc.createNode(Object.keys(entry).length === 1 && allScalars ? entry.address : entry));
  } else if (action.kind === 'remove-backend') {
    seq.delete(at.backend);
  } else if (field) {
    const item = seq.items[at.backend];
    if (isAlias(item)) throw cannot(`pools[${at.pool}].backends[${at.backend}] in ${file} is an alias`);
    if (isScalar(item)) {
      if (field.isDefault) return doc.toString({ lineWidth: 0 });
      const map = doc.createNode({ address: item.value, [field.key]: field.value });
      // Keep the comments that were attached to the short form: the one above stays above,
      // the one after the address stays after the address.
      map.commentBefore = item.commentBefore;
      map.spaceBefore = item.spaceBefore;
      const address = map.items[0].value;
      if (isScalar(address) && item.comment) address.comment = item.comment;
      seq.items[at.backend] = map;
    } else if (isMap(item)) {
      if (field.isDefault) item.delete(field.key);
      else item.set(field.key, field.value);
    } else throw cannot(`pools[${at.pool}].backends[${at.backend}] in ${file} is neither an address nor a mapping`);
  }
  return doc.toString({ lineWidth: 0 });
}

/** True when the resolved backend shows what the action asked for. */
function showsChange(cfg: Config, at: Located, action: AdminAction): boolean {
  const pool = cfg.pools[at.pool];
  if (!pool || pool.name !== action.pool) return false;
  const find = (name: string): BackendConfig | undefined => pool.backends.find((b) => b.name === name);
  switch (action.kind) {
    case 'set-state':
      return find(action.backend)?.state === action.state;
    case 'set-weight':
      return find(action.backend)?.weight === action.weight;
    case 'add-backend': {
      const b = find(action.backend.name);
      return b !== undefined && b.host === action.backend.host && b.port === action.backend.port;
    }
    case 'remove-backend':
      return find(action.backend) === undefined;
  }
}

/**
 * Computes the new text of `file` with `action` applied, without writing it. Throws a 409
 * {@link AdminError} when the file cannot express the change (it no longer loads, the
 * pool or backend is not in it, the list is an alias…).
 */
export async function preparePersist(file: string, action: AdminAction): Promise<string> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw cannot(`cannot read ${file}: ${(err as Error).message}`, err);
  }
  const bom = text.startsWith(BOM);
  if (bom) text = text.slice(1);
  let current: Config;
  try {
    current = parseConfigText(text, file);
  } catch (err) {
    throw cannot(`${file} does not load as it is now: ${(err as Error).message}`, err);
  }
  const at = locate(current, action, file);
  const next = extname(file).toLowerCase() === '.json' ? editJson(text, at, action) : editYaml(text, at, action, file);
  let reloaded: Config;
  try {
    reloaded = parseConfigText(next, file);
  } catch (err) {
    throw cannot(`the edited file would not load: ${(err as Error).message}`, err);
  }
  if (!showsChange(reloaded, at, action)) throw cannot('the edited file would not show the change');
  return bom ? BOM + next : next;
}

/** Replaces `file`'s content atomically (same directory temporary file, then rename). */
export async function writeFileAtomic(file: string, text: string): Promise<void> {
  // Through a symlink: replace its target, not the link.
  const target = await realpath(file);
  const mode = (await stat(target)).mode & 0o777;
  const tmp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await writeFile(tmp, text, { mode });
    await rename(tmp, target);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
