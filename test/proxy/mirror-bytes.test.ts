/**
 * Mirroring is byte-exact: for many concurrent connections, the SHA-256 of what each mirror
 * connection received equals what the primary backend received (and what the client sent),
 * across half-close: the client's FIN reaches the mirror after its last byte. What the mirror
 * sends back never reaches the client. Also run with the fast path off
 * (data-path-fallback.test.ts), where client bytes come as 'data' chunks the tee shares.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes, randomInt } from 'node:crypto';
import { startProxy } from '../../src/proxy/proxy.js';
import { normalizeConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/observability/log.js';
import type { AccessRecord } from '../../src/proxy/connection.js';
import { connect, startServer, waitFor, type TestServer } from '../support/net.js';

const CONNECTIONS = 40;
const MAX_BYTES = 1024 * 1024;
/** A few connections send more than the kernel's socket buffers hold while the mirror does not read. */
const BIG_BYTES = 12 * 1024 * 1024;

/** A backend that hashes what each connection sends. At the client's FIN the primary answers the hash; the mirror records it. */
async function hashingServer(role: 'primary' | 'mirror'): Promise<{ server: TestServer; digests: string[]; bytes: () => number }> {
  const digests: string[] = [];
  let bytes = 0;
  const server = await startServer((s) => {
    const h = createHash('sha256');
    if (role === 'mirror') {
      // A mirror that talks back: its bytes must be read and thrown away, never relayed.
      s.write(Buffer.alloc(64 * 1024, 0x6d));
      // A mirror that starts slowly: the socket buffers fill, so copies wait in l4lb's queue
      // (with the fast path, copies of read buffers that are read into again meanwhile).
      s.pause();
      setTimeout(() => s.resume(), 300);
    }
    s.on('data', (c: Buffer) => {
      bytes += c.length;
      h.update(c);
    });
    s.on('end', () => {
      const d = h.digest('hex');
      if (role === 'mirror') {
        digests.push(d);
        s.end();
      } else s.end(`${d}\n`);
    });
  });
  return { server, digests, bytes: () => bytes };
}

/**
 * l4lb in this process: listener `web` (with `listener` settings) → pool `main`, a hashing
 * primary, mirrored at 100% (with `mirror` settings) to pool `shadow`, a hashing mirror.
 */
async function mirroredProxy(t: TestContext, o: { listener?: Record<string, unknown>; mirror?: Record<string, unknown> } = {}) {
  const primary = await hashingServer('primary');
  const mirror = await hashingServer('mirror');
  t.after(() => primary.server.close());
  t.after(() => mirror.server.close());
  const cfg = normalizeConfig(
    {
      log: { level: 'silent', access: 'off' },
      listeners: [{ name: 'web', listen: '127.0.0.1:0', pool: 'main', ...o.listener }],
      pools: [
        { name: 'main', backends: [`127.0.0.1:${primary.server.port}`], mirror: { pool: 'shadow', percent: 100, ...o.mirror } },
        { name: 'shadow', backends: [`127.0.0.1:${mirror.server.port}`] },
      ],
    },
    'test',
  );
  const records: AccessRecord[] = [];
  const proxy = await startProxy(cfg, { logger: silentLogger(), onAccess: (r) => records.push(r) });
  t.after(() => proxy.close());
  return { primary, mirror, proxy, records, port: proxy.addresses()[0].port };
}

/** Sends `data` in writes of at most `writeSize` bytes, then FIN; resolves with what came back. */
async function exchange(port: number, data: Buffer, writeSize = data.length): Promise<string> {
  const s = await connect(port);
  let reply = '';
  s.setEncoding('utf8');
  s.on('data', (c: string) => (reply += c));
  const ended = new Promise((r) => s.on('end', r));
  for (let off = 0; off < data.length; off += writeSize) s.write(data.subarray(off, off + writeSize));
  s.end();
  await ended;
  s.destroy();
  return reply;
}

test('the mirror receives, byte for byte, what the primary receives, for many concurrent half-closing connections', async (t) => {
  const { primary, mirror, proxy, records, port } = await mirroredProxy(t, { mirror: { bufferSize: '16MiB' } });

  const sent: string[] = [];
  let total = 0;
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, i) => {
      // Some connections send nothing at all: the mirror still sees a connection and a FIN.
      const size = i % 10 === 0 ? 0 : i % 10 === 1 ? BIG_BYTES : randomInt(1, MAX_BYTES);
      const payload = randomBytes(size);
      total += size;
      const digest = createHash('sha256').update(payload).digest('hex');
      sent.push(digest);
      const reply = await exchange(port, payload, 65_536);
      assert.equal(reply, `${digest}\n`, 'the client gets the primary’s answer, nothing of the mirror’s');
    }),
  );

  await waitFor(() => mirror.digests.length === CONNECTIONS, 15_000, 'every mirror connection ended');
  assert.deepEqual([...mirror.digests].sort(), [...sent].sort(), 'SHA-256 of each mirror connection = SHA-256 of a client’s bytes');
  assert.equal(mirror.bytes(), primary.bytes());
  assert.equal(primary.bytes(), total);
  await waitFor(() => proxy.status().pools[0].mirror?.active === 0, 5000, 'mirror connections closed');
  const m = proxy.status().pools[0].mirror!;
  assert.deepEqual(m, { pool: 'shadow', percent: 100, connections: CONNECTIONS, active: 0, bytes: total, dropped: {} });
  assert.equal(records.length, CONNECTIONS);
  for (const r of records) {
    assert.equal(r.mirrorDropped, undefined);
    assert.ok(r.mirrorBytes !== undefined && r.mirrorBytes <= r.bytesUp, `mirrorBytes ${r.mirrorBytes} of bytesUp ${r.bytesUp}`);
  }
  // The mirror backend's own counters carry the copies.
  const shadow = proxy.status().pools[1].backends[0];
  assert.equal(shadow.total, CONNECTIONS);
});

test('behind a PROXY-accepting listener the mirror gets the client bytes read with the header (preread), not the header', async (t) => {
  const { mirror, port } = await mirroredProxy(t, { listener: { acceptProxy: { trusted: ['127.0.0.1/32'] } } });
  const payload = randomBytes(3000);
  const digest = createHash('sha256').update(payload).digest('hex');
  // Header and payload in one write: the payload's start arrives with the header, in preread.
  const reply = await exchange(port, Buffer.concat([Buffer.from('PROXY TCP4 192.0.2.7 127.0.0.1 4000 80\r\n'), payload]));
  assert.equal(reply, `${digest}\n`);
  await waitFor(() => mirror.digests.length === 1, 5000, 'the mirror connection ended');
  assert.equal(mirror.digests[0], digest);
});
