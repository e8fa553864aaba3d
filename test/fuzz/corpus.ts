/**
 * @module test/fuzz/corpus — the fuzzer's files: the seed corpus of valid inputs
 * (`test/fuzz/seeds/<parser>/NAME.VARIANT`, the variant being how the target reads the bytes)
 * and the reproducers of findings (`test/fuzz/corpus/<parser>/KIND-HASH.json`).
 *
 * CLI seeds (`.args`) hold one argument per line; the fuzzer joins them with NUL bytes.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { extname, join } from 'node:path';
import { ROOT } from '../support/net.js';
import type { FindingKind, FuzzInput, TargetName } from './targets.js';

/** Source directory of the fuzzer (the TypeScript tree, not dist/). */
export const FUZZ_DIR = join(ROOT, 'test', 'fuzz');
export const SEEDS_DIR = join(FUZZ_DIR, 'seeds');
export const CORPUS_DIR = join(FUZZ_DIR, 'corpus');

/** A saved finding: enough to replay it, and to find it again with the same seed. */
export interface Reproducer {
  parser: TargetName;
  variant: string;
  kind: FindingKind;
  /** What was wrong, as the fuzzer saw it. */
  description: string;
  /** The `--seed` of the run, the worker's derived seed and the input's index in that worker. */
  seed: number;
  subSeed: number;
  index: number;
  phase: 'property' | 'mutation' | 'socket';
  /** When it was found (ISO 8601). */
  found: string;
  /** The input, base64. */
  bytes: string;
  /** The input as text, for reading (text targets only). */
  text?: string;
  /** For round-trip properties: what the parse must give. */
  expect?: unknown;
}

/** The seed inputs of `parser`, sorted by file name. */
export function loadSeeds(parser: TargetName): FuzzInput[] {
  const dir = join(SEEDS_DIR, parser);
  return readdirSync(dir)
    .sort()
    .map((name) => {
      const variant = extname(name).slice(1);
      const raw = readFileSync(join(dir, name));
      const bytes = variant === 'args' ? Buffer.from(raw.toString('utf8').replace(/\n$/, '').split('\n').join('\u0000')) : raw;
      return { variant, bytes };
    });
}

/** Writes a reproducer (named by a hash of its input, so one input is saved once); returns its path. */
export function saveReproducer(r: Reproducer): string {
  const dir = join(CORPUS_DIR, r.parser);
  mkdirSync(dir, { recursive: true });
  const hash = createHash('sha256').update(r.variant).update('\u0000').update(r.bytes).digest('hex').slice(0, 12);
  const file = join(dir, `${r.kind}-${hash}.json`);
  if (!existsSync(file)) writeFileSync(file, `${JSON.stringify(r, null, 2)}\n`);
  return file;
}

/** Every saved reproducer, with its file name. */
export function loadReproducers(): { file: string; r: Reproducer }[] {
  if (!existsSync(CORPUS_DIR)) return [];
  const out: { file: string; r: Reproducer }[] = [];
  for (const parser of readdirSync(CORPUS_DIR).sort()) {
    for (const name of readdirSync(join(CORPUS_DIR, parser)).sort()) {
      if (!name.endsWith('.json')) continue;
      const file = join(CORPUS_DIR, parser, name);
      out.push({ file, r: JSON.parse(readFileSync(file, 'utf8')) as Reproducer });
    }
  }
  return out;
}

/** The input a reproducer holds. */
export function inputOf(r: Reproducer): FuzzInput {
  return { variant: r.variant, bytes: Buffer.from(r.bytes, 'base64') };
}

/** The text form of an input when it reads as text (for the reproducer's `text` field). */
export function textOf(bytes: Buffer): string | undefined {
  const s = bytes.toString('utf8');
  return Buffer.from(s, 'utf8').equals(bytes) && !/[\u0001-\u0008\u000e-\u001f]/.test(s) ? s : undefined;
}
