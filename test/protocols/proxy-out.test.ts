/**
 * PROXY protocol out, against real receivers: l4lb pools with `proxyProtocol: v1` and `v2` in
 * front of HAProxy (`accept-proxy`) and nginx (`listen … proxy_protocol`), each answering with
 * the client address it read from the header. With SNI routing, the v2 header also carries the
 * server name as a PP2_TYPE_AUTHORITY TLV, which HAProxy shows as `fc_pp_authority`.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { once } from 'node:events';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { decodeProxyHeader } from '../../src/protocol/proxy-protocol.js';
import { startServer, waitFor } from '../support/net.js';
import {
  freePort, httpGet, proxyEchoFrontend, proxyProtocolServer, tlsOptions, selfSigned, splitHttp, startHaproxy, startL4lb, startNginx,
  tempDir,
} from './support.js';

/** Client source address: not the proxy's own 127.0.0.1, so a peer echoing it proves the header was used. */
const CLIENT = '127.0.0.2';

test('HAProxy behind l4lb reads the client address from PROXY v1 and v2 headers', async (t) => {
  const dir = await tempDir(t);
  const hp = await freePort();
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - { name: v1, listen: 127.0.0.1:0, pool: v1 }
  - { name: v2, listen: 127.0.0.1:0, pool: v2 }
  - { name: v1-ipv6, listen: '[::1]:0', pool: v1 }
  - { name: v2-ipv6, listen: '[::1]:0', pool: v2 }
pools:
  - { name: v1, proxyProtocol: v1, backends: [127.0.0.1:${hp}] }
  - { name: v2, proxyProtocol: v2, backends: [127.0.0.1:${hp}] }
`,
  );
  await startHaproxy(t, dir, proxyEchoFrontend(hp, '%ci:%cp'), [hp]);
  for (const [i, version] of ['v1', 'v2'].entries()) {
    await t.test(`with ${version}`, async () => {
      const r = await httpGet(l4.port(i), CLIENT);
      assert.match(r.status, /^HTTP\/1\.[01] 200/, r.status);
      assert.equal(r.body, `${CLIENT}:${r.clientPort}`);
    });
    await t.test(`with ${version} for an IPv6 client (TCP6 / AF_INET6)`, async () => {
      const r = await httpGet(l4.port(i + 2), '::1', '::1');
      assert.match(r.status, /^HTTP\/1\.[01] 200/, r.status);
      assert.equal(r.body, `::1:${r.clientPort}`);
    });
  }
});

test('nginx behind l4lb reads the client address from PROXY v1 and v2 headers', async (t) => {
  const dir = await tempDir(t);
  const np = await freePort();
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - { name: v1, listen: 127.0.0.1:0, pool: v1 }
  - { name: v2, listen: 127.0.0.1:0, pool: v2 }
pools:
  - { name: v1, proxyProtocol: v1, backends: [127.0.0.1:${np}] }
  - { name: v2, proxyProtocol: v2, backends: [127.0.0.1:${np}] }
`,
  );
  await startNginx(t, dir, proxyProtocolServer(np, '$proxy_protocol_addr:$proxy_protocol_port'), [np]);
  for (const [i, version] of ['v1', 'v2'].entries()) {
    await t.test(`with ${version}`, async () => {
      const r = await httpGet(l4.port(i), CLIENT);
      assert.match(r.status, /^HTTP\/1\.[01] 200/, r.status);
      assert.equal(r.body, `${CLIENT}:${r.clientPort}`);
    });
  }
});

test('health checks of a pool that sends PROXY headers send one too (v1 UNKNOWN, v2 LOCAL), so a backend that requires it answers', async (t) => {
  const dir = await tempDir(t);
  const np = await freePort();
  // The same send-expect check on three pools of one nginx that requires the header: only the
  // pools that speak PROXY to it can pass.
  const check = `{ type: send-expect, send: "GET / HTTP/1.0\\r\\n\\r\\n", expect: "200 OK", interval: 200ms, timeout: 150ms, rise: 1, fall: 1, jitter: 0 }`;
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - { name: v1, listen: 127.0.0.1:0, pool: v1 }
pools:
  - { name: v1, proxyProtocol: v1, backends: [127.0.0.1:${np}], healthCheck: ${check} }
  - { name: v2, proxyProtocol: v2, backends: [127.0.0.1:${np}], healthCheck: ${check} }
  - { name: plain, backends: [127.0.0.1:${np}], healthCheck: ${check} }
`,
  );
  await startNginx(t, dir, proxyProtocolServer(np, 'ok'), [np]);
  const backend = (pool: string) => l4.proxy.pools.get(pool)!.backends[0];
  await waitFor(() => ['v1', 'v2', 'plain'].every((p) => backend(p).lastCheckAt > 0), 10_000, 'checks of every pool');
  await waitFor(() => backend('v1').healthy && backend('v2').healthy, 10_000, 'the PROXY pools healthy');
  await waitFor(() => !backend('plain').healthy, 10_000, 'the plain pool unhealthy');
  assert.equal(backend('v1').snapshot(Date.now()).lastCheckOk, true);
  assert.equal(backend('v2').snapshot(Date.now()).lastCheckOk, true);
  assert.equal(backend('plain').snapshot(Date.now()).lastCheckOk, false, 'without a header nginx refuses the request');
});

test('a v2 header sent after SNI routing carries the server name as the authority TLV', async (t) => {
  // client --TLS, SNI a.example--> l4lb (passthrough, routes by SNI) --PROXY v2 + same TLS-->
  // HAProxy (accept-proxy, terminates TLS) answering with the address and the TLV it read.
  const dir = await tempDir(t);
  const cert = await selfSigned(dir, 'a', ['a.example']);
  const pem = join(dir, 'a-combined.pem');
  await writeFile(pem, Buffer.concat([await readFile(cert.cert), await readFile(cert.key)]));
  const [hpA, hpOther] = [await freePort(), await freePort()];
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - name: sni
    listen: 127.0.0.1:0
    pool: other
    tls: { mode: passthrough }
    routes: [ { serverNames: [a.example], pool: a } ]
pools:
  - { name: a, proxyProtocol: v2, backends: [127.0.0.1:${hpA}] }
  - { name: other, proxyProtocol: v2, backends: [127.0.0.1:${hpOther}] }
`,
  );
  const answer = 'http-request return status 200 content-type text/plain lf-string "%ci:%cp authority=%[fc_pp_authority]"';
  await startHaproxy(
    t,
    dir,
    `frontend a
  bind 127.0.0.1:${hpA} accept-proxy ssl crt ${pem}
  mode http
  ${answer}
frontend other
  bind 127.0.0.1:${hpOther} accept-proxy ssl crt ${pem}
  mode http
  ${answer}
`,
    [hpA, hpOther],
  );

  async function get(servername: string | undefined): Promise<{ body: string; clientPort: number; cn: unknown }> {
    const s = tls.connect(tlsOptions({ port: l4.port(), host: '127.0.0.1', localAddress: CLIENT, servername, rejectUnauthorized: false }));
    await once(s, 'secureConnect');
    const clientPort = s.localPort!;
    const cn = s.getPeerCertificate().subject?.CN;
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.write('GET / HTTP/1.0\r\nHost: a.example\r\n\r\n');
    await once(s, 'end');
    s.destroy();
    return { body: splitHttp(Buffer.concat(chunks).toString()).body, clientPort, cn };
  }

  const routed = await get('a.example');
  assert.equal(routed.cn, 'a.example', 'TLS went through untouched to HAProxy');
  assert.equal(routed.body, `${CLIENT}:${routed.clientPort} authority=a.example`);

  // Without SNI there is no name to send: the default route, and no authority TLV.
  const unnamed = await get(undefined);
  assert.match(unnamed.body, new RegExp(`^${CLIENT.replace(/\./g, '\\.')}:${unnamed.clientPort} authority=-?$`));
});

test('a v2 header after passthrough carries the SNI but not the ALPN the client merely offered', async (t) => {
  // In passthrough the backend negotiates ALPN, so l4lb cannot know the protocol in use.
  const dir = await tempDir(t);
  const heads: Buffer[] = [];
  const capture = await startServer((s) => {
    let got = Buffer.alloc(0);
    s.on('data', (b: Buffer) => {
      got = Buffer.concat([got, b]);
      // Header and ClientHello may come in separate segments: wait for both.
      if (got.length < 200) return;
      heads.push(got);
      s.destroy();
    });
  });
  t.after(() => capture.close());
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - { name: sni, listen: 127.0.0.1:0, pool: capture, tls: { mode: passthrough } }
pools:
  - { name: capture, proxyProtocol: v2, backends: [127.0.0.1:${capture.port}] }
`,
  );
  const s = tls.connect(tlsOptions({ port: l4.port(), host: '127.0.0.1', localAddress: CLIENT, servername: 'a.example', ALPNProtocols: ['h2', 'http/1.1'] }));
  s.on('error', () => {});
  const clientPort = await new Promise<number>((resolve) => s.once('connect', () => resolve(s.localPort!)));
  await waitFor(() => heads.length === 1, 5000, 'the header at the backend');
  s.destroy();
  const r = decodeProxyHeader(heads[0]);
  assert.equal(r.status, 'done');
  if (r.status !== 'done') return;
  assert.equal(r.header.sourceAddress, CLIENT);
  assert.equal(r.header.sourcePort, clientPort);
  assert.equal(r.header.destPort, l4.port());
  assert.equal(r.header.authority, 'a.example');
  assert.equal(r.header.alpn, undefined);
  assert.equal(heads[0][r.consumed], 0x16, 'the ClientHello follows the header untouched');
});
