/**
 * UDP in the status API and /metrics, read over HTTP from a real admin server: sessions active
 * and total, datagrams and bytes each way, drops by reason, per listener and per backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startProxyAdmin } from '../../src/admin/server.js';
import type { StatusSnapshot } from '../../src/admin/status.js';
import { UdpClient, proxyFrom, udpEcho } from './support.js';

test('status and /metrics show a UDP listener\'s sessions, datagrams, bytes and drops, and its backend\'s datagrams', async (t) => {
  // An echo backend that leaves "hold" unanswered, so that one session stays open awaiting it.
  const echo = await udpEcho();
  echo.socket.removeAllListeners('message');
  echo.socket.on('message', (m, r) => {
    if (m.toString() !== 'hold') echo.socket.send(m, r.port, r.address);
  });
  t.after(() => echo.close());
  const p = await proxyFrom(`
listeners:
  - { name: u, listen: 127.0.0.1:0, protocol: udp, pool: p, udp: { responses: 1 } }
pools:
  - name: p
    backends: [{ name: echo, address: "127.0.0.1:${echo.port}" }]
`);
  t.after(() => p.close());
  const admin = await startProxyAdmin(p.proxy, { host: '127.0.0.1', port: 0, persist: false });
  t.after(() => admin.close());
  const ended = await UdpClient.open();
  const live = await UdpClient.open();
  t.after(() => Promise.all([ended.close(), live.close()]));
  await ended.send(p.port, 'aaaa');
  await ended.waitReplies(1); // responses: 1 ends that session on its reply
  await live.send(p.port, 'hold'); // owed a reply: the session stays
  await live.send(p.port, Buffer.alloc(0)); // dropped: empty
  await new Promise((r) => setTimeout(r, 100));

  const status = (await (await fetch(`${admin.url}/api/v1/status`)).json()) as StatusSnapshot;
  const l = status.listeners.find((x) => x.name === 'u')!;
  assert.equal(l.protocol, 'udp');
  assert.equal(l.active, 1);
  assert.equal(l.accepted, 2);
  assert.deepEqual(l.closed, { responses_done: 1 });
  assert.deepEqual(l.rejected, { empty: 1 });
  assert.equal(l.datagramsUp, 2);
  assert.equal(l.datagramsDown, 1);
  assert.equal(l.bytesUp, 8, 'the live session\'s bytes are included');
  assert.equal(l.bytesDown, 4);
  const b = status.pools[0].backends[0];
  assert.equal(b.active, 1);
  assert.equal(b.total, 2);
  assert.equal(b.datagramsIn, 2);
  assert.equal(b.datagramsOut, 1);
  assert.equal(b.bytesIn, 8);

  const metrics = await (await fetch(`${admin.url}/metrics`)).text();
  for (const line of [
    'l4lb_udp_sessions_active{listener="u"} 1',
    'l4lb_udp_sessions_total{listener="u"} 2',
    'l4lb_udp_sessions_ended_total{listener="u",reason="responses_done"} 1',
    'l4lb_udp_datagrams_total{listener="u",direction="up"} 2',
    'l4lb_udp_datagrams_total{listener="u",direction="down"} 1',
    'l4lb_udp_datagrams_dropped_total{listener="u",reason="empty"} 1',
    'l4lb_backend_udp_datagrams_total{pool="p",backend="echo",direction="up"} 2',
    'l4lb_listener_bytes_total{listener="u",direction="up"} 8',
    'l4lb_backend_connections_active{pool="p",backend="echo"} 1',
  ]) {
    assert.ok(metrics.includes(line), `missing: ${line}`);
  }
});
