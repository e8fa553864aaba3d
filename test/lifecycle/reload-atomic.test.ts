/**
 * A reload that fails part-way changes nothing: a listener that stays but whose new
 * certificate is unusable makes the whole reload fail before the switch, so no new pool,
 * listener or setting takes effect, and the old config keeps serving.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { startProxy } from '../../src/proxy/proxy.js';
import { parseConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/observability/log.js';
import { echoServer } from '../support/net.js';

test('a reload whose certificate cannot be loaded changes nothing and leaves no listener behind', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-atomic-'));
  const backend = await echoServer();
  const cert = join(dir, 'a.pem');
  const key = join(dir, 'a.key');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=a.example', '-keyout', key, '-out', cert], { stdio: 'ignore' });
  const yaml = (extra: string) => `
log: { access: off }
listeners:
  - { name: tls, listen: 127.0.0.1:0, pool: p, tls: { mode: terminate, certificates: [ { cert: ${cert}, key: ${key} } ] } }
${extra}
pools:
  - { name: p, backends: [ 127.0.0.1:${backend.port} ] }
  - { name: q, backends: [ 127.0.0.1:${backend.port} ] }
`;
  const proxy = await startProxy(parseConfigText(yaml(''), join(dir, 'l4lb.yaml')), { logger: silentLogger() });
  t.after(async () => {
    await proxy.close();
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const before = proxy.addresses();

  // Break the certificate and add a listener in the same reload.
  writeFileSync(cert, 'not a certificate');
  const next = parseConfigText(yaml('  - { name: extra, listen: 127.0.0.1:0, pool: q }'), join(dir, 'l4lb.yaml'));
  await assert.rejects(proxy.reload(next));
  assert.deepEqual(proxy.addresses(), before, 'no listener added');
  assert.equal(proxy.listeners.has('extra'), false);
  assert.equal(proxy.stats.reloadFailures, 1);
  // The old listener still terminates TLS with the old certificate loaded in memory.
  const { connect } = await import('node:tls');
  const s = connect({ port: before[0].port, host: '127.0.0.1', servername: 'a.example', rejectUnauthorized: false });
  await new Promise<void>((resolve, reject) => {
    s.once('secureConnect', () => resolve());
    s.once('error', reject);
  });
  s.end('ping');
  const reply = await new Promise<string>((resolve) => {
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString()));
    s.on('end', () => resolve(got));
  });
  assert.equal(reply, 'ping');
  s.destroy();
  // Nothing is listening where the failed reload would have opened a listener: the only
  // bound port is the original one.
  assert.equal(net.isIP(before[0].host), 4);
});
