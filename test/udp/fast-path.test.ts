/**
 * The UDP fast path (udp/raw-udp.ts) is there on the Node versions l4lb supports: a Node
 * release that moves udp_wrap's internals fails here instead of silently slowing UDP down.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { udpInternals } from '../../src/proxy/node-internals.js';
import { UdpClient, proxyFrom, udpConfig, udpEcho, until } from './support.js';

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

test('per-datagram mode sends through one bare handle per backend, ready at once', async (t) => {
  const a = await udpEcho();
  const b = await udpEcho();
  t.after(() => Promise.all([a.close(), b.close()]));
  const p = await proxyFrom(udpConfig([a, b], '    udp: { perDatagram: true }'));
  t.after(() => p.close());
  const c = await UdpClient.open();
  t.after(() => c.close());
  await Promise.all(Array.from({ length: 40 }, (_, i) => c.send(p.port, `line ${i}`)));
  await until(() => a.received + b.received === 40, 'forty datagrams at the backends');
  assert.deepEqual([a.received, b.received], [20, 20]);
  const l = p.proxy.udp.map.get('u')!;
  const sockets = l.perDatagramSockets();
  assert.deepEqual([...sockets.keys()].sort(), [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`].sort());
  assert.ok([...sockets.values()].every((s) => s.raw), 'no dgram.Socket towards a backend given by IP');
  assert.equal(l.stats.rejected.get('pending_full') ?? 0, 0);
  assert.equal(l.stats.datagramsUp, 40);
});
