/**
 * Inactivity deadlines (src/proxy/deadlines.ts): one timer per duration, lazy activity.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DeadlineList, type DeadlineEntry } from '../../src/proxy/deadlines.js';

function entry(name: string, fired: string[]): DeadlineEntry & { at?: number } {
  const e: DeadlineEntry & { at?: number } = {
    dlPrev: undefined,
    dlNext: undefined,
    dlList: undefined,
    dlArmed: 0,
    dlLastActive: 0,
    onDeadline() {
      fired.push(name);
      e.at = performance.now();
    },
  };
  return e;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('an entry without activity expires after the duration, not before', async () => {
  const list = new DeadlineList(100);
  const fired: string[] = [];
  const a = entry('a', fired);
  const t0 = performance.now();
  list.add(a);
  await sleep(60);
  assert.deepEqual(fired, []);
  await sleep(200);
  assert.deepEqual(fired, ['a']);
  assert.ok(a.at! - t0 >= 99, `fired after ${a.at! - t0} ms`);
  assert.equal(list.size, 0);
});

test('activity moves the deadline, and entries behind an active one still expire on time', async () => {
  const list = new DeadlineList(120);
  const fired: string[] = [];
  const active = entry('active', fired);
  const idle = entry('idle', fired);
  // Activity that is current whenever the list looks, from before the entry is added: a
  // keep-alive timer of its own could run after the list's timer on a loaded machine (a
  // stall longer than the deadline, even during the first sleep) and let it expire.
  let keepingAlive = true;
  let lastActive = 0;
  Object.defineProperty(active, 'dlLastActive', {
    get: () => (keepingAlive ? performance.now() : lastActive),
    set: (v: number) => (lastActive = v),
  });
  list.add(active);
  await sleep(20);
  list.add(idle);
  await sleep(400);
  lastActive = performance.now();
  keepingAlive = false;
  assert.deepEqual(fired, ['idle'], 'the active entry is still waiting');
  assert.equal(list.size, 1);
  await sleep(300);
  assert.deepEqual(fired, ['idle', 'active']);
});

test('a removed entry never fires, and an empty list holds no timer', async () => {
  const list = new DeadlineList(50);
  const fired: string[] = [];
  const a = entry('a', fired);
  const b = entry('b', fired);
  list.add(a);
  list.add(b);
  list.remove(a);
  list.remove(a); // twice is harmless
  await sleep(150);
  assert.deepEqual(fired, ['b']);
  assert.equal(list.armed, false, 'the list emptied by firing holds no timer');
  list.add(a);
  list.remove(a);
  assert.equal(list.size, 0);
  // The timer armed for `a` stays (re-arming on every removal would cost a Node timer per
  // connection); once it fires and finds the list empty, it is not armed again.
  assert.equal(list.armed, true, 'armed for the removed head until its time');
  await sleep(100);
  assert.equal(list.armed, false, 'an empty list holds no timer');
  assert.deepEqual(fired, ['b'], 'the removed entry never fired');
});

test('many entries expire in deadline order', async () => {
  const list = new DeadlineList(60);
  const fired: string[] = [];
  for (let i = 0; i < 5; i++) {
    list.add(entry(String(i), fired));
    await sleep(5);
  }
  await sleep(200);
  assert.deepEqual(fired, ['0', '1', '2', '3', '4']);
});
