/**
 * The UDP suites again with the fast path off (L4LB_FAST_PATH=0): listeners read through
 * dgram's 'message' events and reply with `send`, and every session socket is a dgram.Socket
 * connected asynchronously (udp/raw-udp.ts's fallback). The suites are imported after setting
 * the variable, so every module sees it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';

process.env.L4LB_FAST_PATH = '0';

const { udpInternals } = await import('../../src/proxy/node-internals.js');

test('the UDP fast path is off in this run', () => {
  assert.equal(udpInternals(), undefined);
});

await import('./sessions.test.js');
await import('./dns.test.js');
await import('./admission.test.js');
await import('./health.test.js');
