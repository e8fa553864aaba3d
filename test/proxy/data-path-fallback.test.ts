/**
 * The data-path suites again with the fast path off (L4LB_FAST_PATH=0): accepted sockets are
 * read through 'data' events, the public API fallback of
 * node-internals.ts and raw-socket.ts. Spawned l4lb processes
 * inherit the variable. The suites are imported after setting it, so every module sees it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

process.env.L4LB_FAST_PATH = '0';

const { fastPathStatus } = await import('../../src/proxy/node-internals.js');

test('the fast path is off in this run', () => {
  assert.deepEqual(fastPathStatus(), { enabled: false, reason: 'L4LB_FAST_PATH=0' });
});

await import('./data-path.test.js');
await import('./backpressure.test.js');
await import('./fast-path.test.js');
await import('../lifecycle/timeouts.test.js');
await import('./mirror-bytes.test.js');
