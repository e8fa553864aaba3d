/**
 * TLS termination: l4lb decrypts with a certificate chosen by SNI and relays plain TCP to the
 * backend. Checked with `openssl s_client` and node:tls, including certificate renewal on
 * reload while an open TLS connection keeps working, and a PROXY header before the handshake.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { startServer, waitFor } from '../support/net.js';
import {
  closed, nodeTlsRequest, prefixFirstWrite, recordWhere, sClient, selfSigned, startL4lb, tempDir, type CertFiles,
} from './support.js';

/** A plain TCP backend: echoes every chunk, closes after a chunk containing "bye"; keeps what it got. */
async function plainBackend(t: { after(fn: () => Promise<void>): void }) {
  const received: string[] = [];
  const server = await startServer((s) => {
    let got = '';
    s.on('data', (b: Buffer) => {
      got += b.toString('latin1');
      s.write(b);
      if (got.includes('bye')) s.end();
    });
    s.on('end', () => received.push(got));
    s.on('close', () => {
      if (!received.includes(got)) received.push(got);
    });
  });
  t.after(() => server.close());
  return { port: server.port, received };
}

/** An open node:tls client on which `say` sends text and resolves with the echo. */
async function tlsSession(port: number, servername: string) {
  const s = tls.connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false });
  await once(s, 'secureConnect');
  let buf = '';
  s.on('data', (b: Buffer) => (buf += b.toString()));
  return {
    socket: s,
    serial: s.getPeerCertificate().serialNumber,
    async say(text: string): Promise<void> {
      const want = buf.length + text.length;
      s.write(text);
      await waitFor(() => buf.length >= want, 5000, `echo of ${text}`);
      assert.equal(buf.slice(want - text.length), text);
    },
  };
}

const serialOf = (c: CertFiles) => new X509Certificate(readFileSync(c.cert)).serialNumber;

test('TLS termination picks the certificate by SNI and relays plain text', async (t) => {
  const dir = await tempDir(t);
  const a = await selfSigned(dir, 'a', ['a.example'], 1001);
  await selfSigned(dir, 'wild', ['*.b.example']);
  const backend = await plainBackend(t);
  const yaml = `
listeners:
  - name: tls
    listen: 127.0.0.1:0
    pool: plain
    tls:
      mode: terminate
      certificates:
        - { cert: a.pem, key: a.key }          # relative to the config file's directory
        - { cert: wild.pem, key: wild.key }
  - name: tls-behind-proxy
    listen: 127.0.0.1:0
    pool: plain
    acceptProxy: { trusted: [127.0.0.1/32] }
    tls: { mode: terminate, certificates: [ { cert: a.pem, key: a.key } ] }
pools:
  - { name: plain, backends: [127.0.0.1:${backend.port}] }
`;
  const l4 = await startL4lb(t, dir, yaml);
  const port = l4.port();

  await t.test('node:tls gets the exact-name certificate and the backend gets plain text', async () => {
    const r = await nodeTlsRequest(port, { servername: 'a.example', send: 'hello over tls, bye' });
    assert.equal(r.subjectCN, 'a.example');
    assert.equal(r.text, 'hello over tls, bye');
    await waitFor(() => backend.received.includes('hello over tls, bye'), 5000, 'the plain text at the backend');
    const rec = await recordWhere(l4, (x) => x.serverName === 'a.example');
    assert.equal(rec.pool, 'plain');
  });

  await t.test('a name under the wildcard gets the wildcard certificate', async () => {
    const r = await nodeTlsRequest(port, { servername: 'x.b.example', send: 'wild bye' });
    assert.equal(r.subjectCN, '*.b.example');
    assert.equal(r.text, 'wild bye');
  });

  await t.test('a client offering ALPN completes the handshake with no protocol selected', async () => {
    // The backend behind a terminating listener speaks plain TCP; l4lb cannot pick for it.
    const r = await nodeTlsRequest(port, { servername: 'a.example', alpn: ['h2', 'http/1.1'], send: 'alpn bye' });
    assert.equal(r.alpn, false);
    assert.equal(r.text, 'alpn bye');
  });

  await t.test('no SNI gets the first certificate', async () => {
    const r = await nodeTlsRequest(port, { send: 'nameless bye' });
    assert.equal(r.subjectCN, 'a.example');
  });

  for (const [name, cn] of [['a.example', 'a.example'], ['x.b.example', '*.b.example']]) {
    await t.test(`openssl s_client -servername ${name} is shown ${cn} and gets its echo`, async () => {
      const r = await sClient(port, ['-servername', name], `via openssl ${name} bye\n`);
      assert.equal(r.subject, `CN = ${cn}`, r.stdout);
      assert.match(r.stdout, new RegExp(`^via openssl ${name.replace(/\./g, '\\.')} bye$`, 'm'));
      await waitFor(() => backend.received.includes(`via openssl ${name} bye\n`), 5000, 'plain text at the backend');
    });
  }

  await t.test('a client that does not speak TLS is closed as tls_handshake_failed', async () => {
    const c = net.connect({ port, host: '127.0.0.1' });
    await once(c, 'connect');
    c.on('error', () => {});
    c.on('data', () => {});
    c.write('GET / HTTP/1.0\r\n\r\n');
    await closed(c);
    await waitFor(() => l4.listener().stats.rejected.get('tls_handshake_failed') === 1, 5000, 'rejection counted');
    assert.equal(l4.log.warns('tls_handshake_failed').length, 1);
  });

  await t.test('a PROXY header before the handshake names the client, then TLS is terminated', async () => {
    const raw = net.connect({ port: l4.port(1), host: '127.0.0.1' });
    await once(raw, 'connect');
    raw.write('PROXY TCP4 127.0.0.9 127.0.0.1 4000 443\r\n');
    const r = await nodeTlsRequest(0, { servername: 'a.example', socket: raw, send: 'proxied tls bye' });
    assert.equal(r.subjectCN, 'a.example');
    assert.equal(r.text, 'proxied tls bye');
    const rec = await recordWhere(l4, (x) => x.listener === 'tls-behind-proxy' && x.tries === 1);
    assert.equal(rec.client, '127.0.0.9');
    assert.equal(rec.clientPort, 4000);
  });

  await t.test('a PROXY header and the ClientHello in one segment both count', async () => {
    const raw = net.connect({ port: l4.port(1), host: '127.0.0.1' });
    await once(raw, 'connect');
    const header = Buffer.from('PROXY TCP4 127.0.0.8 127.0.0.1 4008 443\r\n');
    const r = await nodeTlsRequest(0, { servername: 'a.example', socket: prefixFirstWrite(raw, header), send: 'same segment bye' });
    assert.equal(r.text, 'same segment bye');
    const rec = await recordWhere(l4, (x) => x.client === '127.0.0.8');
    assert.equal(rec.clientPort, 4008);
  });

  await t.test('a reload picks up renewed certificate files; an open TLS connection keeps working', async () => {
    const open = await tlsSession(port, 'a.example');
    await open.say('before reload ');
    assert.equal(open.serial, serialOf(a));

    // Renewal as SIGHUP does it: the files change, the config text is read again.
    const renewed = await selfSigned(dir, 'a', ['a.example'], 2002);
    assert.notEqual(serialOf(renewed), open.serial);
    await l4.reload();
    const after = await nodeTlsRequest(port, { servername: 'a.example', send: 'renewed bye' });
    assert.equal(after.serial, serialOf(renewed), 'new connections get the renewed certificate');
    await open.say('after reload ');

    // Reloading the very same config object re-reads the files too.
    const again = serialOf(await selfSigned(dir, 'a', ['a.example'], 3003));
    await l4.proxy.reload(l4.proxy.config);
    assert.equal((await nodeTlsRequest(port, { servername: 'a.example', send: 'bye' })).serial, again);

    // A broken file fails the reload; the certificate in use stays.
    await writeFile(a.cert, 'not a certificate');
    await assert.rejects(l4.reload(), (err: Error & { code?: string }) => err.code === 'L4LB_ERR_CONFIG_INVALID');
    assert.equal((await nodeTlsRequest(port, { servername: 'a.example', send: 'bye' })).serial, again);

    const ended = once(open.socket, 'end');
    await open.say('still open bye');
    await ended;
    open.socket.destroy();
  });
});
