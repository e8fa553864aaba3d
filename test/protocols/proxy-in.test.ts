/**
 * PROXY protocol in, from a real sender: HAProxy (`send-proxy`, `send-proxy-v2`) in front of
 * an l4lb listener with `acceptProxy`, and a PROXY-aware HAProxy frontend behind it. l4lb must
 * log, filter and forward the client named in the header, and refuse headers from peers it
 * does not trust.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, readAll, startServer, waitFor } from '../support/net.js';
import { encodeProxyV2 } from '../../src/protocol/proxy-protocol.js';
import {
  assertCountsBalance, freePort, httpGet, proxyEchoFrontend, recordWhere, splitHttp, startHaproxy, startL4lb, tempDir,
} from './support.js';

test('l4lb behind HAProxy sees, filters and forwards the client named in PROXY v1 and v2 headers', async (t) => {
  const dir = await tempDir(t);
  const [edgeV1, edgeV2, origin] = [await freePort(), await freePort(), await freePort()];
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - name: in
    listen: 127.0.0.1:0
    pool: origin
    acceptProxy: { trusted: [127.0.0.1/32] }
    acl: [ { deny: 127.0.0.4 } ]
pools:
  - { name: origin, proxyProtocol: v1, backends: [127.0.0.1:${origin}] }
`,
  );
  const l4port = l4.port();
  // edge: what clients connect to, sending PROXY headers to l4lb; origin: PROXY-aware backend
  // that answers with the client address (%ci:%cp) and original destination (%fi:%fp) it read.
  await startHaproxy(
    t,
    dir,
    `frontend edge_v1
  bind 127.0.0.1:${edgeV1}
  mode tcp
  default_backend l4lb_v1
backend l4lb_v1
  mode tcp
  server l4lb 127.0.0.1:${l4port} send-proxy
frontend edge_v2
  bind 127.0.0.1:${edgeV2}
  mode tcp
  default_backend l4lb_v2
backend l4lb_v2
  mode tcp
  server l4lb 127.0.0.1:${l4port} send-proxy-v2
${proxyEchoFrontend(origin, '%ci:%cp %fi:%fp')}`,
    [edgeV1, edgeV2, origin],
  );

  for (const [version, edge] of [['v1', edgeV1], ['v2', edgeV2]] as const) {
    await t.test(`the client address from a ${version} header is logged and passed on`, async () => {
      const r = await httpGet(edge, '127.0.0.2');
      // The origin saw the real client and the address it originally connected to.
      assert.equal(r.body, `127.0.0.2:${r.clientPort} 127.0.0.1:${edge}`);
      const rec = await recordWhere(l4, (x) => x.clientPort === r.clientPort);
      assert.equal(rec.client, '127.0.0.2');
      assert.equal(rec.backendAddress, `127.0.0.1:${origin}`);
      assert.equal(rec.reason, 'backend_closed');
    });

    await t.test(`the ACL applies to the address in a ${version} header`, async () => {
      const rejected = l4.listener().stats.rejected.get('acl') ?? 0;
      const r = await httpGet(edge, '127.0.0.4');
      assert.equal(r.status, '', 'closed without a response');
      const rec = await recordWhere(l4, (x) => x.clientPort === r.clientPort);
      assert.equal(rec.client, '127.0.0.4');
      assert.equal(rec.reason, 'acl');
      assert.equal(rec.tries, 0, 'no backend was contacted');
      assert.equal(l4.listener().stats.rejected.get('acl'), rejected + 1);
    });
  }

  await t.test('a client connecting directly from an untrusted address is refused', async () => {
    const warned = l4.log.warns('proxy_untrusted').length;
    const rejected = l4.listener().stats.rejected.get('proxy_untrusted') ?? 0;
    const c = await connect(l4port, { localAddress: '127.0.0.3' });
    c.on('error', () => {});
    const reply = readAll(c).catch(() => Buffer.alloc(0));
    c.write('PROXY TCP4 10.9.9.9 127.0.0.1 1111 80\r\nGET / HTTP/1.0\r\n\r\n');
    assert.equal((await reply).length, 0);
    await waitFor(() => l4.listener().stats.rejected.get('proxy_untrusted') === rejected + 1, 5000, 'untrusted rejection counted');
    const lines = l4.log.warns('proxy_untrusted');
    assert.equal(lines.length, warned + 1);
    assert.equal(lines.at(-1)!.client, '127.0.0.3');
  });

  await t.test('a v2 LOCAL header keeps the socket address', async () => {
    const c = await connect(l4port);
    const port = c.localPort!;
    const local = Buffer.from('0d0a0d0a000d0a515549540a' + '20' + '00' + '0000', 'hex');
    const reply = readAll(c);
    c.write(Buffer.concat([local, Buffer.from('GET / HTTP/1.0\r\n\r\n')]));
    const body = splitHttp((await reply).toString()).body;
    c.destroy();
    assert.equal(body, `127.0.0.1:${port} 127.0.0.1:${l4port}`);
    const rec = await recordWhere(l4, (x) => x.clientPort === port);
    assert.equal(rec.client, '127.0.0.1');
    assert.equal(rec.reason, 'backend_closed');
  });
});

test("HAProxy's PROXY v2 health checks (LOCAL command) pass through l4lb", async (t) => {
  // HAProxy sends a v2 LOCAL header on the checks of a send-proxy-v2 server. The check here
  // expects the backend's banner, so it only passes when l4lb accepted the LOCAL header
  // (keeping the checker's own address) and relayed to the backend.
  const dir = await tempDir(t);
  const stats = await freePort();
  const backend = await startServer((s) => {
    s.end('l4lb-backend-ok\n');
    s.resume();
  });
  t.after(() => backend.close());
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - { name: in, listen: 127.0.0.1:0, pool: p, acceptProxy: { trusted: [127.0.0.1/32] } }
pools:
  - { name: p, backends: [127.0.0.1:${backend.port}] }
`,
  );
  await startHaproxy(
    t,
    dir,
    // No frontend uses this backend: every connection l4lb sees is a health check.
    `backend l4lb
  mode tcp
  option tcp-check
  tcp-check expect string l4lb-backend-ok
  server l4lb 127.0.0.1:${l4.port()} send-proxy-v2 check inter 100ms rise 1 fall 1
frontend stats
  bind 127.0.0.1:${stats}
  mode http
  http-request return status 200 content-type text/plain lf-string "%[srv_is_up(l4lb/l4lb)]"
`,
    [stats],
  );
  await waitFor(() => l4.records.filter((r) => r.tries === 1).length >= 2, 5000, 'health checks relayed to the backend');
  for (const rec of l4.records) assert.equal(rec.client, '127.0.0.1');
  assert.equal(l4.listener().stats.rejected.size, 0, 'nothing rejected');
  assert.equal(l4.log.warns().length, 0, 'no warnings');
  const up = await httpGet(stats, '127.0.0.1');
  assert.equal(up.body, '1', 'HAProxy sees l4lb as up');
});

test('clients that reset at once from a trusted address are not taken for untrusted ones', async (t) => {
  // A reset that lands before l4lb looks at the socket leaves it without a peer address;
  // that client left, it was not refused (HAProxy's plain TCP checks close this way).
  const dir = await tempDir(t);
  const backend = await startServer((s) => s.resume());
  t.after(() => backend.close());
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - { name: in, listen: 127.0.0.1:0, pool: p, acceptProxy: { trusted: [127.0.0.1/32] } }
pools:
  - { name: p, backends: [127.0.0.1:${backend.port}] }
`,
  );
  const N = 50;
  await Promise.all(
    Array.from({ length: N }, async () => {
      const c = await connect(l4.port());
      c.resetAndDestroy();
    }),
  );
  const stats = l4.listener().stats;
  await waitFor(() => stats.accepted === N && stats.active === 0, 5000, 'every reset connection handled');
  assert.equal(stats.rejected.size, 0, `nothing rejected: ${JSON.stringify([...stats.rejected])}`);
  assert.equal(l4.log.warns().length, 0);
  assert.equal(stats.closed.get('client_aborted'), N);
  assertCountsBalance(l4.listener());
});

test('TLVs of a received v2 header (authority, unique id) are passed on in the v2 header l4lb sends', async (t) => {
  const dir = await tempDir(t);
  const origin = await freePort();
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - { name: in, listen: 127.0.0.1:0, pool: origin, acceptProxy: { trusted: [127.0.0.1/32] } }
pools:
  - { name: origin, proxyProtocol: v2, backends: [127.0.0.1:${origin}] }
`,
  );
  // A PROXY-aware HAProxy answering with the address and the TLVs it read from l4lb's header.
  await startHaproxy(t, dir, proxyEchoFrontend(origin, '%ci %[fc_pp_authority] %[fc_pp_unique_id]'), [origin]);
  const header = encodeProxyV2({
    command: 'PROXY', family: 'tcp4', sourceAddress: '10.1.2.3', sourcePort: 4321, destAddress: '10.0.0.1', destPort: 443,
    authority: 'shop.example', uniqueId: Buffer.from('req-42'), crc32c: true,
  });
  const c = await connect(l4.port());
  const reply = readAll(c);
  c.write(Buffer.concat([header, Buffer.from('GET / HTTP/1.0\r\n\r\n')]));
  const body = splitHttp((await reply).toString()).body;
  assert.equal(body, '10.1.2.3 shop.example req-42');
});
