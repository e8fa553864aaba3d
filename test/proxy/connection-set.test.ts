/**
 * ConnectionSet: the Set replacement for live connections (see src/proxy/connection-set.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionSet } from '../../src/proxy/connection-set.js';

test('it adds, finds and deletes members in any order, keeping the size right', () => {
  const set = new ConnectionSet<{ id: number }>();
  const items = Array.from({ length: 10 }, (_, id) => ({ id }));
  for (const it of items) set.add(it);
  set.add(items[3]); // adding twice is a no-op, as with a Set
  assert.equal(set.size, 10);
  for (const i of [0, 9, 4, 5]) assert.equal(set.delete(items[i]), true);
  assert.equal(set.delete(items[4]), false, 'already gone');
  assert.equal(set.size, 6);
  assert.deepEqual([...set].map((x) => x.id).sort((a, b) => a - b), [1, 2, 3, 6, 7, 8]);
  for (const it of items) assert.equal(set.has(it), ![0, 9, 4, 5].includes(it.id));
  set.add(items[4]);
  assert.equal(set.has(items[4]), true);
  assert.equal(set.size, 7);
});

test('members may delete themselves while the set is being iterated', () => {
  const set = new ConnectionSet<{ id: number }>();
  const items = Array.from({ length: 5 }, (_, id) => ({ id }));
  for (const it of items) set.add(it);
  const seen: number[] = [];
  for (const it of set) {
    seen.push(it.id);
    set.delete(it); // as stop() does during shutdown
  }
  assert.deepEqual(seen, [0, 1, 2, 3, 4]);
  assert.equal(set.size, 0);
});
