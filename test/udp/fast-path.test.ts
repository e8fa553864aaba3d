/**
 * The UDP fast path (udp/raw-udp.ts) is there on the Node versions l4lb supports: a Node
 * release that moves udp_wrap's internals fails here instead of silently slowing UDP down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { udpInternals } from '../../src/proxy/node-internals.js';
import { UdpClient, proxyFrom, udpConfig, udpEcho } from './support.js';

test('udp_wrap internals are found, and a listener reads and replies through them', { skip: process.env.L4LB_FAST_PATH === '0' }, async (t) => {
  assert.ok(udpInternals(), `Node ${process.version}: udp_wrap internals missing`);
  const echo = await udpEcho('E:');
  t.after(() => echo.close());
  const p = await proxyFrom(udpConfig([echo]));
  t.after(() => p.close());
  const l = p.proxy.udp.map.get('u')!;
  assert.equal(l.raw, true);
  const c = await UdpClient.open();
  t.after(() => c.close());
  await c.send(p.port, 'one');
  await c.send(p.port, 'two');
  assert.deepEqual((await c.waitReplies(2)).map(String), ['E:one', 'E:two']);
  assert.equal(l.stats.datagramsDown, 2);
});
