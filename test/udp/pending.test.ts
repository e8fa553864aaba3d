/**
 * The bound on datagrams held while a backend socket connects (`pending_full`): a new
 * session, and a per-datagram backend socket, hold at most 16 datagrams until their socket is
 * connected; the rest are dropped and counted, never queued without bound.
 *
 * How the test makes "not yet connected" last: the backend is named `localhost`, so the
 * socket's connect waits for a `dns.lookup` on the thread pool, which can only complete after
 * the event loop has finished the current batch of reads; and the datagrams are all in the
 * listener's receive buffer before l4lb reads any, because a child process sends them while
 * this process (l4lb and the echo backend run in it) is blocked in `spawnSync`. libuv then
 * reads them in one batch (up to 32 per poll), the first opens the session, and the next ones
 * arrive while its connect waits.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { MAX_PENDING_DATAGRAMS } from '../../src/udp/session.js';
import { proxyFrom, udpEcho, until } from './support.js';

/** Datagrams sent in one burst: fewer than libuv's 32 reads per poll, more than the bound. */
const BURST = 30;

const payload = (i: number) => Buffer.from(`datagram ${String(i).padStart(2, '0')} ${'x'.repeat(40)}`);
const sha = (parts: Buffer[]) => createHash('sha256').update(Buffer.concat(parts)).digest('hex');

/** Sends {@link BURST} datagrams to `port` from one socket of a child process, while this process waits. */
function burst(port: number): void {
  const script = `
    const s = require('node:dgram').createSocket('udp4');
    s.bind(0, '127.0.0.1', async () => {
      for (let i = 0; i < ${BURST}; i++) {
        const m = Buffer.from('datagram ' + String(i).padStart(2, '0') + ' ' + 'x'.repeat(40));
        await new Promise((resolve, reject) => s.send(m, ${port}, '127.0.0.1', (e) => (e ? reject(e) : resolve())));
      }
      s.close();
    });`;
  const r = spawnSync(process.execPath, ['-e', script], { stdio: 'inherit', timeout: 30_000 });
  assert.equal(r.status, 0, 'the sender ran');
}

/** A UDP listener `u` (with `extra` settings) in front of `localhost:port`: a name, so connecting waits for a lookup. */
function byName(port: number, extra: string): string {
  return `
listeners:
  - { name: u, listen: 127.0.0.1:0, protocol: udp, pool: p, ${extra} }
pools:
  - { name: p, backends: ["localhost:${port}"] }
`;
}

/** An echo backend that also keeps what it received, in order. */
async function recordingEcho() {
  const echo = await udpEcho();
  const got: Buffer[] = [];
  echo.socket.on('message', (m) => got.push(m));
  return { echo, got };
}

test(`a new session holds at most ${MAX_PENDING_DATAGRAMS} datagrams while its socket connects; the rest are dropped and counted as pending_full`, async (t) => {
  const { echo, got } = await recordingEcho();
  t.after(() => echo.close());
  const p = await proxyFrom(byName(echo.port, 'timeouts: { idle: 300ms }'));
  t.after(() => p.close());
  burst(p.port);
  const kept = MAX_PENDING_DATAGRAMS;
  const l = p.proxy.udp.map.get('u')!;
  await until(() => p.records.length === 1, 'the session to end by its idle timeout');
  assert.equal(l.stats.rejected.get('pending_full'), BURST - kept);
  assert.equal(l.stats.accepted, 1, 'one client port, one session');
  assert.equal(echo.received, kept);
  // The first 16 (the first one included: it waits for the connect too), in order, whole.
  assert.equal(sha(got), sha(Array.from({ length: kept }, (_, i) => payload(i))));
  assert.equal(l.stats.datagramsUp, kept);
  const r = p.records[0];
  assert.equal(r.datagramsUp, kept);
  assert.equal(r.bytesUp, kept * payload(0).length);
  assert.equal(r.reason, 'idle_timeout');
});

test(`per-datagram mode: a backend socket holds at most ${MAX_PENDING_DATAGRAMS} datagrams while it connects; the rest are pending_full`, async (t) => {
  const { echo, got } = await recordingEcho();
  t.after(() => echo.close());
  const p = await proxyFrom(byName(echo.port, 'udp: { perDatagram: true }'));
  t.after(() => p.close());
  burst(p.port);
  const l = p.proxy.udp.map.get('u')!;
  await until(() => echo.received === MAX_PENDING_DATAGRAMS, `${MAX_PENDING_DATAGRAMS} datagrams at the backend`);
  assert.equal(l.stats.rejected.get('pending_full'), BURST - MAX_PENDING_DATAGRAMS);
  assert.equal(sha(got), sha(Array.from({ length: MAX_PENDING_DATAGRAMS }, (_, i) => payload(i))));
  assert.equal(l.stats.datagramsUp, MAX_PENDING_DATAGRAMS);
  // Once connected, the socket takes every datagram.
  burst(p.port);
  await until(() => echo.received === MAX_PENDING_DATAGRAMS + BURST, 'the second burst at the backend');
  assert.equal(l.stats.rejected.get('pending_full'), BURST - MAX_PENDING_DATAGRAMS);
});
