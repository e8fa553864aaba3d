/**
 * The fuzzer's corpus as regular tests: every seed input is accepted by its parser, and every
 * saved reproducer of a finding (test/fuzz/corpus/<parser>/*.json) now keeps the parser's
 * contract — the same check the fuzzer applied when it found it — well within the time limit.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { basename } from 'node:path';
import { Finding, TARGETS, TARGET_NAMES } from './targets.js';
import { inputOf, loadReproducers, loadSeeds } from './corpus.js';

/** The fuzzer's limit is 100 ms; a test on a loaded machine gets ten times that. */
const REPLAY_LIMIT_MS = 1000;

for (const parser of TARGET_NAMES) {
  test(`${parser}: every seed input is accepted`, () => {
    const seeds = loadSeeds(parser);
    assert.ok(seeds.length > 0, `test/fuzz/seeds/${parser} holds seeds`);
    for (const [i, input] of seeds.entries()) {
      assert.equal(TARGETS[parser].check(input), 'accepted', `seed #${i} (${input.variant}) of ${parser}`);
    }
  });
}

for (const { file, r } of loadReproducers()) {
  test(`${r.parser} reproducer ${basename(file)}: ${r.description.slice(0, 100)}`, () => {
    const target = TARGETS[r.parser];
    assert.ok(target, `unknown parser "${r.parser}"`);
    const t0 = performance.now();
    try {
      target.check(inputOf(r), r.expect);
    } catch (err) {
      assert.fail(err instanceof Finding ? `${err.kind}: ${err.message}` : String(err));
    }
    const ms = performance.now() - t0;
    assert.ok(ms < REPLAY_LIMIT_MS, `took ${Math.round(ms)} ms`);
  });
}
