/**
 * Malformed PROXY headers over real sockets. Each bad input closes only its own connection,
 * with a counted rejection and a warning that names what was wrong, and never reaches a
 * backend; meanwhile a good connection on the same listener relays 1 MiB both ways intact.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect, echoServer, waitFor } from '../support/net.js';
import { assertCountsBalance, closed, recordWhere, sleep, startL4lb, tempDir, type TestL4lb } from './support.js';

const MiB = 1024 * 1024;
/** The preread timeout of the listener under test. */
const PREREAD_MS = 400;
/**
 * The preread timeout where a test is about parsing, not the timeout: a header sent one
 * byte at a time takes well over PREREAD_MS on a loaded machine.
 */
const PARSE_PREREAD_MS = 60_000;

const V2_SIG = Buffer.from('0d0a0d0a000d0a515549540a', 'hex');

/** A v2 header built by hand: signature, ver/cmd, family, length, then `body`. */
function v2(verCmd: number, family: number, body: Buffer, length = body.length): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = verCmd;
  fixed[1] = family;
  fixed.writeUInt16BE(length, 2);
  return Buffer.concat([V2_SIG, fixed, body]);
}

/** TCP over IPv4: 127.0.0.9:4000 → 127.0.0.1:80. */
const V4_BLOCK = Buffer.from([127, 0, 0, 9, 127, 0, 0, 1, 0x0f, 0xa0, 0x00, 0x50]);

const GOOD_V1 = Buffer.from('PROXY TCP4 127.0.0.9 127.0.0.1 4000 80\r\n');
const GOOD_V2 = v2(0x21, 0x11, V4_BLOCK);

async function setup(t: TestContext, prereadMs = PREREAD_MS): Promise<{ l4: TestL4lb; backendAccepted: () => number }> {
  const dir = await tempDir(t);
  const backend = await echoServer();
  t.after(() => backend.close());
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - name: in
    listen: 127.0.0.1:0
    pool: echo
    acceptProxy: { trusted: [127.0.0.1/32] }
    timeouts: { preread: ${prereadMs}ms }
pools:
  - { name: echo, backends: [127.0.0.1:${backend.port}] }
`,
  );
  return { l4, backendAccepted: () => backend.accepted };
}

/**
 * A good connection, started before the bad one and finished after it: it sends its header
 * and 64 KiB and waits for the echo (so it is relaying), then `finish()` sends the rest of
 * 1 MiB and checks SHA-256 of what came back.
 */
async function goodConnection(port: number): Promise<{ finish(): Promise<void>; socket: net.Socket }> {
  const c = await connect(port);
  const sent = createHash('sha256');
  const got = createHash('sha256');
  let received = 0;
  const first = randomBytes(64 * 1024);
  sent.update(first);
  c.on('data', (b: Buffer) => {
    received += b.length;
    got.update(b);
  });
  const ended = once(c, 'end');
  c.write(Buffer.concat([GOOD_V1, first]));
  await waitFor(() => received === first.length, 5000, 'the good connection echoes');
  return {
    socket: c,
    async finish() {
      const rest = randomBytes(MiB - first.length);
      sent.update(rest);
      c.end(rest);
      await ended;
      c.destroy();
      assert.equal(received, MiB, 'the good connection got 1 MiB back');
      assert.equal(got.digest('hex'), sent.digest('hex'), 'SHA-256 of the echo matches');
    },
  };
}

/** Sends `bytes` (then FIN when `end`) and waits until l4lb closes the connection. */
async function sendBad(port: number, bytes: Buffer, end = false): Promise<{ localPort: number; reply: number }> {
  // Not half-open: l4lb's FIN closes this side too, so 'close' means l4lb hung up.
  const c = net.connect({ port, host: '127.0.0.1' });
  await once(c, 'connect');
  const localPort = c.localPort!;
  let reply = 0;
  c.on('data', (b: Buffer) => (reply += b.length));
  c.on('error', () => {}); // a reset is a fine way to be closed
  if (end) c.end(bytes);
  else c.write(bytes);
  await closed(c);
  return { localPort, reply };
}

const rejectedCases: { name: string; bytes: Buffer; detail: string }[] = [
  { name: 'a v1 line longer than 107 bytes without CRLF', bytes: Buffer.from(`PROXY TCP4 ${'1'.repeat(120)}`), detail: 'v1_too_long' },
  { name: 'a bad signature (plain HTTP)', bytes: Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'), detail: 'bad_signature' },
  { name: 'a v1 line with an unknown protocol', bytes: Buffer.from('PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n'), detail: 'bad_family' },
  { name: 'a v1 line with a bad address', bytes: Buffer.from('PROXY TCP4 300.1.1.1 127.0.0.1 1 2\r\n'), detail: 'bad_v1_address' },
  { name: 'a v2 header of version 1', bytes: v2(0x11, 0x11, V4_BLOCK), detail: 'bad_version' },
  { name: 'a v2 header with command 2', bytes: v2(0x22, 0x11, V4_BLOCK), detail: 'bad_command' },
  { name: 'a v2 header with an unknown family', bytes: v2(0x21, 0x41, V4_BLOCK), detail: 'bad_family' },
  { name: 'a v2 address block too short for IPv4', bytes: v2(0x21, 0x11, V4_BLOCK.subarray(0, 4)), detail: 'short_address' },
  {
    name: 'a v2 TLV that runs past the end of the header',
    bytes: v2(0x21, 0x11, Buffer.concat([V4_BLOCK, Buffer.from([0x02, 0x00, 0x10, 0x61])])),
    detail: 'tlv_overflow',
  },
  { name: 'a v2 header with a UNIX-socket source', bytes: v2(0x21, 0x31, Buffer.alloc(216)), detail: 'unix_family_unsupported' },
  { name: 'a v2 length beyond the 16 KiB cap', bytes: v2(0x21, 0x11, V4_BLOCK, 0xffff), detail: 'v2_too_long' },
];

for (const c of rejectedCases) {
  test(`${c.name} is rejected as bad_proxy_header (${c.detail}) while a good connection carries on`, async (t) => {
    const { l4, backendAccepted } = await setup(t);
    const good = await goodConnection(l4.port());
    const bad = await sendBad(l4.port(), c.bytes);
    assert.equal(bad.reply, 0, 'nothing is sent back');
    const rec = await recordWhere(l4, (r) => r.clientPort === bad.localPort);
    assert.equal(rec.reason, 'bad_proxy_header');
    assert.equal(rec.tries, 0);
    await good.finish();

    const stats = l4.listener().stats;
    assert.deepEqual([...stats.rejected], [['bad_proxy_header', 1]]);
    const warns = l4.log.warns('bad_proxy_header');
    assert.equal(warns.length, 1);
    assert.equal(warns[0].detail, c.detail);
    assert.equal(warns[0].client, '127.0.0.1');
    assert.equal(backendAccepted(), 1, 'only the good connection reached the backend');
    await waitFor(() => stats.active === 0, 5000, 'all closed');
    assertCountsBalance(l4.listener());
  });
}

test('a client that closes in the middle of its header is recorded as client_aborted, not rejected', async (t) => {
  const { l4, backendAccepted } = await setup(t);
  const good = await goodConnection(l4.port());
  const bad = await sendBad(l4.port(), GOOD_V1.subarray(0, 20), true);
  const rec = await recordWhere(l4, (r) => r.clientPort === bad.localPort);
  assert.equal(rec.reason, 'client_aborted');
  await good.finish();
  assert.equal(l4.listener().stats.rejected.size, 0);
  assert.equal(l4.log.warns().length, 0);
  assert.equal(backendAccepted(), 1);
});

test('a header that never completes is cut at the preread timeout', async (t) => {
  const { l4, backendAccepted } = await setup(t);
  const good = await goodConnection(l4.port());
  const t0 = Date.now();
  const bad = await sendBad(l4.port(), GOOD_V1.subarray(0, 20));
  const elapsed = Date.now() - t0;
  assert.ok(elapsed >= PREREAD_MS - 50, `closed after ${elapsed}ms, not before the timeout`);
  const rec = await recordWhere(l4, (r) => r.clientPort === bad.localPort);
  assert.equal(rec.reason, 'preread_timeout');
  await good.finish();
  assert.deepEqual([...l4.listener().stats.rejected], [['preread_timeout', 1]]);
  assert.equal(l4.log.warns('preread_timeout').length, 1);
  assert.equal(backendAccepted(), 1);
  await waitFor(() => l4.listener().stats.active === 0, 5000, 'all closed');
  assertCountsBalance(l4.listener());
});

for (const [version, header] of [['v1', GOOD_V1], ['v2', GOOD_V2]] as const) {
  test(`a valid ${version} header sent one byte at a time is accepted`, async (t) => {
    const { l4 } = await setup(t, PARSE_PREREAD_MS);
    const c = await connect(l4.port());
    c.setNoDelay(true);
    for (const byte of header) {
      c.write(Buffer.of(byte));
      await sleep(2);
    }
    const reply: Buffer[] = [];
    c.on('data', (b: Buffer) => reply.push(b));
    const payload = randomBytes(MiB);
    c.end(payload);
    await once(c, 'end');
    c.destroy();
    assert.ok(Buffer.concat(reply).equals(payload), 'the echo matches, header not included');
    const rec = await recordWhere(l4, () => true);
    assert.equal(rec.client, '127.0.0.9');
    assert.equal(rec.clientPort, 4000);
    assert.equal(l4.listener().stats.rejected.size, 0);
  });
}

test('a header, data and FIN in one write are all relayed, FIN included', async (t) => {
  const { l4 } = await setup(t);
  const c = await connect(l4.port());
  const payload = randomBytes(256 * 1024);
  const reply: Buffer[] = [];
  c.on('data', (b: Buffer) => reply.push(b));
  const ended = once(c, 'end');
  c.end(Buffer.concat([GOOD_V2, payload]));
  await ended; // the echo backend ends only after it saw our FIN
  c.destroy();
  assert.ok(Buffer.concat(reply).equals(payload));
  const rec = await recordWhere(l4, () => true);
  assert.equal(rec.client, '127.0.0.9');
  assert.equal(rec.bytesUp, payload.length);
});
