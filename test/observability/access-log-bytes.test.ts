/**
 * The access log writes its lines as bytes straight into the LineWriter's batches
 * (docs/performance.md, "Seventh pass"): for any record (names and SNI with quotes,
 * backslashes, control characters, non-ASCII, lone surrogates; any number) a line is byte for
 * byte what JSON.stringify would make of it, and a LineWriter hands on every line whole and in
 * order, whatever their lengths against its batches.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { createAccessLog, formatAccessFields } from '../../src/observability/access-log.js';
import { LineWriter, LOG_FILE_BATCH_BYTES } from '../../src/observability/line-writer.js';
import { silentLogger } from '../../src/observability/log.js';
import type { AccessRecord } from '../../src/proxy/connection.js';

function tmpDir(t: { after(fn: () => void): void }): string {
  const dir = fs.mkdtempSync(join(os.tmpdir(), 'l4lb-access-bytes-'));
  t.after(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Any UTF-16 unit, lone surrogates included. */
const unit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c));
const awkward = fc.constantFrom('"', '\\', '\n', '\u0000', '\u001f', '\u007f', '\u2028', 'é', '😀', '\ud800', '\udc00', '\udbff\udfff');
const text = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit, maxLength: 30 }),
  fc.array(fc.oneof(fc.string({ maxLength: 4 }), awkward), { maxLength: 10 }).map((a) => a.join('')),
  fc.constantFrom('127.0.0.1', '::1', 'default', '127.0.0.1:8081', 'client_closed'),
);
const number = fc.oneof(
  fc.nat(),
  fc.integer({ min: -2_000_000, max: 2_000_000 }).map((i) => i / 100),
  fc.double(),
  fc.constantFrom(0, -0, 9, 10, 99, 100, 999_999_999, 1e9, 2 ** 31 - 1, 2 ** 31, 0.21, 1e15, 1e21, 2 ** 53, Number.MAX_VALUE, 5e-324, Number.NaN, Infinity, -Infinity),
);
const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });

/** A record with every field in its documented order; optional ones undefined or not. */
const record = fc
  .record({
    listener: text, client: text, clientPort: number, pool: maybe(text), backend: maybe(text), backendAddress: maybe(text),
    serverName: maybe(text), tries: number, retries: number, connectMs: number, durationMs: number, bytesUp: number,
    bytesDown: number, closedFirst: text, closeKind: text, reason: text, code: maybe(text), error: maybe(text),
    mirrorBytes: maybe(number), mirrorDropped: maybe(text), replays: maybe(number), faults: maybe(fc.array(text, { maxLength: 3 })),
    udp: maybe(fc.record({ protocol: text, datagramsUp: number, datagramsDown: number })),
  })
  .map(({ udp, ...r }): AccessRecord => ({ ...r, ...udp }));

/** The line JSON.stringify makes of `rec` after `head`, as UTF-8. */
function expected(head: Record<string, unknown>, rec: AccessRecord): string {
  return `${JSON.stringify({ ...head, ...rec })}\n`;
}

test('formatAccessFields writes byte for byte what JSON.stringify does, for any record', () => {
  fc.assert(
    fc.property(record, (rec) => {
      assert.equal(`{"time":"x"${formatAccessFields(rec)}`, expected({ time: 'x' }, rec));
    }),
    { numRuns: 2000 },
  );
});

test('--access-log FILE: any records, long ones among them, come out byte for byte as JSON.stringify lines', async (t) => {
  const dir = tmpDir(t);
  // Some records are longer than a batch, so the writer's every path (in the batch, through
  // its scratch buffer, a line of batches of its own) is taken.
  const long = fc.string({ unit, minLength: LOG_FILE_BATCH_BYTES / 4, maxLength: LOG_FILE_BATCH_BYTES / 2 });
  const records = fc.array(fc.oneof({ weight: 20, arbitrary: record }, { weight: 1, arbitrary: fc.tuple(record, long).map(([r, s]) => ({ ...r, error: s })) }), {
    minLength: 1,
    maxLength: 400,
  });
  let run = 0;
  await fc.assert(
    fc.asyncProperty(records, async (recs) => {
      const file = join(dir, `access-${run++}.log`);
      const log = createAccessLog(file, silentLogger());
      for (const [i, rec] of recs.entries()) {
        log.write(rec);
        if (i % 50 === 0) await new Promise((r) => setImmediate(r));
      }
      log.close();
      const got = fs.readFileSync(file);
      fs.rmSync(file);
      let at = 0;
      for (const rec of recs) {
        const end = got.indexOf(0x0a, at) + 1;
        assert.ok(end > 0, 'a line for every record');
        const line = got.subarray(at, end);
        const time = /^\{"time":"([^"]*)"/.exec(line.toString('latin1'))?.[1];
        assert.match(time ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.ok(line.equals(Buffer.from(expected({ time }, rec))), `line ${line.toString()} of ${JSON.stringify(rec)}`);
        at = end;
      }
      assert.equal(at, got.length, 'nothing after the last line');
    }),
    // Shrinking hundreds of long records would take minutes: the first counterexample is reported.
    { numRuns: 30, endOnFailure: true },
  );
});

/** A pipe this process reads: the write end for a LineWriter, and everything read from it. */
function readPipe(t: { after(fn: () => void): void }): { fd: number; read: () => Promise<Buffer> } {
  const fifo = join(tmpDir(t), 'fifo');
  execFileSync('mkfifo', [fifo]);
  const rfd = fs.openSync(fifo, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
  const fd = fs.openSync(fifo, 'w');
  const reader = new net.Socket({ fd: rfd, readable: true, writable: false });
  const chunks: Buffer[] = [];
  reader.on('data', (c: Buffer) => chunks.push(c));
  t.after(() => reader.destroy());
  return {
    fd,
    read: async () => {
      await new Promise((r) => reader.once('end', r));
      return Buffer.concat(chunks);
    },
  };
}

test('a LineWriter hands on any lines whole and in order, to a file and to a pipe', async (t) => {
  const dir = tmpDir(t);
  const line = fc.oneof(
    { weight: 10, arbitrary: fc.string({ unit: 'binary', maxLength: 300 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', minLength: 3000, maxLength: 20000 }) },
  );
  const lines = fc.array(line.map((s) => `${s.replaceAll('\n', ' ')}\n`), { minLength: 1, maxLength: 300 });
  let run = 0;
  await fc.assert(
    fc.asyncProperty(lines, fc.boolean(), async (ls, pipe) => {
      const want = Buffer.from(ls.join(''));
      if (!pipe) {
        const file = join(dir, `lines-${run++}.log`);
        const w = LineWriter.forFile(file);
        for (const l of ls) assert.ok(w.write(l));
        w.close();
        assert.ok(fs.readFileSync(file).equals(want));
        fs.rmSync(file);
        return;
      }
      const p = readPipe(t);
      const stream = new net.Socket({ fd: p.fd, readable: false, writable: true });
      const w = LineWriter.forFd(p.fd, () => stream);
      for (const [i, l] of ls.entries()) {
        assert.ok(w.write(l));
        if (i % 20 === 0) await new Promise((r) => setImmediate(r));
      }
      await new Promise<void>((r) => w.whenWritten(r));
      w.close();
      stream.end();
      assert.ok((await p.read()).equals(want));
      assert.equal(w.dropped, 0);
    }),
    { numRuns: 40, endOnFailure: true },
  );
});
