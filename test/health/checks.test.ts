/**
 * @module test/health/checks — the tcp and send-expect probes against real loopback backends.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  HealthCheckError,
  MAX_REPLY_BYTES,
  compileMatcher,
  sendExpectCheck,
  tcpCheck,
} from '../../src/health/checks.js';
import { L4lbError } from '../../src/errors.js';
import { TestBackend, freePort, sleep, waitFor } from './helpers.js';

const HOST = '127.0.0.1';

/** Asserts `p` rejects with a HealthCheckError of `kind` whose message matches `message`. */
async function rejectsWith(p: Promise<void>, kind: string, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof HealthCheckError, `expected HealthCheckError, got ${String(err)}`);
    assert.equal(err.kind, kind);
    assert.match(err.message, message);
    return true;
  });
}

test('tcp check succeeds against a listening backend and closes its socket', async (t) => {
  const b = await TestBackend.start((socket) => {
    socket.on('close', () => closed++);
  });
  let closed = 0;
  t.after(() => b.close());
  await tcpCheck(HOST, b.port, 1000);
  assert.equal(b.connections, 1);
  await waitFor(() => closed === 1, 'the backend to see the check connection close');
});

test('a check whose connect completed in time is not a timeout because the event loop ran late', async (t) => {
  const b = await TestBackend.start();
  t.after(() => b.close());
  for (let i = 0; i < 3; i++) {
    // Started from the check phase (setImmediate): the connect is issued (next tick), the kernel
    // completes the loopback handshake at once, and this thread stays busy past the timeout.
    // The next loop turn runs its timers before it polls for I/O, so the timer is seen first:
    // the check must still see the connect before it decides on a timeout.
    const { check } = await new Promise<{ check: Promise<void> }>((resolve) =>
      setImmediate(() => {
        const c = tcpCheck(HOST, b.port, 50);
        process.nextTick(() => {
          const until = performance.now() + 150;
          while (performance.now() < until);
        });
        resolve({ check: c });
      }),
    );
    await check;
  }
});

test('tcp check fails with "connect refused" when nothing listens', async () => {
  const port = await freePort();
  await rejectsWith(tcpCheck(HOST, port, 1000), 'refused', /^connect refused$/);
});

test('tcp check rejects at once when its signal is already aborted', async (t) => {
  const b = await TestBackend.start();
  t.after(() => b.close());
  const ac = new AbortController();
  ac.abort();
  await rejectsWith(tcpCheck(HOST, b.port, 1000, ac.signal), 'aborted', /aborted/);
  assert.equal(b.connections, 0);
});

test('send-expect with a substring succeeds when the reply arrives in pieces', async (t) => {
  const b = await TestBackend.start((socket) => {
    socket.once('data', (d) => {
      assert.equal(d.toString(), 'PING\r\n');
      socket.write('+PO');
      setTimeout(() => socket.write('NG\r\n'), 20);
    });
  });
  t.after(() => b.close());
  await sendExpectCheck(HOST, b.port, Buffer.from('PING\r\n'), { kind: 'substring', value: 'PONG' }, 1000);
});

test('send-expect with a substring fails when the backend answers something else and closes', async (t) => {
  const b = await TestBackend.start((socket) => socket.once('data', () => socket.end('-ERR unknown command\r\n')));
  t.after(() => b.close());
  await rejectsWith(
    sendExpectCheck(HOST, b.port, Buffer.from('PING\r\n'), { kind: 'substring', value: 'PONG' }, 1000),
    'closed',
    /expected "PONG", got "-ERR unknown command\\r\\n"/,
  );
});

test('send-expect with a regex matches the UTF-8 reply', async (t) => {
  const b = await TestBackend.start((socket) => socket.once('data', () => socket.write('HTTP/1.0 200 OK\r\n\r\n')));
  t.after(() => b.close());
  const send = Buffer.from('GET / HTTP/1.0\r\n\r\n');
  await sendExpectCheck(HOST, b.port, send, { kind: 'regex', value: '^HTTP/1\\.[01] 2\\d\\d ' }, 1000);
});

test('send-expect with a regex fails on a non-matching reply, quoting the reply', async (t) => {
  const b = await TestBackend.start((socket) => socket.once('data', () => socket.end('HTTP/1.0 503 Unavailable\r\n\r\n')));
  t.after(() => b.close());
  const send = Buffer.from('GET / HTTP/1.0\r\n\r\n');
  await rejectsWith(
    sendExpectCheck(HOST, b.port, send, { kind: 'regex', value: '^HTTP/1\\.[01] 2\\d\\d ' }, 1000),
    'closed',
    /expected \/\^HTTP.*\/, got "HTTP\/1\.0 503/,
  );
});

test('send-expect with a hex prefix succeeds on matching leading bytes', async (t) => {
  const b = await TestBackend.start((socket) => socket.once('data', () => socket.write(Buffer.from([0x16, 0x03, 0x03, 0x00, 0x2a, 0xff]))));
  t.after(() => b.close());
  await sendExpectCheck(HOST, b.port, Buffer.from([0x01]), { kind: 'hex', value: '160303' }, 1000);
});

test('send-expect with a hex prefix fails as soon as a byte differs, without waiting for the timeout', async (t) => {
  // The backend keeps the connection open: only the early mismatch can end the check.
  const b = await TestBackend.start((socket) => socket.once('data', () => socket.write(Buffer.from([0x15, 0x03]))));
  t.after(() => b.close());
  const started = performance.now();
  await rejectsWith(
    sendExpectCheck(HOST, b.port, Buffer.from([0x01]), { kind: 'hex', value: '16 03 03' }, 5000),
    'mismatch',
    /expected hex 160303, got hex 1503/,
  );
  assert.ok(performance.now() - started < 4000, 'failed early rather than at the 5s timeout');
});

test('send-expect with an empty send reads the banner the backend sends on its own', async (t) => {
  const received: Buffer[] = [];
  const b = await TestBackend.start((socket) => {
    socket.on('data', (d) => received.push(d));
    socket.write('220 smtp.example ESMTP ready\r\n');
  });
  t.after(() => b.close());
  await sendExpectCheck(HOST, b.port, Buffer.alloc(0), { kind: 'regex', value: '^220 ' }, 1000);
  assert.equal(Buffer.concat(received).length, 0, 'nothing was sent');
});

test('send-expect times out when the backend never answers, and closes its socket', async (t) => {
  let closed = 0;
  const b = await TestBackend.start((socket) => socket.on('close', () => closed++));
  t.after(() => b.close());
  await rejectsWith(
    sendExpectCheck(HOST, b.port, Buffer.from('PING\r\n'), { kind: 'substring', value: 'PONG' }, 150),
    'timeout',
    /^timeout after 150ms waiting for a reply$/,
  );
  await waitFor(() => closed === 1, 'the backend to see the check connection close');
});

test('send-expect that times out on a partial reply says what it got', async (t) => {
  const b = await TestBackend.start((socket) => socket.once('data', () => socket.write('+PO')));
  t.after(() => b.close());
  await rejectsWith(
    sendExpectCheck(HOST, b.port, Buffer.from('PING\r\n'), { kind: 'substring', value: 'PONG' }, 150),
    'timeout',
    /^timeout after 150ms: expected "PONG", got "\+PO"$/,
  );
});

test('send-expect fails when the backend closes immediately', async (t) => {
  const b = await TestBackend.start((socket) => socket.end());
  t.after(() => b.close());
  await assert.rejects(
    sendExpectCheck(HOST, b.port, Buffer.from('PING\r\n'), { kind: 'substring', value: 'PONG' }, 1000),
    (err: unknown) => {
      assert.ok(err instanceof HealthCheckError);
      // Depending on timing the close is seen as a FIN or, if our write raced it, a reset.
      assert.ok(err.kind === 'closed', `kind ${err.kind}: ${err.message}`);
      assert.match(err.message, /connection (closed|reset)/);
      return true;
    },
  );
});

test('send-expect fails once the reply exceeds the buffer cap without a match', async (t) => {
  const b = await TestBackend.start((socket) => socket.once('data', () => socket.write(Buffer.alloc(MAX_REPLY_BYTES * 2, 'x'))));
  t.after(() => b.close());
  await rejectsWith(
    sendExpectCheck(HOST, b.port, Buffer.from('PING\r\n'), { kind: 'substring', value: 'PONG' }, 5000),
    'overflow',
    new RegExp(`reply exceeded ${MAX_REPLY_BYTES} bytes`),
  );
});

test('send-expect is aborted by its signal mid-check and the backend sees the close', async (t) => {
  let closed = 0;
  const b = await TestBackend.start((socket) => socket.on('close', () => closed++));
  t.after(() => b.close());
  const ac = new AbortController();
  const p = sendExpectCheck(HOST, b.port, Buffer.from('PING\r\n'), { kind: 'substring', value: 'PONG' }, 10_000, ac.signal);
  await waitFor(() => b.connections === 1, 'the check to connect');
  ac.abort();
  await rejectsWith(p, 'aborted', /^check aborted$/);
  await waitFor(() => closed === 1, 'the backend to see the aborted check close');
});

test('compileMatcher rejects an invalid regex and invalid hex with a config error', () => {
  for (const bad of [
    { kind: 'regex', value: '(' },
    { kind: 'hex', value: 'abc' },
    { kind: 'hex', value: 'zz' },
  ] as const) {
    assert.throws(() => compileMatcher(bad), (err: unknown) => err instanceof L4lbError && err.code === 'L4LB_ERR_CONFIG_INVALID');
  }
});

test('compileMatcher reports match, need-more and mismatch for a hex prefix', () => {
  const m = compileMatcher({ kind: 'hex', value: '0x2b504f' });
  assert.equal(m.test(Buffer.from('+P')), 'need-more');
  assert.equal(m.test(Buffer.from('+PONG')), 'match');
  assert.equal(m.test(Buffer.from('-E')), 'mismatch');
  assert.equal(m.test(Buffer.alloc(0)), 'need-more');
});

test('send-expect with an invalid regex rejects without connecting', async (t) => {
  const b = await TestBackend.start();
  t.after(() => b.close());
  await assert.rejects(sendExpectCheck(HOST, b.port, Buffer.alloc(0), { kind: 'regex', value: '[' }, 1000), /invalid expect regex/);
  // Give a stray connect a moment to show up before asserting there was none.
  await sleep(20);
  assert.equal(b.connections, 0);
});
