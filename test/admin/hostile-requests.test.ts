/**
 * Anybody who can reach the admin port must not be able to make it answer 500, log at error
 * level, or write an unbounded number of log lines. `curl --path-as-is http://ADMIN/assets/%`
 * used to get a 500 and an error line per request, before any token check. Malformed targets
 * get 400; a request that fails unexpectedly is logged at most FAILURE_LOG_LINES times per
 * interval, and at error level only when it showed the token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { AdminServer } from '../../src/admin/server.js';
import type { StatusSource } from '../../src/admin/status.js';
import { echoServer, spawnL4lb, waitFor } from '../support/net.js';

const TOKEN = 'a-token-long-enough-for-the-test-0123456789';

/** Sends one raw HTTP/1.1 request (the target exactly as given) and returns the status code. */
function rawRequest(port: number, target: string, headers: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1');
    let reply = '';
    s.on('data', (c: Buffer) => (reply += c.toString('latin1')));
    s.on('end', () => {
      const m = /^HTTP\/1\.1 (\d{3})/.exec(reply);
      if (m) resolve(Number(m[1]));
      else reject(new Error(`no HTTP status line in ${JSON.stringify(reply.slice(0, 100))}`));
    });
    s.on('error', reject);
    const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    s.write(`GET ${target} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${extra}Connection: close\r\n\r\n`, 'latin1');
  });
}

/** Targets a client can send that no URL parser should choke on. */
const MALFORMED = [
  '/assets/%',
  '/assets/%zz',
  '/assets/%E0%A4%A',
  '/api/v1/pools/%/backends',
  '/api/v1/pools/web/backends/%C0%AF',
  '/api/v1/pools/%ff%fe/backends/x/drain',
  'http://[/api/v1/status',
  'http://admin:%zz/x',
];

test('malformed targets get 400 from the token-protected admin of the CLI, with no error line and no line per request', async (t) => {
  const echo = await echoServer();
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-admin-'));
  const file = join(dir, 'l4lb.yaml');
  writeFileSync(
    file,
    `admin: { listen: "127.0.0.1:0", token: "${TOKEN}" }\nlog: { level: info, access: "off" }\nlisteners:\n  - { name: web, listen: "127.0.0.1:0", pool: web }\npools:\n  - { name: web, backends: ["127.0.0.1:${echo.port}"] }\n`,
  );
  const l4lb = await spawnL4lb(['--config', file]);
  t.after(async () => {
    await l4lb.stop('SIGKILL');
    await echo.close();
    rmSync(dir, { recursive: true, force: true });
  });
  await waitFor(() => l4lb.stdout.some((l) => l.startsWith('admin on ')), 5000, 'the admin on line');
  const admin = new URL(l4lb.stdout.find((l) => l.startsWith('admin on '))!.slice('admin on '.length));
  const port = Number(admin.port);
  // Let the start-up lines settle, then count only what the requests cause.
  await new Promise((r) => setTimeout(r, 300));
  const linesBefore = l4lb.stderr().split('\n').length;

  const ROUNDS = 25;
  for (let round = 0; round < ROUNDS; round++) {
    for (const target of MALFORMED) assert.equal(await rawRequest(port, target), 400, `GET ${target}`);
    assert.equal(await rawRequest(port, '/api/v1/status'), 401, 'no token');
    assert.equal(await rawRequest(port, '/api/v1/status', { Authorization: 'Bearer wrong' }), 401, 'wrong token');
  }
  assert.equal(await rawRequest(port, '/api/v1/status', { Authorization: `Bearer ${TOKEN}` }), 200, 'the token still works');

  await new Promise((r) => setTimeout(r, 300));
  const caused = l4lb.stderr().split('\n').slice(linesBefore - 1).filter((l) => l.startsWith('{'));
  const levels = caused.map((l) => (JSON.parse(l) as { level: string }).level);
  assert.ok(!levels.includes('error') && !levels.includes('fatal'), `no error-level line: ${caused.join('\n')}`);
  assert.ok(caused.length <= 5, `${caused.length} log lines for ${ROUNDS * (MALFORMED.length + 2)} requests:\n${caused.join('\n')}`);
});

/** A status source that always fails: every status request is an unexpected failure (500). */
const broken: StatusSource = {
  status: () => Promise.reject(new Error('status source broke')),
  act: () => Promise.reject(new Error('status source broke')),
};

function capturingLogger(): { logger: pino.Logger; lines: Array<{ level: number; msg: string; authenticated?: boolean; suppressed?: number }> } {
  const lines: Array<{ level: number; msg: string }> = [];
  const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s) as { level: number; msg: string }) });
  return { logger, lines };
}

for (const token of [undefined, TOKEN]) {
  test(`unexpected failures are logged at most 10 times per 10 s, at error level only with the token (${token ? 'token set' : 'no token'})`, async (t) => {
    const { logger, lines } = capturingLogger();
    const server = new AdminServer(broken, { host: '127.0.0.1', port: 0, token, logger });
    await server.listen();
    t.after(() => server.close());
    const port = server.address.port;
    const auth: Record<string, string> = token ? { Authorization: `Bearer ${token}` } : {};
    for (let i = 0; i < 100; i++) assert.equal(await rawRequest(port, '/api/v1/status', auth), 500);
    if (token) for (let i = 0; i < 50; i++) assert.equal(await rawRequest(port, '/api/v1/status'), 401);
    const failed = lines.filter((l) => l.msg === 'admin request failed');
    assert.ok(failed.length > 0, 'failures are logged');
    assert.ok(failed.length <= 10, `${failed.length} lines for 100 failures`);
    // pino levels: 40 warn, 50 error. Without a token nobody has authenticated.
    for (const l of failed) assert.equal(l.level, token ? 50 : 40, JSON.stringify(l));
    for (const l of failed) assert.equal(l.authenticated, token !== undefined);
  });
}
