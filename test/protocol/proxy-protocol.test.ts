/**
 * PROXY protocol v1/v2 codec: named malformations (one per reason), encode/decode round trips,
 * prefix and byte-at-a-time feeding, and arbitrary input that must only ever yield incomplete,
 * done or a ProtocolError.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ErrorCodes, ProtocolError } from '../../src/errors.js';
import { formatIPv6, parseIPv6 } from '../../src/admission/acl.js';
import {
  PP2_CLIENT_CERT_CONN,
  PP2_CLIENT_SSL,
  PP2_TYPE_ALPN,
  PP2_TYPE_AUTHORITY,
  PP2_TYPE_CRC32C,
  PP2_TYPE_NOOP,
  PP2_TYPE_SSL,
  PP2_TYPE_UNIQUE_ID,
  PROXY_V1_MAX,
  PROXY_V2_MAX_DEFAULT,
  PROXY_V2_SIGNATURE,
  crc32c,
  decodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  proxyInfoFor,
  sslTlv,
  tlv,
  type ProxyDecodeResult,
  type ProxyHeader,
  type ProxyInfo,
  type ProxyTlv,
} from '../../src/protocol/proxy-protocol.js';

/** Runs the decoder and returns the reason of the ProtocolError it throws, or fails. */
function reasonOf(input: Uint8Array | string): string {
  const buf = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  try {
    const r = decodeProxyHeader(buf);
    assert.fail(`expected a ProtocolError, got ${JSON.stringify(r)}`);
  } catch (e) {
    if (!(e instanceof ProtocolError)) throw e;
    assert.equal(e.code, ErrorCodes.PROXY_HEADER);
    assert.equal(e.side, 'client');
    return e.reason;
  }
}

function done(r: ProxyDecodeResult): { header: ProxyHeader; consumed: number } {
  assert.equal(r.status, 'done', 'expected a complete header');
  if (r.status !== 'done') throw new Error('unreachable');
  return r;
}

/** A v2 header built by hand: ver/cmd byte, family byte, body. */
function v2(verCmd: number, fam: number, body: Uint8Array = new Uint8Array(0), lenOverride?: number): Buffer {
  const h = Buffer.alloc(16);
  PROXY_V2_SIGNATURE.copy(h);
  h[12] = verCmd;
  h[13] = fam;
  h.writeUInt16BE(lenOverride ?? body.length, 14);
  return Buffer.concat([h, body]);
}

function ipv4Block(src = [10, 0, 0, 1], dst = [10, 0, 0, 2], sp = 1234, dp = 443): Buffer {
  const b = Buffer.alloc(12);
  b.set(src, 0);
  b.set(dst, 4);
  b.writeUInt16BE(sp, 8);
  b.writeUInt16BE(dp, 10);
  return b;
}

function tlvBytes(type: number, value: Uint8Array, lenOverride?: number): Buffer {
  const h = Buffer.from([type, 0, 0]);
  h.writeUInt16BE(lenOverride ?? value.length, 1);
  return Buffer.concat([h, value]);
}

const canonical6 = (a: string) => formatIPv6(parseIPv6(a) as Uint8Array);

describe('crc32c', () => {
  test('matches the RFC 4960 check value for "123456789"', () => {
    assert.equal(crc32c(Buffer.from('123456789')), 0xe3069283);
  });

  test('of an empty input is zero', () => {
    assert.equal(crc32c(new Uint8Array(0)), 0);
  });
});

describe('PROXY v1 encoding', () => {
  test('writes the spec example line for TCP4', () => {
    const b = encodeProxyV1({
      command: 'PROXY', family: 'tcp4', sourceAddress: '192.168.0.1', sourcePort: 56324, destAddress: '192.168.0.11', destPort: 443,
    });
    assert.equal(b.toString('latin1'), 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
  });

  test('writes IPv6 addresses in canonical form', () => {
    const b = encodeProxyV1({
      command: 'PROXY', family: 'tcp6', sourceAddress: '2001:DB8:0:0:0:0:0:1', sourcePort: 1, destAddress: '::1', destPort: 2,
    });
    assert.equal(b.toString('latin1'), 'PROXY TCP6 2001:db8::1 ::1 1 2\r\n');
  });

  test('writes UNKNOWN for LOCAL and for the unknown family', () => {
    assert.equal(encodeProxyV1({ command: 'LOCAL', family: 'tcp4' }).toString(), 'PROXY UNKNOWN\r\n');
    assert.equal(encodeProxyV1({ command: 'PROXY', family: 'unknown' }).toString(), 'PROXY UNKNOWN\r\n');
  });

  test('accepts an IPv4-mapped IPv6 address for tcp4 and writes it as IPv4', () => {
    const b = encodeProxyV1({
      command: 'PROXY', family: 'tcp4', sourceAddress: '::ffff:10.0.0.1', sourcePort: 5, destAddress: '10.0.0.2', destPort: 6,
    });
    assert.equal(b.toString(), 'PROXY TCP4 10.0.0.1 10.0.0.2 5 6\r\n');
  });

  test('rejects an address of the wrong family and a port out of range', () => {
    assert.throws(
      () => encodeProxyV1({ command: 'PROXY', family: 'tcp4', sourceAddress: '::1', sourcePort: 1, destAddress: '10.0.0.1', destPort: 1 }),
      RangeError,
    );
    assert.throws(
      () => encodeProxyV1({ command: 'PROXY', family: 'tcp4', sourceAddress: '10.0.0.1', sourcePort: 65536, destAddress: '10.0.0.1', destPort: 1 }),
      RangeError,
    );
  });
});

describe('PROXY v2 encoding', () => {
  test('writes the signature, PROXY command, TCP/IPv4 family and address block', () => {
    const b = encodeProxyV2({
      command: 'PROXY', family: 'tcp4', sourceAddress: '10.0.0.1', sourcePort: 1234, destAddress: '10.0.0.2', destPort: 443,
    });
    assert.deepEqual(b, v2(0x21, 0x11, ipv4Block()));
  });

  test('writes LOCAL with AF_UNSPEC and no address block', () => {
    assert.deepEqual(encodeProxyV2({ command: 'LOCAL', family: 'tcp4', sourceAddress: '10.0.0.1' }), v2(0x20, 0x00));
  });

  test('appends a CRC32C TLV that checks out against the whole header', () => {
    const b = encodeProxyV2({
      command: 'PROXY', family: 'tcp4', sourceAddress: '10.0.0.1', sourcePort: 1, destAddress: '10.0.0.2', destPort: 2, crc32c: true,
    });
    assert.equal(b[b.length - 7], PP2_TYPE_CRC32C);
    const stored = b.readUInt32BE(b.length - 4);
    const zeroed = Buffer.from(b);
    zeroed.fill(0, b.length - 4);
    assert.equal(stored, crc32c(zeroed));
  });

  test('refuses a unique id longer than 128 bytes', () => {
    assert.throws(() => encodeProxyV2({ command: 'LOCAL', family: 'unknown', uniqueId: Buffer.alloc(129) }), RangeError);
  });
});

describe('proxyInfoFor', () => {
  test('picks tcp4 for two IPv4 (or IPv4-mapped) addresses', () => {
    assert.deepEqual(proxyInfoFor('::ffff:1.2.3.4', 10, '5.6.7.8', 20), {
      command: 'PROXY', family: 'tcp4', sourceAddress: '1.2.3.4', sourcePort: 10, destAddress: '5.6.7.8', destPort: 20,
    });
  });

  test('picks tcp6 for mixed families, mapping the IPv4 one', () => {
    assert.deepEqual(proxyInfoFor('1.2.3.4', 10, '2001:db8::1', 20), {
      command: 'PROXY', family: 'tcp6', sourceAddress: '::ffff:1.2.3.4', sourcePort: 10, destAddress: '2001:db8::1', destPort: 20,
    });
  });

  test('says unknown when an address is missing', () => {
    assert.equal(proxyInfoFor(undefined, 10, '1.2.3.4', 20).family, 'unknown');
  });
});

describe('PROXY v1 decoding', () => {
  test('decodes a TCP4 line and reports how many bytes it took', () => {
    const line = 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n';
    const r = done(decodeProxyHeader(Buffer.from(line + 'GET / HTTP/1.1\r\n')));
    assert.equal(r.consumed, line.length);
    assert.deepEqual(r.header, {
      version: 1, command: 'PROXY', family: 'tcp4', sourceAddress: '192.168.0.1', sourcePort: 56324,
      destAddress: '192.168.0.11', destPort: 443, tlvs: [],
    });
  });

  test('decodes a TCP6 line and normalises the addresses', () => {
    const r = done(decodeProxyHeader(Buffer.from('PROXY TCP6 2001:DB8:0::1 ::ffff:1.2.3.4 0 65535\r\n')));
    assert.equal(r.header.sourceAddress, '2001:db8::1');
    assert.equal(r.header.destAddress, '::ffff:1.2.3.4');
    assert.equal(r.header.sourcePort, 0);
    assert.equal(r.header.destPort, 65535);
  });

  test('decodes the short UNKNOWN line and ignores what follows UNKNOWN up to the CRLF', () => {
    assert.deepEqual(done(decodeProxyHeader(Buffer.from('PROXY UNKNOWN\r\n'))), {
      status: 'done', header: { version: 1, command: 'PROXY', family: 'unknown', tlvs: [] }, consumed: 15,
    });
    const worst = `PROXY UNKNOWN ${'ffff:'.repeat(7)}ffff ${'ffff:'.repeat(7)}ffff 65535 65535\r\n`;
    assert.equal(worst.length, PROXY_V1_MAX);
    assert.equal(done(decodeProxyHeader(Buffer.from(worst))).consumed, PROXY_V1_MAX);
    assert.equal(done(decodeProxyHeader(Buffer.from('PROXY UNKNOWN whatever\nelse\r\n'))).header.family, 'unknown');
  });

  test('accepts the longest TCP6 line', () => {
    const a = 'ffff:'.repeat(7) + 'ffff';
    const line = `PROXY TCP6 ${a} ${a} 65535 65535\r\n`;
    assert.equal(line.length, 104);
    assert.equal(done(decodeProxyHeader(Buffer.from(line))).consumed, 104);
  });

  test('says incomplete for a truncated line', () => {
    assert.deepEqual(decodeProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2')), { status: 'incomplete' });
    assert.deepEqual(decodeProxyHeader(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r')), { status: 'incomplete' });
    assert.deepEqual(decodeProxyHeader(Buffer.from('PRO')), { status: 'incomplete' });
  });

  test('rejects a line longer than 107 bytes without CRLF (v1_too_long)', () => {
    assert.equal(reasonOf(`PROXY UNKNOWN ${'x'.repeat(200)}`), 'v1_too_long');
    assert.equal(reasonOf(`PROXY TCP4 ${'1'.repeat(PROXY_V1_MAX)}`), 'v1_too_long');
    // Exactly 107 bytes with the CRLF one byte too late.
    const late = `PROXY UNKNOWN ${'x'.repeat(PROXY_V1_MAX - 15)}\r\n`;
    assert.equal(late.length, PROXY_V1_MAX + 1);
    assert.equal(reasonOf(late), 'v1_too_long');
  });

  test('rejects a bad signature at the first byte that gives it away (bad_signature)', () => {
    assert.equal(reasonOf('G'), 'bad_signature');
    assert.equal(reasonOf('GET / HTTP/1.1\r\n'), 'bad_signature');
    assert.equal(reasonOf('PROXX'), 'bad_signature');
    assert.equal(reasonOf('PROXY\t'), 'bad_signature');
    assert.equal(reasonOf(Buffer.from([0x16, 0x03, 0x01])), 'bad_signature');
  });

  test('rejects an unknown protocol as soon as its first wrong letter arrives (bad_family)', () => {
    assert.deepEqual(decodeProxyHeader(Buffer.from('PROXY U')), { status: 'incomplete' });
    assert.equal(reasonOf('PROXY UD'), 'bad_family');
    assert.equal(reasonOf('PROXY TCP5 '), 'bad_family');
    assert.equal(reasonOf('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n'), 'bad_family');
    assert.equal(reasonOf('PROXY UNKNOWNX\r\n'), 'bad_family');
  });

  test('rejects bad addresses (bad_v1_address)', () => {
    assert.equal(reasonOf('PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n'), 'bad_v1_address');
    assert.equal(reasonOf('PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n'), 'bad_v1_address');
    assert.equal(reasonOf('PROXY TCP4 ::1 5.6.7.8 1 2\r\n'), 'bad_v1_address');
    assert.equal(reasonOf('PROXY TCP6 1.2.3.4 ::1 1 2\r\n'), 'bad_v1_address');
    assert.equal(reasonOf('PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n'), 'bad_v1_address');
  });

  test('rejects bad ports (bad_v1_port)', () => {
    assert.equal(reasonOf('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n'), 'bad_v1_port');
    assert.equal(reasonOf('PROXY TCP4 1.2.3.4 5.6.7.8 080 2\r\n'), 'bad_v1_port');
    assert.equal(reasonOf('PROXY TCP4 1.2.3.4 5.6.7.8 1 \r\n'), 'bad_v1_port');
    assert.equal(reasonOf('PROXY TCP4 1.2.3.4 5.6.7.8 1 123456\r\n'), 'bad_v1_port');
  });

  test('rejects a lone LF, a CR not followed by LF, stray bytes and wrong field counts (bad_v1_line)', () => {
    assert.equal(reasonOf('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n'), 'bad_v1_line');
    assert.equal(reasonOf('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX'), 'bad_v1_line');
    assert.equal(reasonOf('PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n'), 'bad_v1_line');
    assert.equal(reasonOf('PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n'), 'bad_v1_line');
    assert.equal(reasonOf('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n'), 'bad_v1_line');
    assert.equal(reasonOf('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n'), 'bad_v1_line');
  });
});

describe('PROXY v2 decoding', () => {
  test('decodes TCP over IPv4 and stops at the header end', () => {
    const h = v2(0x21, 0x11, ipv4Block());
    const r = done(decodeProxyHeader(Buffer.concat([h, Buffer.from('payload')])));
    assert.equal(r.consumed, h.length);
    assert.deepEqual(r.header, {
      version: 2, command: 'PROXY', family: 'tcp4', sourceAddress: '10.0.0.1', sourcePort: 1234,
      destAddress: '10.0.0.2', destPort: 443, tlvs: [],
    });
  });

  test('decodes LOCAL as a header without addresses, whatever address block it carries', () => {
    const r = done(decodeProxyHeader(v2(0x20, 0x11, ipv4Block())));
    assert.deepEqual(r.header, { version: 2, command: 'LOCAL', family: 'unknown', tlvs: [] });
    assert.equal(r.consumed, 28);
  });

  test('treats AF_UNSPEC and UDP families under PROXY as unknown (keep the socket addresses)', () => {
    assert.equal(done(decodeProxyHeader(v2(0x21, 0x00))).header.family, 'unknown');
    assert.equal(done(decodeProxyHeader(v2(0x21, 0x12, ipv4Block()))).header.family, 'unknown');
    assert.equal(done(decodeProxyHeader(v2(0x21, 0x22, Buffer.alloc(36)))).header.family, 'unknown');
  });

  test('says incomplete for every truncation of a valid header (truncated)', () => {
    const h = encodeProxyV2({
      command: 'PROXY', family: 'tcp6', sourceAddress: '2001:db8::1', sourcePort: 1, destAddress: '::1', destPort: 2, authority: 'a.example',
    });
    for (let i = 0; i < h.length; i++) assert.deepEqual(decodeProxyHeader(h.subarray(0, i)), { status: 'incomplete' }, `prefix ${i}`);
  });

  test('rejects a bad signature byte as soon as it arrives (bad_signature)', () => {
    const bad = Buffer.from(PROXY_V2_SIGNATURE.subarray(0, 7));
    bad[6] = 0x0b;
    assert.equal(reasonOf(bad), 'bad_signature');
    assert.equal(reasonOf(Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x01])), 'bad_signature');
  });

  test('rejects a wrong version with only 13 bytes in (bad_version)', () => {
    assert.equal(reasonOf(v2(0x11, 0x11, ipv4Block()).subarray(0, 13)), 'bad_version');
    assert.equal(reasonOf(v2(0x31, 0x11, ipv4Block())), 'bad_version');
  });

  test('rejects an unassigned command (bad_command)', () => {
    assert.equal(reasonOf(v2(0x22, 0x11, ipv4Block()).subarray(0, 13)), 'bad_command');
    assert.equal(reasonOf(v2(0x2f, 0x11, ipv4Block())), 'bad_command');
  });

  test('rejects family and transport values outside the spec (bad_family)', () => {
    assert.equal(reasonOf(v2(0x21, 0x41, ipv4Block()).subarray(0, 14)), 'bad_family');
    assert.equal(reasonOf(v2(0x21, 0x13, ipv4Block())), 'bad_family');
    assert.equal(reasonOf(v2(0x21, 0x10, ipv4Block())), 'bad_family');
    assert.equal(reasonOf(v2(0x20, 0x03)), 'bad_family');
  });

  test('rejects an address block shorter than the family needs (short_address)', () => {
    assert.equal(reasonOf(v2(0x21, 0x11, Buffer.alloc(8))), 'short_address');
    // Decided from the length field alone, before the block arrives.
    assert.equal(reasonOf(v2(0x21, 0x21, Buffer.alloc(20)).subarray(0, 16)), 'short_address');
  });

  test('rejects a TLV running past the header end (tlv_overflow)', () => {
    assert.equal(reasonOf(v2(0x21, 0x11, Buffer.concat([ipv4Block(), tlvBytes(PP2_TYPE_NOOP, Buffer.alloc(4), 5)]))), 'tlv_overflow');
    assert.equal(reasonOf(v2(0x21, 0x11, Buffer.concat([ipv4Block(), Buffer.from([PP2_TYPE_NOOP, 0])]))), 'tlv_overflow');
  });

  test('rejects the UNIX family under PROXY (unix_family_unsupported) but skips it under LOCAL', () => {
    assert.equal(reasonOf(v2(0x21, 0x31, Buffer.alloc(216)).subarray(0, 14)), 'unix_family_unsupported');
    assert.equal(reasonOf(v2(0x21, 0x32, Buffer.alloc(216))), 'unix_family_unsupported');
    assert.equal(done(decodeProxyHeader(v2(0x20, 0x31, Buffer.alloc(216)))).header.command, 'LOCAL');
  });

  test('rejects a length above the cap as soon as the fixed part is in (v2_too_long)', () => {
    assert.equal(reasonOf(v2(0x21, 0x11, new Uint8Array(0), 0xffff)), 'v2_too_long');
    assert.equal(reasonOf(v2(0x21, 0x11, new Uint8Array(0), PROXY_V2_MAX_DEFAULT - 15)), 'v2_too_long');
    assert.deepEqual(decodeProxyHeader(v2(0x21, 0x11, new Uint8Array(0), PROXY_V2_MAX_DEFAULT - 16)), { status: 'incomplete' });
    assert.throws(() => decodeProxyHeader(v2(0x21, 0x11, ipv4Block()), { maxV2Length: 20 }), { reason: 'v2_too_long' });
  });

  test('verifies a CRC32C TLV and rejects a wrong one (bad_crc32c)', () => {
    const good = encodeProxyV2({
      command: 'PROXY', family: 'tcp4', sourceAddress: '10.0.0.1', sourcePort: 1, destAddress: '10.0.0.2', destPort: 2,
      authority: 'example.com', crc32c: true,
    });
    const r = done(decodeProxyHeader(good));
    assert.equal(r.header.authority, 'example.com');
    const flipped = Buffer.from(good);
    flipped[20] ^= 1; // inside the address block: the checksum no longer matches
    assert.equal(reasonOf(flipped), 'bad_crc32c');
    const wrongLen = v2(0x21, 0x11, Buffer.concat([ipv4Block(), tlvBytes(PP2_TYPE_CRC32C, Buffer.alloc(3))]));
    assert.equal(reasonOf(wrongLen), 'bad_crc32c');
    // The caller's buffer is not modified by the check.
    assert.deepEqual(decodeProxyHeader(good), r);
  });

  test('decodes the authority, ALPN, unique id and SSL TLVs', () => {
    const h = encodeProxyV2({
      command: 'PROXY', family: 'tcp4', sourceAddress: '10.0.0.1', sourcePort: 1, destAddress: '10.0.0.2', destPort: 2,
      authority: 'api.example.com', alpn: 'h2', uniqueId: Buffer.from('id-1'),
      tlvs: [sslTlv({ client: PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN, verify: 0, version: 'TLSv1.3', cn: 'client', cipher: 'TLS_AES_128_GCM_SHA256' })],
    });
    const { header } = done(decodeProxyHeader(h));
    assert.equal(header.authority, 'api.example.com');
    assert.equal(header.alpn, 'h2');
    assert.deepEqual(header.uniqueId, Buffer.from('id-1'));
    assert.deepEqual(
      header.tlvs.map((t) => t.type),
      [PP2_TYPE_AUTHORITY, PP2_TYPE_ALPN, PP2_TYPE_UNIQUE_ID, PP2_TYPE_SSL],
    );
    assert.equal(header.ssl?.client, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN);
    assert.equal(header.ssl?.verify, 0);
    assert.equal(header.ssl?.version, 'TLSv1.3');
    assert.equal(header.ssl?.cn, 'client');
    assert.equal(header.ssl?.cipher, 'TLS_AES_128_GCM_SHA256');
  });

  test('rejects a malformed SSL TLV (bad_ssl_tlv)', () => {
    assert.equal(reasonOf(v2(0x21, 0x11, Buffer.concat([ipv4Block(), tlvBytes(PP2_TYPE_SSL, Buffer.alloc(3))]))), 'bad_ssl_tlv');
    const inner = Buffer.concat([Buffer.alloc(5), Buffer.from([0x21, 0, 9, 0x41])]);
    assert.equal(reasonOf(v2(0x21, 0x11, Buffer.concat([ipv4Block(), tlvBytes(PP2_TYPE_SSL, inner)]))), 'bad_ssl_tlv');
  });

  test('parses a header fed one byte at a time (fragmented)', () => {
    for (const h of [
      encodeProxyV2({ command: 'PROXY', family: 'tcp4', sourceAddress: '1.2.3.4', sourcePort: 5, destAddress: '6.7.8.9', destPort: 10, crc32c: true }),
      encodeProxyV1({ command: 'PROXY', family: 'tcp6', sourceAddress: '2001:db8::5', sourcePort: 5, destAddress: '::1', destPort: 10 }),
    ]) {
      let result: ProxyDecodeResult = { status: 'incomplete' };
      let i = 0;
      while (result.status === 'incomplete') {
        i++;
        assert.ok(i <= h.length, 'never completes');
        result = decodeProxyHeader(h.subarray(0, i));
      }
      assert.equal(i, h.length);
      assert.deepEqual(result, decodeProxyHeader(h));
    }
  });

  test('reads a header from a buffer view that does not start at offset 0', () => {
    const h = encodeProxyV2({ command: 'PROXY', family: 'tcp4', sourceAddress: '1.2.3.4', sourcePort: 5, destAddress: '6.7.8.9', destPort: 10, crc32c: true });
    const big = Buffer.concat([Buffer.from('junk-before'), h, Buffer.from('after')]);
    const view = big.subarray(11);
    assert.equal(done(decodeProxyHeader(view)).header.sourceAddress, '1.2.3.4');
  });
});

// ---------------------------------------------------------------------------------------------
// Properties.

const port = fc.integer({ min: 0, max: 65535 });
const addrInfo: fc.Arbitrary<ProxyInfo> = fc.oneof(
  fc.record({
    command: fc.constant('PROXY' as const), family: fc.constant('tcp4' as const),
    sourceAddress: fc.ipV4(), sourcePort: port, destAddress: fc.ipV4(), destPort: port,
  }),
  fc.record({
    command: fc.constant('PROXY' as const), family: fc.constant('tcp6' as const),
    sourceAddress: fc.ipV6(), sourcePort: port, destAddress: fc.ipV6(), destPort: port,
  }),
);
// Types the decoder interprets (CRC, SSL) are exercised by their own tests.
const plainTlv: fc.Arbitrary<ProxyTlv> = fc.record({
  type: fc.integer({ min: 0, max: 255 }).filter((t) => t !== PP2_TYPE_CRC32C && t !== PP2_TYPE_SSL),
  value: fc.uint8Array({ maxLength: 40 }).map((u) => Buffer.from(u)),
});

function expectedAddr(a: string | undefined, family: string): string | undefined {
  return family === 'tcp6' && a !== undefined ? canonical6(a) : a;
}

describe('PROXY properties', () => {
  test('v1 encode then decode gives back the addresses and ports', () => {
    fc.assert(
      fc.property(addrInfo, fc.uint8Array({ maxLength: 20 }), (info, tail) => {
        const h = encodeProxyV1(info);
        assert.ok(h.length <= PROXY_V1_MAX);
        const r = done(decodeProxyHeader(Buffer.concat([h, tail])));
        assert.equal(r.consumed, h.length);
        assert.deepEqual(r.header, {
          version: 1, command: 'PROXY', family: info.family, tlvs: [],
          sourceAddress: expectedAddr(info.sourceAddress, info.family), sourcePort: info.sourcePort,
          destAddress: expectedAddr(info.destAddress, info.family), destPort: info.destPort,
        });
      }),
      { numRuns: 300 },
    );
  });

  test('v2 encode then decode gives back the addresses, ports and TLVs', () => {
    fc.assert(
      fc.property(addrInfo, fc.array(plainTlv, { maxLength: 6 }), fc.boolean(), fc.uint8Array({ maxLength: 20 }), (info, tlvs, crc, tail) => {
        const h = encodeProxyV2({ ...info, tlvs, crc32c: crc });
        const r = done(decodeProxyHeader(Buffer.concat([h, tail])));
        assert.equal(r.consumed, h.length);
        assert.equal(r.header.family, info.family);
        assert.equal(r.header.sourceAddress, expectedAddr(info.sourceAddress, info.family));
        assert.equal(r.header.destAddress, expectedAddr(info.destAddress, info.family));
        assert.equal(r.header.sourcePort, info.sourcePort);
        assert.equal(r.header.destPort, info.destPort);
        const got = r.header.tlvs.map((t) => ({ type: t.type, value: Buffer.from(t.value) }));
        const want = tlvs.map((t) => ({ type: t.type, value: t.value }));
        if (crc) want.push({ type: PP2_TYPE_CRC32C, value: Buffer.from(got[got.length - 1]?.value ?? []) });
        assert.deepEqual(got, want);
      }),
      { numRuns: 300 },
    );
  });

  test('every strict prefix of a valid header is incomplete, and byte-by-byte feeding ends in the same result', () => {
    const header = fc.oneof(
      addrInfo.map((i) => encodeProxyV1(i)),
      fc.tuple(addrInfo, fc.array(plainTlv, { maxLength: 4 }), fc.boolean()).map(([i, tlvs, crc]) => encodeProxyV2({ ...i, tlvs, crc32c: crc })),
      fc.constantFrom(encodeProxyV1({ command: 'LOCAL', family: 'unknown' }), encodeProxyV2({ command: 'LOCAL', family: 'unknown' })),
    );
    fc.assert(
      fc.property(header, fc.uint8Array({ maxLength: 16 }), (h, tail) => {
        const whole = decodeProxyHeader(Buffer.concat([h, tail]));
        for (let i = 0; i < h.length; i++) {
          assert.deepEqual(decodeProxyHeader(h.subarray(0, i)), { status: 'incomplete' });
        }
        assert.deepEqual(decodeProxyHeader(h), whole);
      }),
      { numRuns: 200 },
    );
  });

  const anyInput = fc.oneof(
    fc.uint8Array({ maxLength: 300 }),
    fc.uint8Array({ maxLength: 120 }).map((u) => Buffer.concat([Buffer.from('PROXY '), u])),
    fc.tuple(fc.constantFrom('TCP4 ', 'TCP6 ', 'UNKNOWN'), fc.string({ unit: 'binary-ascii', maxLength: 110 })).map(
      ([f, s]) => Buffer.from(`PROXY ${f}${s}`, 'latin1'),
    ),
    fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.concat([PROXY_V2_SIGNATURE, u])),
    // A valid v2 header with one byte changed.
    fc.tuple(addrInfo, fc.array(plainTlv, { maxLength: 3 }), fc.boolean(), fc.nat(), fc.integer({ min: 1, max: 255 })).map(
      ([i, tlvs, crc, at, x]) => {
        const h = Buffer.from(encodeProxyV2({ ...i, tlvs, crc32c: crc }));
        h[at % h.length] ^= x;
        return h;
      },
    ),
  );

  test('any input gives incomplete, done or a ProtocolError, and nothing else', () => {
    fc.assert(
      fc.property(anyInput, (input) => {
        try {
          const r = decodeProxyHeader(input);
          assert.ok(r.status === 'incomplete' || r.status === 'done');
          if (r.status === 'done') assert.ok(r.consumed > 0 && r.consumed <= input.length);
        } catch (e) {
          assert.ok(e instanceof ProtocolError, `unexpected ${String(e)}`);
          assert.equal(e.code, ErrorCodes.PROXY_HEADER);
        }
      }),
      { numRuns: 2000 },
    );
  });

  test('a huge input is decided without scanning it', () => {
    const huge = Buffer.alloc(8 * 1024 * 1024, 0x41);
    huge.write('PROXY TCP4 ', 0);
    const start = performance.now();
    for (let i = 0; i < 1000; i++) assert.throws(() => decodeProxyHeader(huge), ProtocolError);
    // 1000 decodes of an 8 MiB buffer: only feasible if each one looks at a bounded prefix.
    assert.ok(performance.now() - start < 5_000);
  });
});

describe('tlv helpers', () => {
  test('tlv() encodes strings as UTF-8', () => {
    assert.deepEqual(tlv(PP2_TYPE_AUTHORITY, 'é'), { type: PP2_TYPE_AUTHORITY, value: Buffer.from([0xc3, 0xa9]) });
  });
});
