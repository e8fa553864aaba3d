/**
 * TLS passthrough with SNI/ALPN routing, end to end: real TLS clients (`openssl s_client` and
 * node:tls) through l4lb to node:tls backends that each hold their own certificate. l4lb only
 * peeks at the ClientHello, so the certificate a client sees is the chosen backend's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import {
  closed, firstWriteByteByByte, nodeTlsRequest, prefixFirstWrite, recordWhere, sClient, selfSigned, startL4lb, tempDir,
  tlsNameServer, type TestL4lb,
} from './support.js';

test('TLS passthrough routes by server name and ALPN', async (t) => {
  const dir = await tempDir(t);
  const [aCert, wildCert, h2Cert, defCert] = await Promise.all([
    selfSigned(dir, 'a', ['a.example']),
    selfSigned(dir, 'wild', ['*.b.example']),
    selfSigned(dir, 'h2', ['h2.example']),
    selfSigned(dir, 'default', ['default.example']),
  ]);
  const a = await tlsNameServer(t, 'a', aCert);
  const wild = await tlsNameServer(t, 'wild', wildCert);
  const h2 = await tlsNameServer(t, 'h2', h2Cert, { alpn: ['h2', 'http/1.1'] });
  const def = await tlsNameServer(t, 'default', defCert);
  const l4: TestL4lb = await startL4lb(
    t,
    dir,
    `
listeners:
  - name: tls
    listen: 127.0.0.1:0
    pool: default
    tls: { mode: passthrough }
    routes:
      - { serverNames: [a.example], pool: a }
      - { serverNames: ['*.b.example'], pool: wild }
      - { alpn: [h2], pool: h2 }
  - name: tls-behind-proxy
    listen: 127.0.0.1:0
    pool: default
    acceptProxy: { trusted: [127.0.0.1/32] }
    tls: { mode: passthrough }
    routes: [ { serverNames: ['*.b.example'], pool: wild } ]
pools:
  - { name: a, backends: [127.0.0.1:${a.port}] }
  - { name: wild, backends: [127.0.0.1:${wild.port}] }
  - { name: h2, backends: [127.0.0.1:${h2.port}] }
  - { name: default, backends: [127.0.0.1:${def.port}] }
`,
  );
  const port = l4.port();
  const cn = { a: 'a.example', wild: '*.b.example', h2: 'h2.example', default: 'default.example' } as const;

  const cases: { what: string; servername?: string; alpn?: string[]; want: keyof typeof cn }[] = [
    { what: 'an exact name', servername: 'a.example', want: 'a' },
    { what: 'a name under a wildcard', servername: 'x.b.example', want: 'wild' },
    { what: 'the wildcard base name (not covered)', servername: 'b.example', want: 'default' },
    { what: 'two labels under a wildcard (not covered)', servername: 'y.x.b.example', want: 'default' },
    { what: 'upper case with a trailing dot', servername: 'A.EXAMPLE.', want: 'a' },
    { what: 'no SNI at all', want: 'default' },
    { what: 'ALPN h2 with an unrouted name', servername: 'c.example', alpn: ['h2', 'http/1.1'], want: 'h2' },
    { what: 'ALPN h2 with a routed exact name (the name wins)', servername: 'a.example', alpn: ['h2'], want: 'a' },
    { what: 'ALPN http/1.1 only', servername: 'c.example', alpn: ['http/1.1'], want: 'default' },
  ];
  for (const c of cases) {
    await t.test(`node:tls with ${c.what} reaches ${c.want}`, async () => {
      const r = await nodeTlsRequest(port, { servername: c.servername, alpn: c.alpn });
      assert.match(r.text, new RegExp(`^name=${c.want} `));
      assert.equal(r.subjectCN, cn[c.want], "the backend's own certificate");
      if (c.want === 'h2') assert.equal(r.alpn, 'h2', 'ALPN negotiated end to end');
    });
  }

  const sclientCases: { args: string[]; want: keyof typeof cn }[] = [
    { args: ['-servername', 'a.example'], want: 'a' },
    { args: ['-servername', 'x.b.example'], want: 'wild' },
    { args: ['-servername', 'y.x.b.example'], want: 'default' },
    { args: ['-noservername'], want: 'default' },
    { args: ['-servername', 'c.example', '-alpn', 'h2'], want: 'h2' },
  ];
  for (const c of sclientCases) {
    await t.test(`openssl s_client ${c.args.join(' ')} reaches ${c.want}`, async () => {
      const r = await sClient(port, c.args);
      // The exit status is not checked: s_client reports a missing close_notify from node:tls.
      assert.match(r.stdout, new RegExp(`^name=${c.want} `, 'm'), `${r.stdout}\n${r.stderr}`);
      assert.equal(r.subject, `CN = ${cn[c.want]}`);
      if (c.want === 'h2') assert.match(r.stdout, /^ALPN protocol: h2$/m);
    });
  }

  await t.test('a ClientHello arriving one byte per TCP segment is still routed', async () => {
    const raw = net.connect({ port, host: '127.0.0.1' });
    await once(raw, 'connect');
    const r = await nodeTlsRequest(port, { servername: 'x.b.example', socket: firstWriteByteByByte(raw) });
    assert.match(r.text, /^name=wild sni=x\.b\.example /);
    assert.equal(r.subjectCN, '*.b.example');
  });

  await t.test('behind a PROXY header (same segment as the ClientHello) SNI still routes', async () => {
    const raw = net.connect({ port: l4.port(1), host: '127.0.0.1' });
    await once(raw, 'connect');
    const header = Buffer.from('PROXY TCP4 127.0.0.8 127.0.0.1 4008 443\r\n');
    const r = await nodeTlsRequest(0, { servername: 'z.b.example', socket: prefixFirstWrite(raw, header) });
    assert.match(r.text, /^name=wild sni=z\.b\.example /);
    const rec = await recordWhere(l4, (x) => x.client === '127.0.0.8');
    assert.equal(rec.pool, 'wild');
    assert.equal(rec.serverName, 'z.b.example');
  });

  await t.test('input that is not TLS is closed as bad_client_hello without reaching a backend', async () => {
    const accepted = a.accepted() + wild.accepted() + h2.accepted() + def.accepted();
    const c = net.connect({ port, host: '127.0.0.1' });
    await once(c, 'connect');
    const localPort = c.localPort!;
    let reply = 0;
    c.on('data', (b: Buffer) => (reply += b.length));
    c.on('error', () => {});
    c.write('GET / HTTP/1.0\r\n\r\n');
    await closed(c);
    assert.equal(reply, 0);
    const rec = await recordWhere(l4, (x) => x.clientPort === localPort);
    assert.equal(rec.reason, 'bad_client_hello');
    assert.equal(rec.tries, 0);
    assert.equal(l4.listener().stats.rejected.get('bad_client_hello'), 1);
    const w = l4.log.warns('bad_client_hello');
    assert.equal(w.length, 1);
    assert.equal(w[0].detail, 'not_tls');
    assert.equal(a.accepted() + wild.accepted() + h2.accepted() + def.accepted(), accepted);
  });

  await t.test('the access log names the server name and the pool it chose', async () => {
    const rec = await recordWhere(l4, (x) => x.serverName === 'x.b.example');
    assert.equal(rec.pool, 'wild');
    assert.equal(rec.backendAddress, `127.0.0.1:${wild.port}`);
  });
});
