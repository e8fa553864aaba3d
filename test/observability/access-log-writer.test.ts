/**
 * The access log as users run it: every connection closed before SIGTERM or a SIGUSR1 reopen
 * has its line, each line is valid JSON with the documented fields in order, and a stderr
 * pipe nobody reads costs dropped (and counted) lines, not memory or service.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import fs from 'node:fs';
import os from 'node:os';
import { join } from 'node:path';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { BIN, echoServer, request, waitFor } from '../support/net.js';
import { formatAccessFields, isoNow } from '../../src/observability/access-log.js';
import { LineWriter, LOG_QUEUE_LIMIT, LOG_BATCH_BYTES } from '../../src/observability/line-writer.js';
import type { AccessRecord } from '../../src/proxy/connection.js';

/** The documented fields of a relayed connection's line, in order (README). */
const FIELDS = ['listener', 'client', 'clientPort', 'pool', 'backend', 'backendAddress', 'tries', 'retries', 'connectMs', 'durationMs', 'bytesUp', 'bytesDown', 'closedFirst', 'closeKind', 'reason'];

function tmpDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'l4lb-access-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface Cli {
  child: ChildProcess;
  port: number;
  stdout: string[];
  exited: Promise<number | null>;
}

/** Starts the CLI with stderr going to `stderrFd`; resolves once it listens. */
async function startCli(args: string[], stderrFd: number | 'pipe' | 'ignore'): Promise<Cli> {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'pipe', stderrFd] });
  const exited = once(child, 'exit').then(([code]) => code as number | null);
  const stdout: string[] = [];
  let buf = '';
  child.stdout!.on('data', (c: Buffer) => {
    buf += c.toString();
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      stdout.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  await waitFor(() => stdout.some((l) => l.startsWith('listening on ')) || child.exitCode !== null, 15000, 'listening line');
  const line = stdout.find((l) => l.startsWith('listening on '));
  assert.ok(line, `l4lb exited with ${child.exitCode} before listening`);
  return { child, port: Number(line.slice(line.lastIndexOf(':') + 1)), stdout, exited };
}

/** `n` request/response connections through `port`, `parallel` at a time. */
async function connections(port: number, n: number, parallel = 20): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < n) {
      next++;
      assert.equal(await request(port, 'ping'), 'ping');
    }
  };
  await Promise.all(Array.from({ length: Math.min(parallel, n) }, worker));
}

function jsonLines(text: string): Record<string, unknown>[] {
  assert.ok(text.endsWith('\n'), 'the log ends with a whole line');
  return text.slice(0, -1).split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
}

function assertAccessLine(rec: Record<string, unknown>, head: string[]): void {
  assert.deepEqual(Object.keys(rec), [...head, ...FIELDS]);
  assert.equal(rec.reason, 'client_closed');
  assert.equal(rec.bytesUp, 4);
  assert.equal(rec.bytesDown, 4);
  assert.match(rec.time as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
}

test('formatAccessFields writes what JSON.stringify would, for any string', () => {
  const awkward = ['plain', 'quote " and \\ backslash', 'tab\tnew\nline\u0000\u001f', 'é ü 漢字 😀', 'lone \ud800 surrogate \udc00', '\u2028\u2029', ''];
  for (const s of awkward) {
    const rec: AccessRecord = {
      listener: s, client: '::1', clientPort: 1, pool: s, backend: undefined, backendAddress: s, serverName: s, tries: 2, retries: 1,
      connectMs: 0.41, durationMs: 12, bytesUp: 5, bytesDown: Number.NaN, closedFirst: 'proxy', closeKind: 'proxy', reason: 'no_backend', code: 'L4LB_ERR_NO_BACKEND', error: s,
    };
    const line = `{"time":"x"${formatAccessFields(rec)}`;
    assert.ok(line.endsWith('}\n'));
    assert.equal(line.slice(0, -1), JSON.stringify({ time: 'x', ...rec }), JSON.stringify(s));
    // A UDP session's record: its own fields follow, in order.
    const udp = { ...rec, protocol: 'udp', datagramsUp: 3, datagramsDown: 2 };
    assert.equal(`{"time":"x"${formatAccessFields(udp)}`.slice(0, -1), JSON.stringify({ time: 'x', ...udp }));
  }
});

test('formatAccessFields writes numbers as JSON.stringify does (hundredths without the double conversion)', () => {
  const values = [0, -0, 0.1, 0.29, 0.5, 1.5, 12345678.91, 9999999.99, 10000000.01, 1e-7, 1e21, 5e-324, 0.21 + Number.EPSILON, Number.NaN, Infinity, -Infinity];
  for (let i = 0; i < 20000; i++) values.push(i / 100, i / 1000, Math.round(i * 7.77) / 100, -i / 100, i * 0.01, i / 3);
  for (const connectMs of values) {
    const rec: AccessRecord = {
      listener: 'l', client: '::1', clientPort: 1, pool: undefined, backend: undefined, backendAddress: undefined, tries: 1, retries: 0,
      connectMs, durationMs: 1, bytesUp: 1, bytesDown: 1, closedFirst: 'client', closeKind: 'fin', reason: 'client_closed',
    };
    assert.equal(`{"time":"x"${formatAccessFields(rec)}`.slice(0, -1), JSON.stringify({ time: 'x', ...rec }), String(connectMs));
  }
});

test('isoNow gives what Date#toISOString gives, across second and millisecond changes', () => {
  const start = Date.parse('2026-12-31T23:59:58.000Z');
  for (let t = start; t < start + 4000; t += 3) assert.equal(isoNow(t), new Date(t).toISOString());
  for (const t of [0, 7, 999, 1000, 1e12 + 1, Date.now()]) assert.equal(isoNow(t), new Date(t).toISOString());
});

test('--access-log FILE: N connections, then SIGTERM, gives exactly N valid lines', async (t) => {
  const dir = tmpDir(t);
  const e = await echoServer();
  t.after(() => e.close());
  const file = join(dir, 'sub', 'access.log');
  const cli = await startCli(['--access-log', file, `127.0.0.1:${e.port}`], 'ignore');
  t.after(() => cli.child.kill('SIGKILL'));
  const n = 300;
  await connections(cli.port, n);
  cli.child.kill('SIGTERM');
  assert.equal(await cli.exited, 0);
  const lines = jsonLines(fs.readFileSync(file, 'utf8'));
  assert.equal(lines.length, n);
  for (const rec of lines) assertAccessLine(rec, ['time']);
  assert.equal(new Set(lines.map((r) => r.clientPort)).size, n, 'one line per connection');
});

test('the default (stderr) redirected to a file: N connections, then SIGTERM, gives N access lines among the process log', async (t) => {
  const dir = tmpDir(t);
  const e = await echoServer();
  t.after(() => e.close());
  const file = join(dir, 'stderr.log');
  const fd = fs.openSync(file, 'w');
  const cli = await startCli([`127.0.0.1:${e.port}`], fd);
  fs.closeSync(fd);
  t.after(() => cli.child.kill('SIGKILL'));
  const n = 200;
  await connections(cli.port, n);
  cli.child.kill('SIGTERM');
  assert.equal(await cli.exited, 0);
  const lines = jsonLines(fs.readFileSync(file, 'utf8'));
  const access = lines.filter((l) => l.msg === 'access');
  assert.equal(access.length, n);
  for (const rec of access) assertAccessLine(rec, ['level', 'time', 'pid', 'msg']);
  assert.equal(lines.at(-1)!.msg, 'l4lb stopped', 'process log lines keep their order with access lines');
});

test('SIGUSR1 reopens the file: lines before it are in the moved file, lines after it in the new one', async (t) => {
  const dir = tmpDir(t);
  const e = await echoServer();
  t.after(() => e.close());
  const file = join(dir, 'access.log');
  const cli = await startCli(['--access-log', file, `127.0.0.1:${e.port}`], 'ignore');
  t.after(() => cli.child.kill('SIGKILL'));
  await connections(cli.port, 50);
  fs.renameSync(file, `${file}.1`);
  cli.child.kill('SIGUSR1');
  await waitFor(() => fs.existsSync(file), 5000, 'the reopened file');
  await connections(cli.port, 30);
  cli.child.kill('SIGTERM');
  assert.equal(await cli.exited, 0);
  assert.equal(jsonLines(fs.readFileSync(`${file}.1`, 'utf8')).length, 50);
  assert.equal(jsonLines(fs.readFileSync(file, 'utf8')).length, 30);
});

/** A FIFO opened read-write by this process, which never reads it: a pipe nobody reads. */
function deafPipe(t: { after(fn: () => void): void }): number {
  const fifo = join(tmpDir(t), 'fifo');
  execFileSync('mkfifo', [fifo]);
  const fd = fs.openSync(fifo, 'r+');
  t.after(() => fs.closeSync(fd));
  return fd;
}

test('a LineWriter on a pipe nobody reads holds at most its bound and counts every line it drops', async (t) => {
  const fd = deafPipe(t);
  const stream = new net.Socket({ fd, readable: false, writable: true });
  t.after(() => stream.destroy());
  const w = LineWriter.forFd(fd, () => stream);
  const line = `${'x'.repeat(299)}\n`;
  const total = Math.ceil((3 * LOG_QUEUE_LIMIT) / line.length);
  let accepted = 0;
  for (let i = 0; i < total; i++) {
    if (w.write(line)) accepted++;
    if (i % 1000 === 0) await new Promise((r) => setImmediate(r));
  }
  await new Promise((r) => setTimeout(r, 50));
  assert.ok(w.dropped > 0, 'lines were dropped');
  assert.equal(accepted + w.dropped, total, 'every line is either accepted or counted');
  assert.ok(w.pendingChars <= LOG_QUEUE_LIMIT, `pending ${w.pendingChars}`);
  assert.ok(stream.writableLength <= LOG_BATCH_BYTES, `queued in the stream ${stream.writableLength}`);
});

test('stderr to a pipe nobody reads: the proxy keeps serving, drops are counted in /metrics, SIGTERM still exits', async (t) => {
  const dir = tmpDir(t);
  const e = await echoServer();
  t.after(() => e.close());
  // A long listener name makes each line ~600 bytes, so fewer connections fill the pipe and the bound.
  const name = `l${'x'.repeat(199)}`;
  const config = join(dir, 'l4lb.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      listeners: [{ name, listen: '127.0.0.1:0', pool: 'p' }],
      pools: [{ name: 'p', backends: [`127.0.0.1:${e.port}`] }],
      admin: { listen: '127.0.0.1:0' },
    }),
  );
  const cli = await startCli(['--config', config], deafPipe(t));
  t.after(() => cli.child.kill('SIGKILL'));
  await waitFor(() => cli.stdout.some((l) => l.startsWith('admin on ')), 10000, 'admin line');
  const admin = cli.stdout.find((l) => l.startsWith('admin on '))!.slice('admin on '.length);
  // 64 KiB of pipe plus LOG_QUEUE_LIMIT characters of queue, at ~600 bytes a line.
  const n = Math.ceil((LOG_QUEUE_LIMIT + 65536) / 560) + 400;
  await connections(cli.port, n, 50);
  const metrics = await (await fetch(`${admin}/metrics`)).text();
  const m = /^l4lb_access_log_dropped_total (\d+)$/m.exec(metrics);
  assert.ok(m, 'the metric is exported');
  assert.ok(Number(m[1]) > 0, `dropped ${m[1]}`);
  assert.equal(await request(cli.port, 'ping'), 'ping', 'still serving');
  cli.child.kill('SIGTERM');
  assert.equal(await cli.exited, 0);
});
