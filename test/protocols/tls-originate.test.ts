/**
 * TLS origination: plain clients, l4lb speaks TLS to the backend. The backend's certificate is
 * verified against the pool's CA bundle and server name; a certificate that does not verify
 * fails the connect (logged, counted), unless verification is explicitly switched off.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { connect, readAll } from '../support/net.js';
import { makeCa, recordWhere, signedBy, startL4lb, tempDir } from './support.js';

test('TLS towards backends is verified with the pool CA and server name', async (t) => {
  const dir = await tempDir(t);
  const ca = await makeCa(dir, 'ca', 'l4lb test CA');
  await makeCa(dir, 'other-ca', 'some other CA'); // the wrong-ca pool's CA
  const leaf = await signedBy(dir, 'backend', 'backend.example', ca);

  // A TLS echo backend that remembers the server name each client asked for.
  const names: string[] = [];
  const sockets = new Set<tls.TLSSocket>();
  const backend = tls.createServer({ cert: await readFile(leaf.cert), key: await readFile(leaf.key) }, (s) => {
    names.push(s.servername || '-');
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.pipe(s);
  });
  backend.on('tlsClientError', () => {});
  backend.listen(0, '127.0.0.1');
  await once(backend, 'listening');
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => backend.close(r));
  });
  const bp = (backend.address() as net.AddressInfo).port;

  // A backend that resets as soon as the ClientHello arrives.
  const resetter = net.createServer((s) => s.once('data', () => s.resetAndDestroy()));
  resetter.listen(0, '127.0.0.1');
  await once(resetter, 'listening');
  t.after(() => new Promise((r) => resetter.close(r)));
  const rp = (resetter.address() as net.AddressInfo).port;

  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - { name: verified, listen: 127.0.0.1:0, pool: verified }
  - { name: wrong-ca, listen: 127.0.0.1:0, pool: wrong-ca }
  - { name: wrong-name, listen: 127.0.0.1:0, pool: wrong-name }
  - { name: insecure, listen: 127.0.0.1:0, pool: insecure }
  - { name: reset, listen: 127.0.0.1:0, pool: reset }
pools:
  - { name: verified, tls: { ca: ca.pem, servername: backend.example }, backends: [127.0.0.1:${bp}] }
  - { name: wrong-ca, tls: { ca: other-ca.pem, servername: backend.example }, backends: [127.0.0.1:${bp}] }
  - { name: wrong-name, tls: { ca: ca.pem, servername: other.example }, backends: [127.0.0.1:${bp}] }
  - { name: insecure, tls: { insecureSkipVerify: true }, backends: [127.0.0.1:${bp}] }
  - { name: reset, tls: { ca: ca.pem, servername: backend.example }, backends: [127.0.0.1:${rp}] }
`,
  );

  /** Sends `text` in plain TCP through the listener at `index`; returns the reply and client port. */
  async function plain(index: number, text: string): Promise<{ reply: string; port: number }> {
    const c = await connect(l4.port(index));
    c.on('error', () => {});
    const port = c.localPort!;
    const reply = readAll(c).catch(() => Buffer.alloc(0));
    c.end(text);
    const buf = await reply;
    c.destroy();
    return { reply: buf.toString(), port };
  }

  await t.test('a backend certificate signed by the pool CA for the server name is accepted', async () => {
    const r = await plain(0, 'over verified tls');
    assert.equal(r.reply, 'over verified tls');
    assert.equal(names.at(-1), 'backend.example', 'the configured server name was sent');
  });

  for (const [index, pool, why] of [
    [1, 'wrong-ca', /unable to verify the first certificate/],
    [2, 'wrong-name', /other\.example\. is not in the cert's altnames/],
  ] as const) {
    await t.test(`a certificate that does not verify (${pool}) fails the connect`, async () => {
      const r = await plain(index, 'must not arrive');
      assert.equal(r.reply, '');
      const rec = await recordWhere(l4, (x) => x.clientPort === r.port);
      assert.equal(rec.reason, 'backend_connect_failed');
      assert.match(rec.error ?? '', why);
      const warn = l4.log.warns().find((w) => w.pool === pool && w.code === 'L4LB_ERR_CONNECT_FAILED');
      assert.ok(warn, `a warning for ${pool}: ${JSON.stringify(l4.log.warns())}`);
      assert.match(warn.msg, /^TLS to 127\.0\.0\.1:\d+ failed: /);
    });
  }

  await t.test('insecureSkipVerify connects without verifying', async () => {
    const r = await plain(3, 'over unverified tls');
    assert.equal(r.reply, 'over unverified tls');
  });

  await t.test('a backend that resets during the handshake fails the connect; l4lb carries on', async () => {
    const r = await plain(4, 'x');
    assert.equal(r.reply, '');
    const rec = await recordWhere(l4, (x) => x.clientPort === r.port);
    assert.equal(rec.reason, 'backend_connect_failed');
    assert.equal((await plain(0, 'still fine')).reply, 'still fine');
  });
});
