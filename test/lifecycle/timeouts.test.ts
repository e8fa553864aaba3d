/**
 * Every connection timeout, set from a config file and observed through the CLI: connect,
 * idle (and 0 = off), client FIN, server FIN, maximum lifetime. One l4lb process serves one
 * listener per timeout; the access log (stderr) says why each connection ended.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import type net from 'node:net';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfigFile } from '../../src/config/load.js';
import { Defaults } from '../../src/config/types.js';
import { blackHole, connect, startServer, waitFor, type TestServer } from '../support/net.js';
import { startL4lb, config, listener, pool, type L4lb } from '../faults/harness.js';

test('a config file without timeouts gets the documented defaults', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-defaults-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'c.yaml');
  writeFileSync(file, 'listeners: [{ listen: "127.0.0.1:0", pool: p }]\npools: [{ name: p, backends: ["127.0.0.1:1"] }]\n');
  const cfg = await loadConfigFile(file);
  assert.deepEqual(cfg.listeners[0].timeouts, {
    connectMs: 5_000,
    idleMs: 600_000,
    clientFinMs: 30_000,
    serverFinMs: 30_000,
    maxLifetimeMs: 0,
    prereadMs: 10_000,
  });
  assert.deepEqual(cfg.shutdown, { drainTimeoutMs: 30_000, closeSpreadMs: 5_000 });
  assert.equal(cfg.pools[0].queue.timeoutMs, Defaults.queueTimeoutMs);
  assert.equal(cfg.maxConnections, 0);
  assert.equal(cfg.listeners[0].maxConnections, 0);
});

describe('timeouts set in a config file', { timeout: 60_000 }, () => {
  const SHORT = 300;
  /** Longer than any wait here: a connection held for it fails its test. */
  const LONG = 20_000;
  let l4lb: L4lb;
  let hole: { port: number; close(): Promise<void> };
  let silent: TestServer;
  let banner: TestServer;
  let echo: TestServer;
  let resetter: TestServer;
  const port: Record<string, number> = {};

  before(async () => {
    hole = await blackHole();
    silent = await startServer((s) => s.resume()); // reads, never answers, never closes
    banner = await startServer((s) => s.end('banner\n')); // says hello and half-closes
    echo = await startServer((s) => s.pipe(s));
    resetter = await startServer((s) => {
      s.write('hi\n');
      setTimeout(() => s.resetAndDestroy(), 50);
    });
    const names = ['connect', 'idle', 'idleOff', 'clientFin', 'serverFin', 'lifetime', 'backendReset', 'clientReset'] as const;
    l4lb = await startL4lb(
      config(
        [
          listener('connect', 'hole', { timeouts: { connect: `${SHORT}ms` } }),
          listener('idle', 'silent', { timeouts: { idle: `${SHORT}ms` } }),
          listener('idleOff', 'echo', { timeouts: { idle: 0, clientFin: `${SHORT}ms` } }),
          listener('clientFin', 'silent', { timeouts: { clientFin: `${SHORT}ms` } }),
          listener('serverFin', 'banner', { timeouts: { serverFin: `${SHORT}ms` } }),
          listener('lifetime', 'echo', { timeouts: { maxLifetime: `${SHORT * 2}ms`, idle: `${SHORT}ms` } }),
          // After an error each side gets the fin timeout of the direction that ended: the long
          // one of each pair must not be the one applied.
          listener('backendReset', 'resetter', { timeouts: { serverFin: `${SHORT}ms`, clientFin: `${LONG}ms` } }),
          listener('clientReset', 'silent', { timeouts: { clientFin: `${SHORT}ms`, serverFin: `${LONG}ms` } }),
        ],
        [pool('hole', [hole.port]), pool('silent', [silent.port]), pool('banner', [banner.port]), pool('echo', [echo.port]), pool('resetter', [resetter.port])],
        { log: { level: 'info', access: 'stderr' } },
      ),
    );
    names.forEach((n, i) => (port[n] = l4lb.ports[i]));
  });

  after(async () => {
    await l4lb?.close();
    await Promise.all([hole?.close(), silent?.close(), banner?.close(), echo?.close(), resetter?.close()]);
  });

  /** The access line of the one connection that went through `listenerName`. */
  async function accessLine(listenerName: string): Promise<Record<string, unknown>> {
    let line: Record<string, unknown> | undefined;
    await waitFor(() => (line = l4lb.logs().find((l) => l.msg === 'access' && l.listener === listenerName)) !== undefined, 5000, `access line of ${listenerName}`);
    return line!;
  }

  async function accessReason(listenerName: string): Promise<string> {
    return (await accessLine(listenerName)).reason as string;
  }

  /** Opens a connection and resolves with how long until l4lb closed it (FIN or reset). */
  async function closedAfter(p: number, act: (s: net.Socket) => void = () => {}): Promise<number> {
    const s = await connect(p);
    s.on('error', () => {});
    s.resume();
    const t0 = Date.now();
    const closed = endOrClose(s);
    act(s);
    await closed;
    s.destroy();
    return Date.now() - t0;
  }

  test('connect: a black-holed backend is given up after the connect timeout', async () => {
    const ms = await closedAfter(port.connect);
    assert.ok(ms >= SHORT - 50 && ms < Defaults.connectTimeoutMs, `closed after ${ms}ms`);
    assert.equal(await accessReason('connect'), 'backend_connect_timeout');
  });

  test('idle: a connection with no bytes either way is closed after the idle timeout', async () => {
    const ms = await closedAfter(port.idle, (s) => s.write('one request, never answered'));
    assert.ok(ms >= SHORT - 50 && ms < 10_000, `closed after ${ms}ms`);
    assert.equal(await accessReason('idle'), 'idle_timeout');
  });

  test('idle 0: a quiet connection stays open for longer than the other timeouts here', async () => {
    const s = await connect(port.idleOff);
    s.on('error', () => {});
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString()));
    let closed = false;
    s.on('close', () => (closed = true));
    await new Promise((r) => setTimeout(r, SHORT * 4));
    assert.equal(closed, false, 'still open after 4× the other timeouts');
    s.write('still there?');
    await waitFor(() => got === 'still there?', 5000, 'echo after the quiet time');
    s.destroy();
  });

  test('client FIN: a connection the client half-closed is closed after the client-fin timeout', async () => {
    const ms = await closedAfter(port.clientFin, (s) => s.end('bye'));
    assert.ok(ms >= SHORT - 50 && ms < 10_000, `closed after ${ms}ms`);
    assert.equal(await accessReason('clientFin'), 'client_fin_timeout');
  });

  test('server FIN: a connection the backend half-closed is closed after the server-fin timeout', async () => {
    const s = await connect(port.serverFin);
    s.on('error', () => {});
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString()));
    await once(s, 'end'); // the backend's FIN, relayed
    // The client keeps its side open and silent: l4lb must not wait for it forever. It has
    // already sent its FIN, so closing shows only in the log, and as a reset on the next write.
    assert.equal(await accessReason('serverFin'), 'server_fin_timeout');
    const line = l4lb.logs().find((l) => l.msg === 'access' && l.listener === 'serverFin')!;
    assert.ok((line.durationMs as number) >= SHORT - 50, `closed after ${String(line.durationMs)}ms`);
    assert.equal(got, 'banner\n');
    const closed = new Promise((r) => s.once('close', r));
    const writeUntilReset = setInterval(() => s.write('anyone?'), 20);
    await closed;
    clearInterval(writeUntilReset);
  });

  test('after a backend reset the client gets the server-fin timeout to finish, not the client-fin one', async () => {
    const s = await connect(port.backendReset);
    s.on('error', () => {});
    let got = '';
    s.on('data', (c: Buffer) => (got += c.toString()));
    await endOrClose(s); // the reset, passed on as a FIN after what the backend had sent
    assert.equal(got, 'hi\n');
    // The client stays open and silent: l4lb closes it when the server-fin timeout is up.
    const line = await accessLine('backendReset');
    assert.equal(line.reason, 'backend_reset');
    assert.ok((line.durationMs as number) >= SHORT && (line.durationMs as number) < LONG, `closed after ${String(line.durationMs)}ms`);
    s.destroy();
  });

  test('after a client reset the backend gets the client-fin timeout to finish, not the server-fin one', async () => {
    const s = await connect(port.clientReset);
    s.on('error', () => {});
    s.write('then gone');
    await new Promise((r) => setTimeout(r, 50));
    s.resetAndDestroy();
    // The backend reads on and never closes: l4lb closes it when the client-fin timeout is up.
    const line = await accessLine('clientReset');
    assert.equal(line.reason, 'client_reset');
    assert.ok((line.durationMs as number) >= SHORT && (line.durationMs as number) < LONG, `closed after ${String(line.durationMs)}ms`);
  });

  test('max lifetime: a busy connection is closed when its lifetime is up', async () => {
    const s = await connect(port.lifetime);
    s.on('error', () => {});
    let echoed = 0;
    s.on('data', (c: Buffer) => (echoed += c.length));
    // Traffic every 50ms: never idle, so only the lifetime can end it.
    const tick = setInterval(() => s.write('tick'), 50);
    const t0 = Date.now();
    await endOrClose(s);
    clearInterval(tick);
    s.destroy();
    const ms = Date.now() - t0;
    assert.ok(ms >= SHORT * 2 - 50 && ms < 10_000, `closed after ${ms}ms`);
    assert.ok(echoed > 0, 'bytes flowed until the end');
    assert.equal(await accessReason('lifetime'), 'max_lifetime');
  });
});

/** Resolves when the peer ended its side or the socket closed (sockets here allow half-open). */
function endOrClose(s: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    s.once('end', () => resolve());
    s.once('close', () => resolve());
  });
}
