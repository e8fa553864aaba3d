/**
 * Every line of every access-log target is a JSON object with the documented fields
 * (docs/operations.md, "Access-log lines"): the stderr log and a file, for connections that
 * were relayed and for every kind of early ending (refused by the ACL, malformed PROXY
 * header, no backend, connect refused, connect timeout). Runs the built CLI, with one and
 * with two workers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { blackHole, connect, echoServer, readAll, refusedPort, request, spawnL4lb } from '../support/net.js';

/** Fields every line has, and their JSON types. */
const ALWAYS: Record<string, string> = {
  time: 'string',
  listener: 'string',
  client: 'string',
  clientPort: 'number',
  tries: 'number',
  retries: 'number',
  connectMs: 'number',
  durationMs: 'number',
  bytesUp: 'number',
  bytesDown: 'number',
  closedFirst: 'string',
  closeKind: 'string',
  reason: 'string',
};

/** The ending each listener of the config below produces, with what its line must say. */
const EXPECTED: Record<string, { reason: string; code?: string; pool: boolean; backend: boolean; bytes?: number; client?: string }> = {
  relay: { reason: 'client_closed', pool: true, backend: true, bytes: 5 },
  acl: { reason: 'acl', pool: false, backend: false, client: '10.1.2.3' },
  badproxy: { reason: 'bad_proxy_header', code: 'L4LB_ERR_PROXY_HEADER', pool: false, backend: false },
  nobackend: { reason: 'no_backend', code: 'L4LB_ERR_NO_BACKEND', pool: true, backend: false },
  refused: { reason: 'backend_connect_refused', code: 'L4LB_ERR_CONNECT_REFUSED', pool: true, backend: true },
  timeout: { reason: 'backend_connect_timeout', code: 'L4LB_ERR_CONNECT_TIMEOUT', pool: true, backend: true },
};

function parseLines(text: string, where: string): Record<string, unknown>[] {
  const lines = text.split('\n');
  assert.equal(lines.pop(), '', `${where} ends with a newline`);
  return lines.map((line, i) => {
    try {
      const v = JSON.parse(line) as unknown;
      assert.ok(v !== null && typeof v === 'object' && !Array.isArray(v), `${where} line ${i + 1} is an object`);
      return v as Record<string, unknown>;
    } catch (err) {
      throw new Error(`${where} line ${i + 1} is not JSON (${(err as Error).message}): ${line.slice(0, 200)}`);
    }
  });
}

function checkRecord(rec: Record<string, unknown>, where: string): void {
  for (const [field, type] of Object.entries(ALWAYS)) {
    assert.equal(typeof rec[field], type, `${where}: ${field} is a ${type} in ${JSON.stringify(rec)}`);
  }
  assert.ok(!Number.isNaN(Date.parse(rec.time as string)), `${where}: time is a date`);
  const want = EXPECTED[rec.listener as string];
  assert.ok(want, `${where}: a listener of the test (${String(rec.listener)})`);
  assert.equal(rec.reason, want.reason, `${where}: reason of ${String(rec.listener)}`);
  assert.equal(rec.code, want.code, `${where}: code of ${String(rec.listener)}`);
  assert.equal(typeof rec.pool, want.pool ? 'string' : 'undefined', `${where}: pool of ${String(rec.listener)}`);
  assert.equal(typeof rec.backend, want.backend ? 'string' : 'undefined', `${where}: backend of ${String(rec.listener)}`);
  assert.equal(typeof rec.backendAddress, want.backend ? 'string' : 'undefined', `${where}: backendAddress of ${String(rec.listener)}`);
  assert.equal(rec.client, want.client ?? '127.0.0.1', `${where}: client of ${String(rec.listener)}`);
  if (rec.error !== undefined || want.reason.startsWith('backend_connect_')) {
    assert.equal(typeof rec.error, 'string', `${where}: error of ${String(rec.listener)}`);
  }
  if (want.bytes !== undefined) {
    assert.equal(rec.bytesUp, want.bytes);
    assert.equal(rec.bytesDown, want.bytes);
  }
}

for (const target of ['stderr', 'file'] as const) {
  for (const workers of [1, 2]) {
    test(`access log to ${target}, ${workers} worker(s): every line is JSON with the documented fields, relayed and early endings`, async (t) => {
      const echo = await echoServer();
      const hole = await blackHole();
      const dead = await refusedPort();
      const dir = mkdtempSync(join(tmpdir(), 'l4lb-access-'));
      const file = join(dir, 'logs', 'access.log');
      const listeners = Object.keys(EXPECTED);
      const cfg = {
        workers,
        log: { level: 'info', access: target === 'file' ? file : 'stderr' },
        listeners: [
          { name: 'relay', listen: '127.0.0.1:0', pool: 'ok' },
          { name: 'acl', listen: '127.0.0.1:0', pool: 'ok', acceptProxy: { trusted: ['127.0.0.1/32'] }, acl: [{ deny: '10.0.0.0/8' }] },
          { name: 'badproxy', listen: '127.0.0.1:0', pool: 'ok', acceptProxy: { trusted: ['127.0.0.1/32'] } },
          { name: 'nobackend', listen: '127.0.0.1:0', pool: 'off' },
          { name: 'refused', listen: '127.0.0.1:0', pool: 'dead' },
          { name: 'timeout', listen: '127.0.0.1:0', pool: 'hole', timeouts: { connect: '300ms' } },
        ],
        pools: [
          { name: 'ok', backends: [`127.0.0.1:${echo.port}`] },
          { name: 'off', backends: [{ address: `127.0.0.1:${echo.port}`, state: 'disabled' }] },
          { name: 'dead', backends: [`127.0.0.1:${dead}`] },
          { name: 'hole', backends: [`127.0.0.1:${hole.port}`] },
        ],
      };
      const configFile = join(dir, 'l4lb.json');
      writeFileSync(configFile, JSON.stringify(cfg));
      // Registered before the spawn: if l4lb fails to start, the servers must still close or the
      // test process never exits.
      let started: Awaited<ReturnType<typeof spawnL4lb>> | undefined;
      t.after(async () => {
        await started?.stop('SIGKILL');
        await echo.close();
        await hole.close();
        rmSync(dir, { recursive: true, force: true });
      });
      const l4lb = await spawnL4lb(['--config', configFile], { listeners: listeners.length });
      started = l4lb;
      const portOf = (i: number) => Number(l4lb.addresses[i].slice(l4lb.addresses[i].lastIndexOf(':') + 1));

      assert.equal(await request(portOf(0), 'hello'), 'hello');
      const proxied = await connect(portOf(1));
      const proxiedEnd = readAll(proxied).catch(() => Buffer.alloc(0));
      proxied.end('PROXY TCP4 10.1.2.3 127.0.0.1 40000 80\r\nhello');
      await proxiedEnd;
      proxied.destroy();
      const bad = await connect(portOf(2));
      const badEnd = readAll(bad).catch(() => Buffer.alloc(0));
      bad.end('GARBAGE that is not a PROXY header\r\n');
      await badEnd;
      bad.destroy();
      for (const i of [3, 4, 5]) {
        const c = await connect(portOf(i));
        await readAll(c).catch(() => Buffer.alloc(0));
        c.destroy();
      }

      // Stop gracefully so the file is flushed, then read what was written.
      const code = await l4lb.stop('SIGTERM');
      assert.equal(code, 0, l4lb.stderr());
      const stderrLines = parseLines(l4lb.stderr(), 'stderr');
      let records: Record<string, unknown>[];
      if (target === 'file') {
        assert.ok(existsSync(file), 'the access-log file exists');
        records = parseLines(readFileSync(file, 'utf8'), 'access-log file');
        assert.equal(stderrLines.filter((l) => l.msg === 'access').length, 0, 'no access lines on stderr');
      } else {
        records = stderrLines.filter((l) => l.msg === 'access');
      }
      for (const [i, rec] of records.entries()) checkRecord(rec, `${target} record ${i + 1}`);
      assert.deepEqual(
        records.map((r) => r.listener).sort(),
        [...listeners].sort(),
        `one line per connection: ${JSON.stringify(records)}`,
      );
    });
  }
}
