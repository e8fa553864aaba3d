/**
 * TLS ClientHello peek: built hellos and one captured from a real node:tls client, re-framed into
 * arbitrary records and read chunks; named malformations (one per reason); arbitrary input.
 */
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import fc from 'fast-check';
import { ErrorCodes, ProtocolError } from '../../src/errors.js';
import {
  CLIENT_HELLO_MAX,
  parseClientHello,
  type ClientHelloInfo,
  type ClientHelloResult,
} from '../../src/protocol/tls-client-hello.js';
import { clientHello, ext, record, records, sniExt, u16, u24, u8 } from '../support/client-hello.js';

function reasonOf(input: Uint8Array): string {
  try {
    const r = parseClientHello(input);
    assert.fail(`expected a ProtocolError, got ${JSON.stringify(r)}`);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    assert.equal(e.code, ErrorCodes.TLS_CLIENT_HELLO);
    return e.reason;
  }
}

function done(r: ClientHelloResult): ClientHelloInfo {
  assert.equal(r.status, 'done');
  return r as ClientHelloInfo;
}

/** Feeds `bytes` in chunks of the given sizes to a fresh accumulation, as a listener would. */
function feed(bytes: Buffer, chunkSizes: number[]): { result: ClientHelloResult; fedBytes: number } {
  let acc = Buffer.alloc(0);
  let at = 0;
  let i = 0;
  while (at < bytes.length) {
    const n = Math.max(1, chunkSizes.length > 0 ? chunkSizes[i++ % chunkSizes.length] : bytes.length);
    acc = Buffer.concat([acc, bytes.subarray(at, at + n)]);
    at += n;
    const r = parseClientHello(acc);
    if (r.status === 'done') return { result: r, fedBytes: acc.length };
  }
  return { result: { status: 'incomplete' }, fedBytes: acc.length };
}

/** Captures the first bytes a real node:tls client sends. */
async function captureNodeClientHello(): Promise<Buffer> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  try {
    const got = new Promise<Buffer>((resolve, reject) => {
      server.once('connection', (sock) => {
        let acc = Buffer.alloc(0);
        sock.on('data', (d: Buffer) => {
          acc = Buffer.concat([acc, d]);
          try {
            if (parseClientHello(acc).status === 'done') {
              sock.destroy();
              resolve(acc);
            }
          } catch (e) {
            sock.destroy();
            reject(e);
          }
        });
        sock.on('error', () => {});
      });
    });
    const client = tls.connect({ port, host: '127.0.0.1', servername: 'api.example.com', ALPNProtocols: ['h2', 'http/1.1'] });
    client.on('error', () => {}); // the server hangs up mid-handshake on purpose
    try {
      return await got;
    } finally {
      client.destroy();
    }
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------------

describe('ClientHello parsing', () => {
  test('reads the SNI and ALPN of a single-record hello', () => {
    const bytes = records(clientHello({ sni: 'api.example.com', alpn: ['h2', 'http/1.1'] }));
    const r = done(parseClientHello(bytes));
    assert.equal(r.serverName, 'api.example.com');
    assert.deepEqual(r.alpn, ['h2', 'http/1.1']);
    assert.equal(r.consumed, bytes.length);
    assert.equal(r.legacyVersion, 0x0303);
  });

  test('lower-cases the name and drops a trailing dot', () => {
    assert.equal(done(parseClientHello(records(clientHello({ sni: 'API.Example.COM.' })))).serverName, 'api.example.com');
  });

  test('reports no name and no ALPN when the client sent neither', () => {
    const r = done(parseClientHello(records(clientHello())));
    assert.equal(r.serverName, undefined);
    assert.deepEqual(r.alpn, []);
  });

  test('accepts a hello without any extensions block', () => {
    const r = done(parseClientHello(records(clientHello({ noExtensions: true }))));
    assert.equal(r.serverName, undefined);
  });

  test('ignores server_name entries of other name types', () => {
    const hello = clientHello({ extensions: [sniExt([{ type: 7, name: 'whatever' }])] });
    assert.equal(done(parseClientHello(records(hello))).serverName, undefined);
    const both = clientHello({ extensions: [sniExt([{ type: 7, name: 'x' }, { name: 'b.example' }])] });
    assert.equal(done(parseClientHello(records(both))).serverName, 'b.example');
  });

  test('reassembles a hello split across many records and returns at its last byte', () => {
    const msg = clientHello({ sni: 'split.example', alpn: ['h2'] });
    const bytes = records(msg, [1, 2, 3, 5, 8, 13]);
    const withMore = Buffer.concat([bytes, record(Buffer.from('next'), 0x17)]);
    const r = done(parseClientHello(withMore));
    assert.equal(r.serverName, 'split.example');
    assert.equal(r.consumed, bytes.length);
  });

  test('does not wait for the rest of a record once the hello is whole', () => {
    const msg = clientHello({ sni: 'a.example' });
    const rec = record(Buffer.concat([msg, Buffer.alloc(50)]));
    const partial = rec.subarray(0, 5 + msg.length);
    const r = done(parseClientHello(partial));
    assert.equal(r.serverName, 'a.example');
    assert.equal(r.consumed, 5 + msg.length);
    assert.equal(done(parseClientHello(rec)).consumed, 5 + msg.length);
  });

  test('parses a hello fed one byte at a time (fragmented)', () => {
    const bytes = records(clientHello({ sni: 'bytes.example', alpn: ['http/1.1'] }), [10, 1, 100]);
    const { result, fedBytes } = feed(bytes, [1]);
    assert.equal(fedBytes, bytes.length);
    assert.equal(done(result).serverName, 'bytes.example');
  });

  test('says incomplete for every strict prefix (truncated)', () => {
    const bytes = records(clientHello({ sni: 't.example', alpn: ['h2'] }), [7, 30]);
    for (let i = 0; i < bytes.length; i++) {
      assert.deepEqual(parseClientHello(bytes.subarray(0, i)), { status: 'incomplete' }, `prefix ${i}`);
    }
  });
});

describe('ClientHello malformations', () => {
  test('rejects non-TLS input at the first byte (not_tls)', () => {
    assert.equal(reasonOf(Buffer.from('G')), 'not_tls');
    assert.equal(reasonOf(Buffer.from('GET / HTTP/1.1\r\n')), 'not_tls');
    assert.equal(reasonOf(Buffer.from([0x80, 0x2e, 0x01])), 'not_tls'); // SSLv2-style hello
    assert.equal(reasonOf(Buffer.from([0x16, 0x02])), 'not_tls');
    assert.equal(reasonOf(Buffer.from([0x16, 0x03, 0x09])), 'not_tls');
  });

  test('rejects bad record framing (bad_record)', () => {
    const msg = clientHello({ sni: 'a.example' });
    // Another record type in the middle of the handshake message.
    assert.equal(reasonOf(Buffer.concat([record(msg.subarray(0, 10)), record(msg.subarray(10), 0x17)])), 'bad_record');
    // ... noticed from its first byte.
    assert.equal(reasonOf(Buffer.concat([record(msg.subarray(0, 10)), Buffer.from([0x15])])), 'bad_record');
    // A zero-length handshake record.
    assert.equal(reasonOf(Buffer.concat([record(Buffer.alloc(0)), record(msg)])), 'bad_record');
    // A record longer than 2^14.
    assert.equal(reasonOf(Buffer.from([0x16, 0x03, 0x01, 0x40, 0x01])), 'bad_record');
    // A bad version on a later record.
    assert.equal(reasonOf(Buffer.concat([record(msg.subarray(0, 10)), Buffer.from([0x16, 0x04])])), 'bad_record');
  });

  test('rejects a handshake message that is not a ClientHello (not_client_hello)', () => {
    assert.equal(reasonOf(records(clientHello({ handshakeType: 2 }))), 'not_client_hello');
    // Decided as soon as the handshake type byte is in, even split across records.
    assert.equal(reasonOf(Buffer.concat([record(Buffer.from([2])), record(Buffer.from([0, 0])), record(Buffer.from([5]))])), 'not_client_hello');
  });

  test('rejects a hello larger than the cap as soon as its length is known (too_large)', () => {
    assert.equal(reasonOf(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x01, 0x00, 0x00])), 'too_large');
    assert.equal(reasonOf(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x40, 0x00])), 'too_large');
    // A hello that would fit in one record but is framed in so many tiny records that the peek overflows.
    const big = clientHello({ extensions: [ext(0x0015, Buffer.alloc(3000))] });
    const tiny = records(big, new Array(big.length).fill(1));
    assert.ok(tiny.length > CLIENT_HELLO_MAX);
    assert.equal(reasonOf(tiny.subarray(0, CLIENT_HELLO_MAX + 10)), 'too_large');
    const { result } = feed(records(big, new Array(big.length).fill(1)).subarray(0, CLIENT_HELLO_MAX - 1), [1000]);
    assert.equal(result.status, 'incomplete');
  });

  test('accepts a hello just under the cap', () => {
    const padLen = CLIENT_HELLO_MAX - 5 - clientHello({ extensions: [ext(0x0015, Buffer.alloc(0))] }).length;
    const msg = clientHello({ sni: 'big.example', extensions: [ext(0x0015, Buffer.alloc(padLen - sniExt([{ name: 'big.example' }]).length))] });
    const bytes = records(msg);
    assert.equal(bytes.length, CLIENT_HELLO_MAX);
    assert.equal(done(parseClientHello(bytes)).serverName, 'big.example');
  });

  test('rejects broken fixed fields (bad_client_hello)', () => {
    assert.equal(reasonOf(records(clientHello({ sessionId: Buffer.alloc(33) }))), 'bad_client_hello');
    const short = clientHello({ noExtensions: true });
    // Claim a body shorter than the fixed fields need.
    const cut = Buffer.concat([u8(1), u24(20), short.subarray(4, 24)]);
    assert.equal(reasonOf(records(cut)), 'bad_client_hello');
  });

  test('rejects bad extension framing and duplicates (bad_extension)', () => {
    const dup = clientHello({ extensions: [ext(0x000a, Buffer.from([0, 2, 0, 29])), ext(0x000a, Buffer.from([0, 2, 0, 29]))] });
    assert.equal(reasonOf(records(dup)), 'bad_extension');
    const overrun = clientHello({ extensions: [Buffer.concat([u16(0x000a), u16(50), Buffer.alloc(4)])] });
    assert.equal(reasonOf(records(overrun)), 'bad_extension');
    const emptyAlpnId = clientHello({ extensions: [ext(0x0010, Buffer.from([0, 3, 0, 1, 0x41]))] });
    assert.equal(reasonOf(records(emptyAlpnId)), 'bad_extension');
    const emptyAlpnList = clientHello({ extensions: [ext(0x0010, Buffer.from([0, 0]))] });
    assert.equal(reasonOf(records(emptyAlpnList)), 'bad_extension');
    // Extensions length that disagrees with the message length.
    const msg = clientHello({ sni: 'a.example' });
    // header 4, version 2, random 32, session id 1+32, suites 2+4, compression 1+1
    const extLenAt = 4 + 2 + 32 + 1 + 32 + 2 + 4 + 1 + 1;
    const wrong = Buffer.from(msg);
    wrong.writeUInt16BE(wrong.readUInt16BE(extLenAt) - 1, extLenAt);
    assert.equal(reasonOf(records(wrong)), 'bad_extension');
  });

  test('rejects invalid server names (bad_sni)', () => {
    for (const name of ['', 'a..b', '.a', 'a b', 'a/b', 'é.example', `${'a'.repeat(64)}.example`, '.']) {
      assert.equal(reasonOf(records(clientHello({ extensions: [sniExt([{ name: Buffer.from(name, 'utf8') }])] }))), 'bad_sni', name);
    }
    const two = clientHello({ extensions: [sniExt([{ name: 'a.example' }, { name: 'b.example' }])] });
    assert.equal(reasonOf(records(two)), 'bad_sni');
    const emptyList = clientHello({ extensions: [ext(0, Buffer.from([0, 0]))] });
    assert.equal(reasonOf(records(emptyList)), 'bad_sni');
    const listOverrun = clientHello({ extensions: [ext(0, Buffer.from([0, 9, 0, 0, 1, 0x61]))] });
    assert.equal(reasonOf(records(listOverrun)), 'bad_sni');
  });
});

describe('ClientHello from a real node:tls client', () => {
  let real: Buffer;
  before(async () => {
    real = await captureNodeClientHello();
  });

  test('gives the server name and ALPN list the client was given', () => {
    const r = done(parseClientHello(real));
    assert.equal(r.serverName, 'api.example.com');
    assert.deepEqual(r.alpn, ['h2', 'http/1.1']);
    assert.equal(r.consumed, real.length);
  });

  test('parses the same hello re-framed into random records and fed in random chunks', () => {
    // Take the handshake message out of its record(s) and frame it anew.
    const msg = Buffer.alloc(0 + real.length);
    let m = 0;
    for (let p = 0; p < real.length; ) {
      const len = real.readUInt16BE(p + 3);
      real.copy(msg, m, p + 5, p + 5 + len);
      m += len;
      p += 5 + len;
    }
    const hello = msg.subarray(0, m);
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 20 }),
        fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 10 }),
        (recordSizes, chunkSizes) => {
          const bytes = records(hello, recordSizes);
          const { result, fedBytes } = feed(bytes, chunkSizes);
          const r = done(result);
          assert.equal(r.serverName, 'api.example.com');
          assert.deepEqual(r.alpn, ['h2', 'http/1.1']);
          assert.equal(r.consumed, bytes.length);
          assert.ok(fedBytes >= bytes.length);
        },
      ),
      { numRuns: 200 },
    );
  });
});

describe('ClientHello properties', () => {
  const alpnId = fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 20 });
  const spec = fc.record(
    {
      sni: fc.domain(),
      alpn: fc.array(alpnId, { minLength: 1, maxLength: 4 }),
      sessionId: fc.uint8Array({ maxLength: 32 }).map((u) => Buffer.from(u)),
      extensions: fc.uniqueArray(
        fc.record({ type: fc.integer({ min: 0x0011, max: 0xffff }), body: fc.uint8Array({ maxLength: 60 }) }),
        { maxLength: 5, selector: (e) => e.type },
      ).map((list) => list.map((e) => ext(e.type, Buffer.from(e.body)))),
    },
    { requiredKeys: ['sessionId', 'extensions'] },
  );

  test('built hellos, framed and chunked at random, parse to the name and ALPN they carry', () => {
    fc.assert(
      fc.property(
        spec,
        fc.array(fc.integer({ min: 1, max: 120 }), { maxLength: 12 }),
        fc.array(fc.integer({ min: 1, max: 90 }), { minLength: 1, maxLength: 6 }),
        (s, recordSizes, chunkSizes) => {
          const bytes = records(clientHello(s), recordSizes);
          for (let i = 0; i < bytes.length; i += 7) {
            assert.deepEqual(parseClientHello(bytes.subarray(0, i)), { status: 'incomplete' });
          }
          const r = done(feed(bytes, chunkSizes).result);
          assert.equal(r.serverName, s.sni === undefined ? undefined : s.sni.toLowerCase());
          assert.deepEqual(r.alpn, s.alpn ?? []);
          assert.equal(r.consumed, bytes.length);
        },
      ),
      { numRuns: 300 },
    );
  });

  const anyInput = fc.oneof(
    fc.uint8Array({ maxLength: 400 }),
    fc.uint8Array({ maxLength: 400 }).map((u) => Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u])),
    fc.tuple(spec, fc.array(fc.integer({ min: 1, max: 60 }), { maxLength: 6 }), fc.nat(), fc.integer({ min: 1, max: 255 })).map(
      ([s, sizes, at, x]) => {
        const b = Buffer.from(records(clientHello(s), sizes));
        b[at % b.length] ^= x;
        return b;
      },
    ),
  );

  test('any input gives incomplete, done or a ProtocolError, and nothing else', () => {
    fc.assert(
      fc.property(anyInput, (input) => {
        try {
          const r = parseClientHello(input);
          if (r.status === 'done') assert.ok(r.consumed > 0 && r.consumed <= input.length);
          else assert.equal(r.status, 'incomplete');
        } catch (e) {
          assert.ok(e instanceof ProtocolError, `unexpected ${String(e)}`);
          assert.equal(e.code, ErrorCodes.TLS_CLIENT_HELLO);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('a huge input is decided within the cap', () => {
    // Endless 1-byte records carrying a ClientHello header that claims 16000 bytes.
    const parts = [record(Buffer.from([1])), record(Buffer.from([0])), record(Buffer.from([0x3e])), record(Buffer.from([0x80]))];
    const filler = record(Buffer.from([0]));
    const huge = Buffer.concat([...parts, ...new Array(200_000).fill(filler)]);
    const start = performance.now();
    for (let i = 0; i < 50; i++) assert.throws(() => parseClientHello(huge), { reason: 'too_large' });
    assert.ok(performance.now() - start < 5_000);
  });
});
