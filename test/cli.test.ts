/**
 * The `l4lb` command as a user runs it: first stdout line, help, version, bad
 * arguments (exit 2), a port in use (exit 1), the demo, and SIGTERM.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnL4lb, runL4lb, echoServer, request, ROOT, startServer } from './support/net.js';

test('l4lb BACKEND prints "listening on 127.0.0.1:PORT" first and proxies round robin', async (t) => {
  const a = await startServer((s) => s.end('a'));
  const b = await startServer((s) => s.end('b'));
  const l4lb = await spawnL4lb([`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`]);
  t.after(async () => {
    await l4lb.stop('SIGKILL');
    await a.close();
    await b.close();
  });
  assert.match(l4lb.stdout[0], /^listening on 127\.0\.0\.1:\d+$/);
  const got = [];
  for (let i = 0; i < 4; i++) got.push(await request(l4lb.port, ''));
  // Round robin from a random starting backend: strictly alternating.
  assert.deepEqual([got[0], got[1]].sort(), ['a', 'b']);
  assert.deepEqual(got.slice(2), got.slice(0, 2));
});

test('stderr carries JSON log lines, including one access line per closed connection', async (t) => {
  const e = await echoServer();
  const l4lb = await spawnL4lb([`127.0.0.1:${e.port}`]);
  t.after(async () => {
    await l4lb.stop('SIGKILL');
    await e.close();
  });
  assert.equal(await request(l4lb.port, 'abc'), 'abc');
  const deadline = Date.now() + 5000;
  let access: Record<string, unknown> | undefined;
  while (!access && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    const lines = l4lb.stderr().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    access = lines.find((l) => l.msg === 'access');
  }
  assert.ok(access, 'an access line was logged');
  assert.equal(access.bytesUp, 3);
  assert.equal(access.bytesDown, 3);
  // Backends named on the command line are named by their address.
  assert.equal(access.backend, `127.0.0.1:${e.port}`);
  assert.equal(access.backendAddress, `127.0.0.1:${e.port}`);
  assert.equal(access.reason, 'client_closed');
  assert.equal(typeof access.durationMs, 'number');
});

test('--help and --version print to stdout and exit 0', async () => {
  const help = await runL4lb(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Usage: l4lb/);
  assert.match(help.stdout, /--balance NAME/);
  const v = await runL4lb(['--version']);
  assert.equal(v.code, 0);
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(v.stdout.trim(), `l4lb ${pkg.version}`);
});

const badArgs: [string, string[], RegExp][] = [
  ['a bad port', ['127.0.0.1:99999'], /BACKEND #1: port 99999 is out of range/],
  ['a non-numeric port', ['127.0.0.1:http'], /port "http" is not a number/],
  ['IPv6 without brackets', ['::1:80'], /IPv6 addresses need brackets/],
  ['an unknown flag', ['--frobnicate', '127.0.0.1:80'], /Unknown option '--frobnicate'/],
  ['no backends', [], /no BACKEND given/],
  ['a bad listen address', ['-l', 'localhost', '127.0.0.1:80'], /--listen: expected HOST:PORT/],
  ['an unknown balancer', ['--balance', 'fastest', '127.0.0.1:80'], /--balance: must be one of round-robin, .*got a string \("fastest"\)/],
  ['a bad duration', ['--connect-timeout', '5 parsecs', '127.0.0.1:80'], /--connect-timeout: "5 parsecs" is not a duration/],
  ['a duration past 24 days (Node timers would fire at once)', ['--idle-timeout', '25d', '127.0.0.1:80'], /--idle-timeout: duration "25d" is too long: the maximum is 24d/],
  ['a negative retry count', ['--retries', '-1', '127.0.0.1:80'], /^l4lb: --retries: must be at least 0, got a number \(-1\)$/],
  ['a duplicated backend', ['127.0.0.1:80', '127.0.0.1:80'], /BACKEND #2: duplicate backend name "127\.0\.0\.1:80"/],
];
for (const [what, args, message] of badArgs) {
  test(`${what} is rejected with a one-line error, a usage hint and exit code 2`, async () => {
    const r = await runL4lb(args);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split('\n');
    assert.match(lines[0], message);
    assert.match(r.stderr, /Usage: l4lb/);
    assert.equal(r.stdout, '');
  });
}

test('a listen port already in use exits 1 with a clear error', async (t) => {
  const taken = net.createServer().listen(0, '127.0.0.1');
  await once(taken, 'listening');
  t.after(() => taken.close());
  const port = (taken.address() as net.AddressInfo).port;
  const r = await runL4lb(['-l', `127.0.0.1:${port}`, '127.0.0.1:9']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: address already in use`));
});

test('--demo starts three named backends behind a round-robin proxy and stops cleanly on SIGINT', async () => {
  const demo = await spawnL4lb(['--demo']);
  // Wait for the instructions to be printed.
  const deadline = Date.now() + 5000;
  while (!demo.stdout.some((l) => l.includes('Ctrl-C')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  assert.ok(demo.stdout.some((l) => l.includes(`nc 127.0.0.1 ${demo.port}`)), demo.stdout.join('\n'));
  const replies = [];
  for (let i = 0; i < 6; i++) replies.push(await request(demo.port, 'hello\n'));
  // Each of the three backends answers once per round, in a fixed rotation.
  assert.deepEqual([...replies.slice(0, 3)].sort(), ['backend-1: hello\n', 'backend-2: hello\n', 'backend-3: hello\n']);
  assert.deepEqual(replies.slice(3), replies.slice(0, 3));
  // A connection still open at Ctrl-C is closed at once, and the log says so (not "drain timeout").
  const open = net.connect(demo.port, '127.0.0.1');
  await once(open, 'connect');
  open.on('error', () => {});
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(await demo.stop('SIGINT'), 0);
  const log = demo.stderr();
  assert.match(log, /"msg":"stopping the demo: closing connections now"/);
  assert.match(log, /"msg":"not waiting for connections to finish, closing remaining connections"/);
  assert.doesNotMatch(log, /drain timeout reached/);
  open.destroy();
});

test('SIGTERM lets an in-flight transfer finish, then exits 0', async (t) => {
  // The backend answers slowly: 10 pieces 50 ms apart.
  const slow = await startServer((s) => {
    let i = 0;
    const tick = setInterval(() => {
      s.write(`piece ${i}\n`);
      if (++i === 10) {
        clearInterval(tick);
        s.end();
      }
    }, 50);
    s.on('close', () => clearInterval(tick));
  });
  const l4lb = await spawnL4lb(['--log-level', 'warn', `127.0.0.1:${slow.port}`]);
  t.after(async () => {
    await l4lb.stop('SIGKILL');
    await slow.close();
  });
  const pending = request(l4lb.port, '');
  await new Promise((r) => setTimeout(r, 100));
  const exit = l4lb.stop('SIGTERM');
  const body = await pending;
  assert.equal(body.split('\n').filter(Boolean).length, 10);
  assert.equal(await exit, 0);
});

test('the test helper stop() returns at once, however often called, for a process a signal killed', { timeout: 20_000 }, async (t) => {
  const a = await startServer((s) => s.end('a'));
  t.after(() => a.close());
  const l4lb = await spawnL4lb([`127.0.0.1:${a.port}`]);
  const exited = once(l4lb.child, 'exit');
  process.kill(l4lb.child.pid!, 'SIGKILL');
  await exited;
  assert.equal(l4lb.child.signalCode, 'SIGKILL');
  assert.deepEqual(await Promise.all([l4lb.stop(), l4lb.stop('SIGKILL')]), [null, null]);
  assert.equal(await l4lb.stop(), null);
});
