/**
 * Every stable error code is documented in docs/errors.md (as fastify does for its codes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ErrorCodes } from '../src/errors.js';
import { ROOT } from './support/net.js';

test('every error code in src/errors.ts has a row in docs/errors.md', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
  const missing = Object.values(ErrorCodes).filter((code) => !doc.includes(`| \`${code}\` |`));
  assert.deepEqual(missing, []);
});

test('docs/errors.md documents no code that does not exist', () => {
  const doc = readFileSync(join(ROOT, 'docs', 'errors.md'), 'utf8');
  const codes = new Set<string>(Object.values(ErrorCodes));
  const documented = [...doc.matchAll(/\| `(L4LB_ERR_[A-Z_]+)` \|/g)].map((m) => m[1]);
  assert.ok(documented.length > 0);
  assert.deepEqual(documented.filter((c) => !codes.has(c)), []);
});
