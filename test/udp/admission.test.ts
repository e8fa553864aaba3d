/**
 * Bad and excess input on a UDP listener: each refused datagram is dropped and counted by
 * reason, the process and the other clients' sessions are unharmed.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { UdpClient, proxyFrom, udpConfig, udpEcho, until } from './support.js';


test('zero-length datagrams are dropped and counted (empty); the same client is served right after', async (t) => {
  const echo = await udpEcho();
  t.after(() => echo.close());
  const p = await proxyFrom(udpConfig([echo.port], ''));
  t.after(() => p.close());
  const c = await UdpClient.open();
  t.after(() => c.close());
  for (let i = 0; i < 5; i++) await c.send(p.port, Buffer.alloc(0));
  await c.send(p.port, 'real');
  assert.equal((await c.waitReplies(1))[0].toString(), 'real');
  const l = p.proxy.udp.map.get('u')!;
  assert.equal(l.stats.rejected.get('empty'), 5);
  assert.equal(echo.received, 1);
});

test('a datagram from a denied source is dropped (acl) and opens no session; allowed sources are served', async (t) => {
  const echo = await udpEcho();
  t.after(() => echo.close());
  const p = await proxyFrom(udpConfig([echo.port], '    acl: [{ deny: 127.0.0.2/32 }]'));
  t.after(() => p.close());
  const denied = await UdpClient.open('127.0.0.2');
  const allowed = await UdpClient.open('127.0.0.1');
  t.after(() => Promise.all([denied.close(), allowed.close()]));
  await denied.send(p.port, 'let me in');
  await allowed.send(p.port, 'hello');
  assert.equal((await allowed.waitReplies(1))[0].toString(), 'hello');
  const l = p.proxy.udp.map.get('u')!;
  await until(() => l.stats.rejected.get('acl') === 1, 'the acl drop');
  assert.equal(denied.replies.length, 0);
  assert.equal(p.proxy.udp.sessionCount(), 1);
  assert.equal(echo.received, 1);
});

test('a flood from one source past its datagram rate is dropped and counted; another client is unharmed', async (t) => {
  const echo = await udpEcho();
  t.after(() => echo.close());
  const p = await proxyFrom(udpConfig([echo.port], '    sourceLimits: { datagramsPerSecond: 20, datagramBurst: 20 }'));
  t.after(() => p.close());
  const flood = await UdpClient.open('127.0.0.3');
  const other = await UdpClient.open('127.0.0.1');
  t.after(() => Promise.all([flood.close(), other.close()]));
  const floodSends: Array<Promise<void>> = [];
  for (let i = 0; i < 500; i++) floodSends.push(flood.send(p.port, `f${i}`));
  await Promise.all(floodSends);
  for (let i = 0; i < 5; i++) await other.send(p.port, `o${i}`);
  await other.waitReplies(5);
  const l = p.proxy.udp.map.get('u')!;
  await until(() => (l.stats.rejected.get('datagram_rate') ?? 0) + flood.replies.length >= 480, 'the flood to be counted');
  const dropped = l.stats.rejected.get('datagram_rate') ?? 0;
  // The bucket holds 20 and refills at 20/s: the flood gets its burst and a few more through.
  assert.ok(flood.replies.length >= 20 && flood.replies.length <= 60, `flood served ${flood.replies.length}`);
  assert.ok(dropped >= 440, `dropped ${dropped}`);
  assert.deepEqual(other.replies.map((r) => r.toString()), ['o0', 'o1', 'o2', 'o3', 'o4']);
});

test('per-source and per-listener session limits refuse new sessions (dropped and counted), never queue them', async (t) => {
  const echo = await udpEcho();
  t.after(() => echo.close());
  const p = await proxyFrom(udpConfig([echo.port], '    maxConnections: 3\n    sourceLimits: { maxConnections: 2 }'));
  t.after(() => p.close());
  const l = p.proxy.udp.map.get('u')!;
  const same = await Promise.all([1, 2, 3].map(() => UdpClient.open('127.0.0.4')));
  const others = await Promise.all(['127.0.0.5', '127.0.0.6'].map((h) => UdpClient.open(h)));
  t.after(() => Promise.all([...same, ...others].map((c) => c.close())));
  for (const c of same) await c.send(p.port, 'x');
  await Promise.all(same.slice(0, 2).map((c) => c.waitReplies(1)));
  await until(() => l.stats.rejected.get('source_concurrency') === 1, 'the third session of one source to be refused');
  assert.equal(same[2].replies.length, 0);
  await others[0].send(p.port, 'y');
  await others[0].waitReplies(1);
  await others[1].send(p.port, 'z');
  await until(() => l.stats.rejected.get('listener_limit') === 1, 'the fourth session to hit the listener limit');
  assert.equal(p.proxy.udp.sessionCount(), 3);
  // The sessions already open keep working.
  await same[0].send(p.port, 'again');
  await same[0].waitReplies(2);
});

test('with no backend available the datagram is dropped (no_backend), and a reply timeout counts as a passive failure', async (t) => {
  // A backend that reads and never answers.
  const silent = await udpEcho();
  silent.socket.removeAllListeners('message');
  t.after(() => silent.close());
  const p = await proxyFrom(
    udpConfig([silent.port], '    udp: { responses: 1, responseTimeout: 200ms }', '    passive: { consecutiveFailures: 2, baseEjection: 1m }'),
  );
  t.after(() => p.close());
  const c = await UdpClient.open();
  t.after(() => c.close());
  const backend = p.proxy.pools.get('p')!.backends[0];
  await c.send(p.port, 'q1');
  await until(() => p.records.length === 1, 'the first session to time out');
  await c.send(p.port, 'q2');
  await until(() => p.records.length === 2, 'the second session to time out');
  assert.deepEqual(p.records.map((r) => r.reason), ['response_timeout', 'response_timeout']);
  assert.equal(p.records[0].code, 'L4LB_ERR_UDP_RESPONSE_TIMEOUT');
  assert.equal(backend.state(), 'down');
  await c.send(p.port, 'q3');
  const l = p.proxy.udp.map.get('u')!;
  await until(() => l.stats.rejected.get('no_backend') === 1, 'the drop for lack of a backend');
});

test('per-datagram mode: ICMP port-unreachable from a backend ejects it; datagrams go to the live one', async (t) => {
  const live = await udpEcho();
  t.after(() => live.close());
  const dead = await refusedUdpPort();
  const p = await proxyFrom(
    udpConfig([dead, live.port], '    udp: { perDatagram: true }', '    passive: { consecutiveFailures: 2, baseEjection: 1m }'),
  );
  t.after(() => p.close());
  const c = await UdpClient.open();
  t.after(() => c.close());
  const [deadBackend] = p.proxy.pools.get('p')!.backends;
  for (let i = 0; i < 10 && deadBackend.state() !== 'down'; i++) {
    await c.send(p.port, `d${i}`);
    await new Promise((r) => setTimeout(r, 30));
  }
  assert.equal(deadBackend.state(), 'down');
  const before = live.received;
  for (let i = 0; i < 6; i++) await c.send(p.port, `x${i}`);
  await until(() => live.received === before + 6, 'every datagram at the live backend');
});

/** A UDP port nothing listens on (bound, then closed). */
async function refusedUdpPort(): Promise<number> {
  const e = await udpEcho();
  const port = e.port;
  await e.close();
  return port;
}
