/**
 * UDP sessions against real UDP echo servers: datagram integrity, session affinity and
 * isolation, timeouts, per-datagram mode, hash balancing, reload and drain.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { parseConfigText } from '../../src/config/load.js';
import { udpInternals } from '../../src/proxy/node-internals.js';
import { UdpClient, proxyFrom, udpConfig, udpEcho, until } from './support.js';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');


test('8 KiB, 60 KiB and 65507-byte datagrams pass whole both ways (SHA-256), one datagram out per datagram in', async (t) => {
  const echo = await udpEcho();
  t.after(() => echo.close());
  const p = await proxyFrom(udpConfig([echo]));
  t.after(() => p.close());
  const c = await UdpClient.open();
  t.after(() => c.close());
  const payloads = [8 * 1024, 60 * 1024, 65_507].map((n) => randomBytes(n));
  for (const m of payloads) await c.send(p.port, m);
  const replies = await c.waitReplies(3);
  assert.deepEqual(replies.map((r) => r.length), payloads.map((m) => m.length));
  assert.deepEqual(replies.map(sha), payloads.map(sha));
  assert.equal(echo.received, 3, 'never merged or split on the way in');
  const l = p.proxy.udp.map.get('u')!;
  assert.equal(l.stats.datagramsUp, 3);
  assert.equal(l.stats.datagramsDown, 3);
  p.proxy.flushLiveBytes();
  const total = payloads.reduce((n, m) => n + m.length, 0);
  assert.equal(l.stats.bytesUp, total);
  assert.equal(l.stats.bytesDown, total);
});

test('1000 concurrent sessions from distinct source ports each get their own replies and no one else\'s', async (t) => {
  const echo = await udpEcho();
  t.after(() => echo.close());
  const p = await proxyFrom(udpConfig([echo]));
  t.after(() => p.close());
  const clients = await Promise.all(Array.from({ length: 1000 }, () => UdpClient.open()));
  t.after(() => Promise.all(clients.map((c) => c.close())));
  assert.equal(new Set(clients.map((c) => c.port)).size, 1000);
  const payloadOf = (i: number, k: number) => Buffer.from(`client ${i} datagram ${k} ${randomBytes(8).toString('hex')}`);
  const sent = clients.map((_, i) => [payloadOf(i, 0), payloadOf(i, 1)]);
  await Promise.all(clients.map((c, i) => c.send(p.port, sent[i][0])));
  await Promise.all(clients.map((c, i) => c.send(p.port, sent[i][1])));
  await Promise.all(clients.map((c) => c.waitReplies(2, 15_000)));
  clients.forEach((c, i) => {
    // The replies' text says which kind a failure is: a duplicate or another client's reply.
    assert.equal(c.replies.length, 2, `client ${i}: ${c.replies.map((r) => r.toString()).join(' / ')}`);
    assert.deepEqual(new Set(c.replies.map((r) => r.toString())), new Set(sent[i].map((m) => m.toString())), `client ${i} got its own`);
  });
  assert.equal(p.proxy.udp.sessionCount(), 1000);
  assert.equal(echo.senders.size, 1000, 'one backend socket per session');
});

test('a session keeps its backend; new clients are balanced round robin; the idle timeout ends it', async (t) => {
  const a = await udpEcho('A:');
  const b = await udpEcho('B:');
  t.after(() => Promise.all([a.close(), b.close()]));
  const p = await proxyFrom(udpConfig([a, b], '    timeouts: { idle: 300ms }'));
  t.after(() => p.close());
  const c1 = await UdpClient.open();
  const c2 = await UdpClient.open();
  t.after(() => Promise.all([c1.close(), c2.close()]));
  for (let i = 0; i < 4; i++) await c1.send(p.port, `x${i}`);
  await c1.waitReplies(4);
  await c2.send(p.port, 'y');
  await c2.waitReplies(1);
  const tags1 = new Set(c1.replies.map((r) => r.toString().slice(0, 2)));
  assert.equal(tags1.size, 1, 'all four datagrams of one session went to one backend');
  assert.notEqual(c2.replies[0].toString().slice(0, 2), [...tags1][0], 'the next session went to the other backend');
  await until(() => p.records.length === 2, 'both sessions to end by idle timeout', 3_000);
  assert.deepEqual(p.records.map((r) => r.reason), ['idle_timeout', 'idle_timeout']);
  const r1 = p.records.find((r) => r.clientPort === c1.port)!;
  assert.equal(r1.datagramsUp, 4);
  assert.equal(r1.datagramsDown, 4);
  assert.equal(r1.bytesUp, 8);
  assert.equal(r1.bytesDown, 16);
  assert.ok(r1.durationMs >= 300);
});

test('source-ip-hash and maglev send every session of one client address to the same backend', async (t) => {
  const a = await udpEcho('A:');
  const b = await udpEcho('B:');
  t.after(() => Promise.all([a.close(), b.close()]));
  for (const balance of ['source-ip-hash', 'maglev']) {
    const p = await proxyFrom(udpConfig([a, b], '', `    balance: ${balance}`));
    const tags = new Set<string>();
    for (const host of ['127.0.0.1', '127.0.0.1', '127.0.0.1', '127.0.0.1']) {
      const c = await UdpClient.open(host);
      await c.send(p.port, 'hi');
      tags.add((await c.waitReplies(1))[0].toString().slice(0, 2));
      await c.close();
    }
    assert.equal(tags.size, 1, `${balance}: four source ports, one backend`);
    assert.equal(p.proxy.udp.sessionCount(), 4);
    await p.close();
  }
});

test('per-datagram mode picks a backend for every datagram, keeps no session and expects no reply', async (t) => {
  const a = await udpEcho();
  const b = await udpEcho();
  t.after(() => Promise.all([a.close(), b.close()]));
  const p = await proxyFrom(udpConfig([a, b], '    udp: { perDatagram: true }'));
  t.after(() => p.close());
  const c = await UdpClient.open();
  t.after(() => c.close());
  for (let i = 0; i < 10; i++) await c.send(p.port, `log line ${i}`);
  await until(() => a.received + b.received === 10, 'ten datagrams at the backends');
  assert.deepEqual([a.received, b.received], [5, 5]);
  assert.equal(p.proxy.udp.sessionCount(), 0);
  const l = p.proxy.udp.map.get('u')!;
  await until(() => (l.stats.rejected.get('unexpected_reply') ?? 0) === 10, 'the echoes to be dropped');
  assert.equal(c.replies.length, 0, 'replies are not sent back in per-datagram mode');
  assert.equal(l.stats.datagramsUp, 10);
  assert.equal(l.stats.accepted, 0);
  // One socket per backend: a bare handle on the fast path, a dgram.Socket without it (fallback.test.ts).
  const raw = udpInternals() !== undefined;
  assert.deepEqual(new Map([...l.perDatagramSockets()].map(([k, v]) => [k, v.raw])), new Map([[`127.0.0.1:${a.port}`, raw], [`127.0.0.1:${b.port}`, raw]]));
});

test('reload keeps a live session on its backend; new sessions follow the new pool', async (t) => {
  const a = await udpEcho('A:');
  const b = await udpEcho('B:');
  t.after(() => Promise.all([a.close(), b.close()]));
  const p = await proxyFrom(udpConfig([a]));
  t.after(() => p.close());
  const c1 = await UdpClient.open();
  t.after(() => c1.close());
  await c1.send(p.port, '1');
  await c1.waitReplies(1);
  const next = parseConfigText(udpConfig([b]), 'reload.yaml', {});
  await p.proxy.reload(next);
  await c1.send(p.port, '2');
  await c1.waitReplies(2);
  assert.deepEqual(c1.replies.map((r) => r.toString()), ['A:1', 'A:2']);
  const c2 = await UdpClient.open();
  t.after(() => c2.close());
  await c2.send(p.port, '3');
  assert.equal((await c2.waitReplies(1))[0].toString(), 'B:3');
});

test('drain takes no new session and lets live ones end by their idle timeout', async (t) => {
  const a = await udpEcho();
  t.after(() => a.close());
  const p = await proxyFrom(udpConfig([a], '    timeouts: { idle: 400ms }'));
  t.after(() => p.close());
  const c1 = await UdpClient.open();
  const c2 = await UdpClient.open();
  t.after(() => Promise.all([c1.close(), c2.close()]));
  await c1.send(p.port, 'before');
  await c1.waitReplies(1);
  const t0 = Date.now();
  const drained = p.proxy.drain(10_000, 0);
  await c1.send(p.port, 'during');
  await c2.send(p.port, 'newcomer');
  await c1.waitReplies(2);
  await drained;
  const took = Date.now() - t0;
  assert.ok(took >= 350 && took < 5_000, `drain ended with the idle timeout (${took}ms)`);
  assert.equal(c2.replies.length, 0);
  const l = p.proxy.udp.map.get('u')!;
  assert.equal(l.stats.rejected.get('shutdown'), 1);
  assert.deepEqual(p.records.map((r) => r.reason), ['idle_timeout']);
});

test('drain is bounded by its timeout: sessions still live then are ended (shutdown)', async (t) => {
  const a = await udpEcho();
  t.after(() => a.close());
  const p = await proxyFrom(udpConfig([a], '    timeouts: { idle: 1m }'));
  t.after(() => p.close());
  const c = await UdpClient.open();
  t.after(() => c.close());
  await c.send(p.port, 'x');
  await c.waitReplies(1);
  const t0 = Date.now();
  await p.proxy.drain(300, 0);
  assert.ok(Date.now() - t0 < 3_000);
  assert.deepEqual(p.records.map((r) => r.reason), ['shutdown']);
  assert.equal(p.proxy.udp.sessionCount(), 0);
});

test('a backend given by name (localhost) is resolved when its session socket connects', async (t) => {
  const echo = await udpEcho('L:');
  t.after(() => echo.close());
  const p = await proxyFrom(udpConfig([echo]).replace(`127.0.0.1:${echo.port}`, `localhost:${echo.port}`));
  t.after(() => p.close());
  const c = await UdpClient.open();
  t.after(() => c.close());
  await c.send(p.port, 'by name');
  assert.equal((await c.waitReplies(1))[0].toString(), 'L:by name');
});

test('two l4lb instances with maglev (or source-ip-hash) send each client address to the same backend', async (t) => {
  const backends = await Promise.all(['A:', 'B:', 'C:'].map((tag) => udpEcho(tag)));
  t.after(() => Promise.all(backends.map((b) => b.close())));
  for (const balance of ['maglev', 'source-ip-hash']) {
    const one = await proxyFrom(udpConfig(backends, '', `    balance: ${balance}`));
    const two = await proxyFrom(udpConfig(backends, '', `    balance: ${balance}`));
    const seen: string[][] = [];
    for (const proxy of [one, two]) {
      const tags: string[] = [];
      for (const host of ['127.0.0.1', '127.0.0.7', '127.0.0.9', '127.0.0.23', '127.0.0.42', '127.0.0.77']) {
        const c = await UdpClient.open(host);
        await c.send(proxy.port, 'x');
        tags.push((await c.waitReplies(1))[0].toString());
        await c.close();
      }
      seen.push(tags);
    }
    await Promise.all([one.close(), two.close()]);
    assert.deepEqual(seen[0], seen[1], `${balance}: the same backend per client address on both instances`);
    assert.ok(new Set(seen[0]).size > 1, `${balance}: six addresses do not all land on one backend`);
  }
});

test('IPv6: a listener on [::1] balances to backends on ::1, replies come back from [::1]', async (t) => {
  const a = await udpEcho('A:', 0, '::1');
  t.after(() => a.close());
  const p = await proxyFrom(udpConfig([]).replace('listen: 127.0.0.1:0', 'listen: "[::1]:0"').replace('backends: []', `backends: ["[::1]:${a.port}"]`));
  t.after(() => p.close());
  const c = await UdpClient.open('::1');
  t.after(() => c.close());
  let from = '';
  c.socket.once('message', (_m, r) => (from = `${r.address}|${r.port}`));
  await c.send(p.port, 'six');
  assert.equal((await c.waitReplies(1))[0].toString(), 'A:six');
  assert.equal(from, `::1|${p.port}`);
  await until(() => a.senders.size === 1, 'the backend to see the session socket');
  assert.ok([...a.senders][0].startsWith('::1|'));
});
