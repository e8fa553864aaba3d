/**
 * Slow-loris at layer 4: clients that connect and then send nothing, or trickle a header a
 * byte at a time, must not hold a connection. Listeners that read before routing (PROXY,
 * TLS passthrough, TLS termination) cut them at the preread timeout — a deadline, not an
 * inactivity timer — and plain listeners at the idle timeout.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { echoServer, waitFor } from '../support/net.js';
import {
  assertCountsBalance, checkEcho, closed, recordWhere, selfSigned, sleep, startL4lb, tempDir,
} from './support.js';

const TIMEOUT_MS = 300;

/** Opens a connection, runs `behave` on it, and returns how long until l4lb closed it. */
async function timeToClose(port: number, behave: (c: net.Socket) => Promise<void> | void = () => {}): Promise<{ ms: number; localPort: number }> {
  const c = net.connect({ port, host: '127.0.0.1' });
  c.on('error', () => {});
  c.on('data', () => {});
  await once(c, 'connect');
  const localPort = c.localPort!;
  const t0 = Date.now();
  const gone = closed(c);
  void behave(c);
  await gone;
  return { ms: Date.now() - t0, localPort };
}

test('silent and trickling clients are cut at the preread timeout', async (t) => {
  const dir = await tempDir(t);
  await selfSigned(dir, 'site', ['site.example']);
  const backend = await echoServer();
  t.after(() => backend.close());
  const l4 = await startL4lb(
    t,
    dir,
    `
x-timeouts: &short { preread: ${TIMEOUT_MS}ms, idle: ${TIMEOUT_MS}ms }
listeners:
  - { name: proxy, listen: 127.0.0.1:0, pool: echo, timeouts: *short, acceptProxy: { trusted: [127.0.0.1/32] } }
  - { name: passthrough, listen: 127.0.0.1:0, pool: echo, timeouts: *short, tls: { mode: passthrough } }
  - name: terminate
    listen: 127.0.0.1:0
    pool: echo
    timeouts: *short
    tls: { mode: terminate, certificates: [ { cert: site.pem, key: site.key } ] }
  - { name: plain, listen: 127.0.0.1:0, pool: echo, timeouts: *short }
  - name: proxy-terminate
    listen: 127.0.0.1:0
    pool: echo
    timeouts: { preread: 600ms }
    acceptProxy: { trusted: [127.0.0.1/32] }
    tls: { mode: terminate, certificates: [ { cert: site.pem, key: site.key } ] }
pools:
  - { name: echo, backends: [127.0.0.1:${backend.port}] }
`,
  );

  for (const [index, name] of ['proxy', 'passthrough', 'terminate'].entries()) {
    await t.test(`a silent client on the ${name} listener is closed at the preread timeout`, async () => {
      const accepted = backend.accepted;
      const since = l4.records.length;
      const r = await timeToClose(l4.port(index));
      assert.ok(r.ms >= TIMEOUT_MS - 50 && r.ms < 5000, `closed after ${r.ms}ms`);
      const rec = await recordWhere(l4, (x) => x.clientPort === r.localPort, 5000, since);
      assert.equal(rec.reason, 'preread_timeout');
      assert.equal(backend.accepted, accepted, 'no backend connection');
      assert.equal(l4.listener(index).stats.rejected.get('preread_timeout'), 1);
      assert.equal(l4.log.warns('preread_timeout').filter((w) => w.listener === name).length, 1);
    });
  }

  await t.test('a PROXY header trickled a byte every 50 ms is cut at the deadline, not kept alive', async () => {
    const header = Buffer.from('PROXY TCP4 127.0.0.9 127.0.0.1 4000 80\r\n'); // 40 bytes: 2 s at this pace
    const since = l4.records.length;
    const r = await timeToClose(l4.port(0), async (c) => {
      for (const byte of header) {
        if (c.destroyed) return;
        c.write(Buffer.of(byte));
        await sleep(50);
      }
    });
    assert.ok(r.ms >= TIMEOUT_MS - 50 && r.ms < 1500, `closed after ${r.ms}ms`);
    assert.equal((await recordWhere(l4, (x) => x.clientPort === r.localPort, 5000, since)).reason, 'preread_timeout');
  });

  await t.test('a PROXY header then no handshake spends one preread deadline, not two', async () => {
    // 500 ms for the header, then silence: the handshake gets what is left of the 600 ms
    // (closing near 600 ms), not 600 ms of its own (which would close near 1100 ms).
    const r = await timeToClose(l4.port(4), async (c) => {
      await sleep(500);
      c.write('PROXY TCP4 127.0.0.9 127.0.0.1 4000 443\r\n');
    });
    assert.ok(r.ms >= 550 && r.ms < 1000, `closed after ${r.ms}ms`);
    const rec = await recordWhere(l4, (x) => x.clientPort === 4000 && x.listener === 'proxy-terminate');
    assert.equal(rec.reason, 'preread_timeout');
  });

  await t.test('a silent client on a plain listener is closed at the idle timeout', async () => {
    const since = l4.records.length;
    const r = await timeToClose(l4.port(3));
    assert.ok(r.ms >= TIMEOUT_MS - 50 && r.ms < 5000, `closed after ${r.ms}ms`);
    assert.equal((await recordWhere(l4, (x) => x.clientPort === r.localPort, 5000, since)).reason, 'idle_timeout');
  });
});

test('a crowd of silent clients is cut while a real client is served', async (t) => {
  const dir = await tempDir(t);
  const backend = await echoServer();
  t.after(() => backend.close());
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - { name: proxy, listen: 127.0.0.1:0, pool: echo, timeouts: { preread: ${TIMEOUT_MS}ms }, acceptProxy: { trusted: [127.0.0.1/32] } }
pools:
  - { name: echo, backends: [127.0.0.1:${backend.port}] }
`,
  );
  const N = 40;
  const t0 = Date.now();
  const silent = Array.from({ length: N }, () => timeToClose(l4.port()));
  await checkEcho(l4.port(), Buffer.from('PROXY TCP4 127.0.0.9 127.0.0.1 4000 80\r\n'));
  await Promise.all(silent);
  const seconds = Math.ceil((Date.now() - t0) / 1000);
  const stats = l4.listener().stats;
  await waitFor(() => stats.rejected.get('preread_timeout') === N, 5000, 'every silent client counted');
  await waitFor(() => stats.active === 0, 5000, 'all closed');
  assertCountsBalance(l4.listener());
  assert.equal(stats.closed.get('preread_timeout'), undefined, 'counted once, as a rejection');
  assert.equal(backend.accepted, 1, 'only the real client reached the backend');
  const lines = l4.log.warns('preread_timeout').length;
  assert.ok(lines >= 1 && lines <= 10 * seconds, `${lines} warning lines for ${N} timeouts`);
});
