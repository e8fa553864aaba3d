/**
 * @module protocol/proxy-protocol — PROXY protocol v1 (text) and v2 (binary) encoder and an
 * incremental decoder, after HAProxy's doc/proxy-protocol.txt.
 *
 * The decoder is meant to be called with the whole preread buffer after every read. It answers
 * `incomplete` while the bytes seen so far can still become a valid header, and throws a
 * {@link ProtocolError} (code `L4LB_ERR_PROXY_HEADER`, a short `reason`) as soon as they cannot:
 * a first byte that starts neither signature fails at once, a v2 version/command/family byte fails
 * as soon as it arrives, a v2 length is checked against the cap as soon as the 16-byte fixed
 * part is in. Each call does work bounded by the header size (at most {@link PROXY_V1_MAX} bytes
 * scanned for v1, the fixed part for an incomplete v2), so calling it on every read stays linear.
 *
 * What the caller does with a header: use `sourceAddress`/`sourcePort` (and `dest*`) only when
 * `family` is `tcp4` or `tcp6`; otherwise (`LOCAL` command, v1 `UNKNOWN`, v2 `AF_UNSPEC` or a
 * UDP family) keep the socket's own addresses, as the spec asks.
 *
 * Choices the spec leaves open, made here:
 * - v2 `AF_UNIX` with the PROXY command is rejected (`unix_family_unsupported`): a path is no
 *   client address, and accepting it would make every such client look like the sending proxy to
 *   ACLs and per-source limits. (The spec would allow falling back to the socket's addresses.)
 * - v2 UDP over IPv4/IPv6 with the PROXY command falls back to `unknown`, as the spec requires of
 *   receivers that do not support a valid combination.
 * - TLVs are read only for the PROXY command with an IPv4/IPv6 address block, as HAProxy does; a
 *   LOCAL header is skipped whole (its addresses and TLVs are not the client's).
 * - The whole v2 header is capped at {@link PROXY_V2_MAX_DEFAULT} bytes (16 KiB, HAProxy's
 *   default buffer size; the wire format allows 16 + 65535) → `v2_too_long`.
 * - v1 IPv6 addresses may use the dotted IPv4 tail (`::ffff:1.2.3.4`) as inet_pton accepts;
 *   zones (`%eth0`) are rejected. Decoded addresses are normalised (RFC 5952 for IPv6).
 * - A v1 line for TCP4/TCP6 must consist only of the characters its fields can hold; a lone CR or
 *   LF is an error (`bad_v1_line`). After `UNKNOWN`, anything up to the CRLF is ignored.
 */
import { ErrorCodes, ProtocolError } from '../errors.js';
import { formatIPv4, formatIPv6, isMappedIPv4, parseIPv4, parseIPv6 } from '../admission/acl.js';

/** Longest v1 line, CRLF included (`PROXY UNKNOWN` with two full IPv6 addresses). */
export const PROXY_V1_MAX = 107;

/** The 12-byte v2 signature. */
export const PROXY_V2_SIGNATURE: Buffer = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);

/** Size of the fixed part of a v2 header (signature, ver/cmd, family, length). */
export const PROXY_V2_FIXED_LEN = 16;

/** Default cap on a whole v2 header, fixed part included (16 KiB). */
export const PROXY_V2_MAX_DEFAULT = 16 * 1024;

/** ALPN of the client connection (one protocol name). */
export const PP2_TYPE_ALPN = 0x01;
/** Authority: the host name the client asked for (TLS SNI). */
export const PP2_TYPE_AUTHORITY = 0x02;
/** CRC32C of the whole header, computed with this field zeroed. */
export const PP2_TYPE_CRC32C = 0x03;
/** Padding; ignored. */
export const PP2_TYPE_NOOP = 0x04;
/** Opaque connection id of up to 128 bytes. */
export const PP2_TYPE_UNIQUE_ID = 0x05;
/** TLS details of the client connection (client flags, verify result, sub-TLVs). */
export const PP2_TYPE_SSL = 0x20;
/** Sub-TLV of PP2_TYPE_SSL: TLS version string. */
export const PP2_SUBTYPE_SSL_VERSION = 0x21;
/** Sub-TLV of PP2_TYPE_SSL: client certificate common name. */
export const PP2_SUBTYPE_SSL_CN = 0x22;
/** Sub-TLV of PP2_TYPE_SSL: cipher name. */
export const PP2_SUBTYPE_SSL_CIPHER = 0x23;
/** Sub-TLV of PP2_TYPE_SSL: certificate signature algorithm. */
export const PP2_SUBTYPE_SSL_SIG_ALG = 0x24;
/** Sub-TLV of PP2_TYPE_SSL: certificate key algorithm. */
export const PP2_SUBTYPE_SSL_KEY_ALG = 0x25;
/** Network namespace name. */
export const PP2_TYPE_NETNS = 0x30;

/** PP2_TYPE_SSL client flag: the client connected over TLS. */
export const PP2_CLIENT_SSL = 0x01;
/** PP2_TYPE_SSL client flag: a client certificate was presented on this connection. */
export const PP2_CLIENT_CERT_CONN = 0x02;
/** PP2_TYPE_SSL client flag: a client certificate was presented in this TLS session. */
export const PP2_CLIENT_CERT_SESS = 0x04;

/** Longest PP2_TYPE_UNIQUE_ID value the spec allows. */
export const PP2_UNIQUE_ID_MAX = 128;

const V1_PREFIX = Buffer.from('PROXY', 'latin1');
const V2_ADDR_LEN_INET = 12;
const V2_ADDR_LEN_INET6 = 36;
const TLV_HEADER_LEN = 3;
const MAX_PORT = 65535;

/** One v2 Type-Length-Value extension. */
export interface ProxyTlv {
  type: number;
  value: Buffer;
}

/** What a PROXY header says about a connection; the input of the encoders. */
export interface ProxyInfo {
  /** `LOCAL`: the sender's own connection (a health check); addresses are not sent. */
  command: 'PROXY' | 'LOCAL';
  /** `unknown` carries no addresses (v1 `UNKNOWN`, v2 `AF_UNSPEC`). */
  family: 'tcp4' | 'tcp6' | 'unknown';
  /** Required for tcp4/tcp6 with the PROXY command. IPv4-mapped IPv6 is accepted for tcp4. */
  sourceAddress?: string;
  sourcePort?: number;
  destAddress?: string;
  destPort?: number;
  /** v2 only: raw TLVs, written in this order after the convenience ones. */
  tlvs?: ProxyTlv[];
  /** v2 only: PP2_TYPE_AUTHORITY (TLS SNI) value. */
  authority?: string;
  /** v2 only: PP2_TYPE_ALPN value (the negotiated protocol, e.g. `h2`). */
  alpn?: string;
  /** v2 only: PP2_TYPE_UNIQUE_ID value, at most 128 bytes. */
  uniqueId?: Buffer;
  /** v2 only: append a PP2_TYPE_CRC32C TLV covering the whole header. */
  crc32c?: boolean;
}

/** The PP2_TYPE_SSL TLV, decoded. */
export interface ProxySslInfo {
  /** Bit field of PP2_CLIENT_* flags. */
  client: number;
  /** 0 when the client certificate was verified. */
  verify: number;
  version?: string;
  cn?: string;
  cipher?: string;
  sigAlg?: string;
  keyAlg?: string;
  /** All sub-TLVs, in wire order. */
  tlvs: ProxyTlv[];
}

/** A decoded PROXY header. */
export interface ProxyHeader {
  version: 1 | 2;
  command: 'PROXY' | 'LOCAL';
  family: 'tcp4' | 'tcp6' | 'unknown';
  /** Set only when family is tcp4/tcp6 (and command PROXY). */
  sourceAddress?: string;
  sourcePort?: number;
  destAddress?: string;
  destPort?: number;
  /** All TLVs in wire order (v2 PROXY with an IPv4/IPv6 block only; otherwise empty). */
  tlvs: ProxyTlv[];
  /** First PP2_TYPE_AUTHORITY, as UTF-8. */
  authority?: string;
  /** First PP2_TYPE_ALPN, as latin1 (ALPN ids are bytes). */
  alpn?: string;
  /** First PP2_TYPE_UNIQUE_ID. */
  uniqueId?: Buffer;
  /** First PP2_TYPE_NETNS, as US-ASCII. */
  netns?: string;
  /** First PP2_TYPE_SSL, decoded. */
  ssl?: ProxySslInfo;
}

/** Result of one decode attempt on the bytes received so far. */
export type ProxyDecodeResult =
  | { status: 'incomplete' }
  | { status: 'done'; header: ProxyHeader; consumed: number };

/** The `reason` values a {@link ProtocolError} from {@link decodeProxyHeader} can carry. */
export type ProxyErrorReason =
  | 'bad_signature'
  | 'v1_too_long'
  | 'bad_v1_line'
  | 'bad_v1_address'
  | 'bad_v1_port'
  | 'bad_version'
  | 'bad_command'
  | 'bad_family'
  | 'unix_family_unsupported'
  | 'short_address'
  | 'v2_too_long'
  | 'tlv_overflow'
  | 'bad_ssl_tlv'
  | 'bad_crc32c';

/** Decoder options. */
export interface ProxyDecodeOptions {
  /** Cap on a whole v2 header in bytes; default {@link PROXY_V2_MAX_DEFAULT}. */
  maxV2Length?: number;
}

const INCOMPLETE: ProxyDecodeResult = Object.freeze({ status: 'incomplete' }) as ProxyDecodeResult;

function fail(reason: ProxyErrorReason, message: string): never {
  throw new ProtocolError(ErrorCodes.PROXY_HEADER, reason, `PROXY header: ${message}`);
}

// ---------------------------------------------------------------------------------------------
// CRC32C (Castagnoli), RFC 4960 appendix B — reflected polynomial 0x82F63B78.

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC32C of `buf` (the checksum of PP2_TYPE_CRC32C and iSCSI/SCTP); `crc32c("123456789")` is 0xe3069283. */
export function crc32c(buf: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC32C_TABLE[(c ^ buf[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// Encoding.

/** Builds a TLV. */
export function tlv(type: number, value: Buffer | string): ProxyTlv {
  return { type, value: typeof value === 'string' ? Buffer.from(value, 'utf8') : value };
}

/** Builds a PP2_TYPE_AUTHORITY TLV (the TLS SNI host name). */
export function authorityTlv(host: string): ProxyTlv {
  return tlv(PP2_TYPE_AUTHORITY, Buffer.from(host, 'utf8'));
}

/** Builds a PP2_TYPE_ALPN TLV. */
export function alpnTlv(protocol: string): ProxyTlv {
  return tlv(PP2_TYPE_ALPN, Buffer.from(protocol, 'latin1'));
}

/** Builds a PP2_TYPE_SSL TLV with the given client flags, verify result and sub-TLVs. */
export function sslTlv(info: {
  client: number;
  verify: number;
  version?: string;
  cn?: string;
  cipher?: string;
  sigAlg?: string;
  keyAlg?: string;
  tlvs?: ProxyTlv[];
}): ProxyTlv {
  const subs: ProxyTlv[] = [];
  if (info.version !== undefined) subs.push(tlv(PP2_SUBTYPE_SSL_VERSION, Buffer.from(info.version, 'latin1')));
  if (info.cn !== undefined) subs.push(tlv(PP2_SUBTYPE_SSL_CN, Buffer.from(info.cn, 'utf8')));
  if (info.cipher !== undefined) subs.push(tlv(PP2_SUBTYPE_SSL_CIPHER, Buffer.from(info.cipher, 'latin1')));
  if (info.sigAlg !== undefined) subs.push(tlv(PP2_SUBTYPE_SSL_SIG_ALG, Buffer.from(info.sigAlg, 'latin1')));
  if (info.keyAlg !== undefined) subs.push(tlv(PP2_SUBTYPE_SSL_KEY_ALG, Buffer.from(info.keyAlg, 'latin1')));
  subs.push(...(info.tlvs ?? []));
  const head = Buffer.alloc(5);
  head.writeUInt8(info.client & 0xff, 0);
  head.writeUInt32BE(info.verify >>> 0, 1);
  return { type: PP2_TYPE_SSL, value: Buffer.concat([head, encodeTlvs(subs)]) };
}

function encodeTlvs(tlvs: readonly ProxyTlv[]): Buffer {
  const parts: Buffer[] = [];
  for (const t of tlvs) {
    if (!Number.isInteger(t.type) || t.type < 0 || t.type > 255) throw new RangeError(`TLV type ${t.type} is not a byte`);
    if (t.value.length > 0xffff) throw new RangeError(`TLV 0x${t.type.toString(16)} value is longer than 65535 bytes`);
    const h = Buffer.alloc(TLV_HEADER_LEN);
    h.writeUInt8(t.type, 0);
    h.writeUInt16BE(t.value.length, 1);
    parts.push(h, t.value);
  }
  return Buffer.concat(parts);
}

function checkPort(port: number | undefined, what: string): number {
  if (port === undefined || !Number.isInteger(port) || port < 0 || port > MAX_PORT) {
    throw new RangeError(`PROXY ${what} port ${String(port)} is not an integer in 0-65535`);
  }
  return port;
}

/** Address bytes for the family, or a thrown RangeError; mapped IPv6 is accepted for tcp4. */
function addressBytes(address: string | undefined, family: 'tcp4' | 'tcp6', what: string): Uint8Array {
  if (address !== undefined) {
    const v4 = parseIPv4(address);
    const v6 = v4 < 0 ? parseIPv6(address) : undefined;
    if (family === 'tcp4') {
      if (v4 >= 0) return Uint8Array.of(v4 >>> 24, (v4 >>> 16) & 255, (v4 >>> 8) & 255, v4 & 255);
      if (v6 !== undefined && isMappedIPv4(v6)) return v6.slice(12);
    } else if (v6 !== undefined) {
      return v6;
    }
  }
  throw new RangeError(`PROXY ${what} address ${String(address)} is not an ${family === 'tcp4' ? 'IPv4' : 'IPv6'} address`);
}

function addressText(address: string | undefined, family: 'tcp4' | 'tcp6', what: string): string {
  const b = addressBytes(address, family, what);
  return family === 'tcp4' ? `${b[0]}.${b[1]}.${b[2]}.${b[3]}` : formatIPv6(b);
}

/**
 * Picks the family for a connection's two addresses as HAProxy does: tcp4 when both are IPv4
 * (IPv4-mapped IPv6 counts as IPv4), otherwise tcp6 with IPv4 ones written as mapped IPv6.
 * Returns `unknown` when either address is missing or not an IP address.
 */
export function proxyInfoFor(
  sourceAddress: string | undefined,
  sourcePort: number | undefined,
  destAddress: string | undefined,
  destPort: number | undefined,
): ProxyInfo {
  const norm = (a: string | undefined): { v4?: string; v6?: Uint8Array } | undefined => {
    if (a === undefined) return undefined;
    const v4 = parseIPv4(a);
    if (v4 >= 0) return { v4: formatIPv4(v4) };
    const v6 = parseIPv6(a, true);
    if (v6 === undefined) return undefined;
    return isMappedIPv4(v6) ? { v4: `${v6[12]}.${v6[13]}.${v6[14]}.${v6[15]}` } : { v6 };
  };
  const s = norm(sourceAddress);
  const d = norm(destAddress);
  if (!s || !d || sourcePort === undefined || destPort === undefined) return { command: 'PROXY', family: 'unknown' };
  if (s.v4 !== undefined && d.v4 !== undefined) {
    return { command: 'PROXY', family: 'tcp4', sourceAddress: s.v4, sourcePort, destAddress: d.v4, destPort };
  }
  const as6 = (x: { v4?: string; v6?: Uint8Array }) => (x.v6 ? formatIPv6(x.v6) : `::ffff:${x.v4}`);
  return { command: 'PROXY', family: 'tcp6', sourceAddress: as6(s), sourcePort, destAddress: as6(d), destPort };
}

/**
 * Encodes a v1 (text) header. v1 has no LOCAL command and no TLVs: LOCAL and the `unknown`
 * family are written `PROXY UNKNOWN\r\n`, and TLV fields are ignored.
 * Throws RangeError when an address or port does not fit the family.
 */
export function encodeProxyV1(info: ProxyInfo): Buffer {
  if (info.command === 'LOCAL' || info.family === 'unknown') return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const fam = info.family === 'tcp4' ? 'TCP4' : 'TCP6';
  const src = addressText(info.sourceAddress, info.family, 'source');
  const dst = addressText(info.destAddress, info.family, 'destination');
  const sp = checkPort(info.sourcePort, 'source');
  const dp = checkPort(info.destPort, 'destination');
  return Buffer.from(`PROXY ${fam} ${src} ${dst} ${sp} ${dp}\r\n`, 'latin1');
}

/**
 * Encodes a v2 (binary) header: LOCAL and `unknown` use AF_UNSPEC with no address block,
 * tcp4/tcp6 use TCP over IPv4/IPv6. TLVs follow in this order: authority, alpn, unique id,
 * `tlvs`, then the CRC32C when asked for. Throws RangeError on bad addresses, ports or sizes.
 */
export function encodeProxyV2(info: ProxyInfo): Buffer {
  let famByte = 0x00;
  let addr: Buffer = Buffer.alloc(0);
  const isLocal = info.command === 'LOCAL';
  if (!isLocal && info.family !== 'unknown') {
    const src = addressBytes(info.sourceAddress, info.family, 'source');
    const dst = addressBytes(info.destAddress, info.family, 'destination');
    const sp = checkPort(info.sourcePort, 'source');
    const dp = checkPort(info.destPort, 'destination');
    famByte = info.family === 'tcp4' ? 0x11 : 0x21;
    addr = Buffer.alloc(src.length * 2 + 4);
    addr.set(src, 0);
    addr.set(dst, src.length);
    addr.writeUInt16BE(sp, src.length * 2);
    addr.writeUInt16BE(dp, src.length * 2 + 2);
  }
  const tlvs: ProxyTlv[] = [];
  if (info.authority !== undefined) tlvs.push(authorityTlv(info.authority));
  if (info.alpn !== undefined) tlvs.push(alpnTlv(info.alpn));
  if (info.uniqueId !== undefined) {
    if (info.uniqueId.length > PP2_UNIQUE_ID_MAX) throw new RangeError(`PROXY unique id is longer than ${PP2_UNIQUE_ID_MAX} bytes`);
    tlvs.push(tlv(PP2_TYPE_UNIQUE_ID, info.uniqueId));
  }
  tlvs.push(...(info.tlvs ?? []));
  if (info.crc32c) tlvs.push(tlv(PP2_TYPE_CRC32C, Buffer.alloc(4)));
  const body = Buffer.concat([addr, encodeTlvs(tlvs)]);
  if (body.length > 0xffff) throw new RangeError('PROXY v2 header is longer than 65535 + 16 bytes');
  const out = Buffer.alloc(PROXY_V2_FIXED_LEN + body.length);
  PROXY_V2_SIGNATURE.copy(out, 0);
  out[12] = isLocal ? 0x20 : 0x21;
  out[13] = famByte;
  out.writeUInt16BE(body.length, 14);
  body.copy(out, PROXY_V2_FIXED_LEN);
  if (info.crc32c) out.writeUInt32BE(crc32c(out), out.length - 4);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Decoding.

/**
 * Decodes a PROXY v1 or v2 header at the start of `buf` (auto-detected). Returns `incomplete`
 * while more bytes are needed, `done` with the header and the number of bytes it took, or throws
 * {@link ProtocolError} with code `L4LB_ERR_PROXY_HEADER` and a {@link ProxyErrorReason}.
 * Never throws anything else, whatever the input.
 */
export function decodeProxyHeader(buf: Uint8Array, opts: ProxyDecodeOptions = {}): ProxyDecodeResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === 0x50) return decodeV1(buf);
  if (buf[0] === 0x0d) return decodeV2(buf, opts.maxV2Length ?? PROXY_V2_MAX_DEFAULT);
  return fail('bad_signature', 'neither a v1 nor a v2 signature');
}

const V1_FAMILIES = ['TCP4 ', 'TCP6 ', 'UNKNOWN'] as const;

function isV1FieldChar(c: number): boolean {
  return (
    (c >= 0x30 && c <= 0x3a) || // 0-9 and ':'
    c === 0x2e || // '.'
    c === 0x20 ||
    (c >= 0x41 && c <= 0x46) ||
    (c >= 0x61 && c <= 0x66)
  );
}

function decodeV1(buf: Uint8Array): ProxyDecodeResult {
  const n = Math.min(buf.length, PROXY_V1_MAX);
  for (let i = 0; i < Math.min(n, 6); i++) {
    const want = i < 5 ? V1_PREFIX[i] : 0x20;
    if (buf[i] !== want) fail('bad_signature', 'not a v1 "PROXY " line');
  }
  if (n <= 6) return INCOMPLETE;
  // Family token, checked as far as it has arrived so a wrong one fails early.
  let family: (typeof V1_FAMILIES)[number] | undefined;
  const avail = n - 6;
  for (const f of V1_FAMILIES) {
    let ok = true;
    for (let i = 0; i < Math.min(avail, f.length); i++) {
      if (buf[6 + i] !== f.charCodeAt(i)) {
        ok = false;
        break;
      }
    }
    if (ok) {
      family = f;
      break;
    }
  }
  if (family === undefined) fail('bad_family', 'v1 protocol is not TCP4, TCP6 or UNKNOWN');
  if (avail < family.length) return INCOMPLETE;

  if (family === 'UNKNOWN') {
    const next = buf[6 + family.length];
    if (next !== undefined && next !== 0x20 && next !== 0x0d) fail('bad_family', 'v1 protocol is not TCP4, TCP6 or UNKNOWN');
    // Anything may follow UNKNOWN up to the CRLF; only the CRLF matters.
    for (let i = 6 + family.length; i + 1 < n; i++) {
      if (buf[i] === 0x0d && buf[i + 1] === 0x0a) {
        return { status: 'done', header: { version: 1, command: 'PROXY', family: 'unknown', tlvs: [] }, consumed: i + 2 };
      }
    }
    if (buf.length >= PROXY_V1_MAX) fail('v1_too_long', `no CRLF in the first ${PROXY_V1_MAX} bytes`);
    return INCOMPLETE;
  }

  let end = -1;
  for (let i = 6 + family.length; i < n; i++) {
    const c = buf[i];
    if (c === 0x0d) {
      if (i + 1 < buf.length && buf[i + 1] !== 0x0a) fail('bad_v1_line', 'CR not followed by LF');
      if (i + 1 < n) {
        end = i;
        break;
      }
    } else if (!isV1FieldChar(c)) {
      fail('bad_v1_line', c === 0x0a ? 'LF without CR' : `unexpected byte 0x${c.toString(16)} in the line`);
    }
  }
  if (end < 0) {
    if (buf.length >= PROXY_V1_MAX) fail('v1_too_long', `no CRLF in the first ${PROXY_V1_MAX} bytes`);
    return INCOMPLETE;
  }
  const line = Buffer.from(buf.buffer, buf.byteOffset + 6 + family.length, end - 6 - family.length).toString('latin1');
  const fields = line.split(' ');
  if (fields.length !== 4) fail('bad_v1_line', `expected 4 fields after ${family.trim()}, got ${fields.length}`);
  const tcp: 'tcp4' | 'tcp6' = family === 'TCP4 ' ? 'tcp4' : 'tcp6';
  const src = v1Address(fields[0], tcp);
  const dst = v1Address(fields[1], tcp);
  const sp = v1Port(fields[2]);
  const dp = v1Port(fields[3]);
  return {
    status: 'done',
    header: { version: 1, command: 'PROXY', family: tcp, sourceAddress: src, sourcePort: sp, destAddress: dst, destPort: dp, tlvs: [] },
    consumed: end + 2,
  };
}

function v1Address(text: string, family: 'tcp4' | 'tcp6'): string {
  if (family === 'tcp4') {
    const v4 = parseIPv4(text);
    if (v4 < 0) fail('bad_v1_address', `"${text}" is not an IPv4 address`);
    return formatIPv4(v4);
  }
  const v6 = parseIPv6(text);
  if (v6 === undefined) fail('bad_v1_address', `"${text}" is not an IPv6 address`);
  return formatIPv6(v6);
}

function v1Port(text: string): number {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(text)) fail('bad_v1_port', `"${text}" is not a port`);
  const p = Number(text);
  if (p > MAX_PORT) fail('bad_v1_port', `${p} is out of range 0-65535`);
  return p;
}

function decodeV2(buf: Uint8Array, maxLen: number): ProxyDecodeResult {
  const sigLen = Math.min(buf.length, PROXY_V2_SIGNATURE.length);
  for (let i = 0; i < sigLen; i++) {
    if (buf[i] !== PROXY_V2_SIGNATURE[i]) fail('bad_signature', 'not a v2 signature');
  }
  if (buf.length <= 12) return INCOMPLETE;
  const verCmd = buf[12];
  if (verCmd >> 4 !== 2) fail('bad_version', `version ${verCmd >> 4} is not 2`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) fail('bad_command', `command ${cmd} is neither LOCAL (0) nor PROXY (1)`);
  const isProxy = cmd === 1;
  if (buf.length <= 13) return INCOMPLETE;
  const fam = buf[13];
  let addrLen: number;
  let family: 'tcp4' | 'tcp6' | 'unknown' = 'unknown';
  switch (fam) {
    case 0x00:
      addrLen = 0;
      break;
    case 0x11:
      addrLen = V2_ADDR_LEN_INET;
      family = 'tcp4';
      break;
    case 0x21:
      addrLen = V2_ADDR_LEN_INET6;
      family = 'tcp6';
      break;
    case 0x12:
    case 0x22:
      // UDP: a valid combination this TCP proxy does not support → fall back to unspec.
      addrLen = 0;
      break;
    case 0x31:
    case 0x32:
      if (isProxy) fail('unix_family_unsupported', 'AF_UNIX source addresses are not supported');
      addrLen = 0;
      break;
    default:
      fail('bad_family', `family/transport byte 0x${fam.toString(16).padStart(2, '0')} is invalid`);
  }
  if (buf.length < PROXY_V2_FIXED_LEN) return INCOMPLETE;
  const len = (buf[14] << 8) | buf[15];
  const total = PROXY_V2_FIXED_LEN + len;
  if (total > maxLen) fail('v2_too_long', `header of ${total} bytes exceeds the ${maxLen}-byte cap`);
  if (isProxy && len < addrLen) fail('short_address', `address block of ${len} bytes is shorter than ${addrLen}`);
  if (buf.length < total) return INCOMPLETE;

  if (!isProxy) {
    return { status: 'done', header: { version: 2, command: 'LOCAL', family: 'unknown', tlvs: [] }, consumed: total };
  }
  if (family === 'unknown') {
    return { status: 'done', header: { version: 2, command: 'PROXY', family: 'unknown', tlvs: [] }, consumed: total };
  }
  const b = Buffer.from(buf.buffer, buf.byteOffset, total);
  const header: ProxyHeader = { version: 2, command: 'PROXY', family, tlvs: [] };
  const a = PROXY_V2_FIXED_LEN;
  if (family === 'tcp4') {
    header.sourceAddress = formatIPv4(b.readUInt32BE(a));
    header.destAddress = formatIPv4(b.readUInt32BE(a + 4));
    header.sourcePort = b.readUInt16BE(a + 8);
    header.destPort = b.readUInt16BE(a + 10);
  } else {
    header.sourceAddress = formatIPv6(b.subarray(a, a + 16));
    header.destAddress = formatIPv6(b.subarray(a + 16, a + 32));
    header.sourcePort = b.readUInt16BE(a + 32);
    header.destPort = b.readUInt16BE(a + 34);
  }
  const tlvs = parseTlvs(b, a + addrLen, total, 'tlv_overflow');
  header.tlvs = tlvs;
  let crcSeen = false;
  for (const t of tlvs) {
    switch (t.type) {
      case PP2_TYPE_AUTHORITY:
        header.authority ??= t.value.toString('utf8');
        break;
      case PP2_TYPE_ALPN:
        header.alpn ??= t.value.toString('latin1');
        break;
      case PP2_TYPE_UNIQUE_ID:
        header.uniqueId ??= t.value;
        break;
      case PP2_TYPE_NETNS:
        header.netns ??= t.value.toString('latin1');
        break;
      case PP2_TYPE_SSL:
        header.ssl ??= parseSsl(t.value);
        break;
      case PP2_TYPE_CRC32C:
        if (crcSeen) fail('bad_crc32c', 'more than one CRC32C TLV');
        crcSeen = true;
        verifyCrc(b, t);
        break;
    }
  }
  return { status: 'done', header, consumed: total };
}

function parseTlvs(b: Buffer, start: number, end: number, reason: 'tlv_overflow' | 'bad_ssl_tlv'): ProxyTlv[] {
  const out: ProxyTlv[] = [];
  let p = start;
  while (p < end) {
    if (p + TLV_HEADER_LEN > end) fail(reason, `${end - p} trailing bytes are too short for a TLV`);
    const type = b[p];
    const len = (b[p + 1] << 8) | b[p + 2];
    const vs = p + TLV_HEADER_LEN;
    if (vs + len > end) fail(reason, `TLV 0x${type.toString(16)} of ${len} bytes runs past the header end`);
    out.push({ type, value: b.subarray(vs, vs + len) });
    p = vs + len;
  }
  return out;
}

function parseSsl(v: Buffer): ProxySslInfo {
  if (v.length < 5) fail('bad_ssl_tlv', 'SSL TLV shorter than 5 bytes');
  const subs = parseTlvs(v, 5, v.length, 'bad_ssl_tlv');
  const info: ProxySslInfo = { client: v[0], verify: v.readUInt32BE(1), tlvs: subs };
  for (const s of subs) {
    if (s.type === PP2_SUBTYPE_SSL_VERSION) info.version ??= s.value.toString('latin1');
    else if (s.type === PP2_SUBTYPE_SSL_CN) info.cn ??= s.value.toString('utf8');
    else if (s.type === PP2_SUBTYPE_SSL_CIPHER) info.cipher ??= s.value.toString('latin1');
    else if (s.type === PP2_SUBTYPE_SSL_SIG_ALG) info.sigAlg ??= s.value.toString('latin1');
    else if (s.type === PP2_SUBTYPE_SSL_KEY_ALG) info.keyAlg ??= s.value.toString('latin1');
  }
  return info;
}

function verifyCrc(header: Buffer, t: ProxyTlv): void {
  if (t.value.length !== 4) fail('bad_crc32c', `CRC32C TLV of ${t.value.length} bytes, expected 4`);
  const expected = t.value.readUInt32BE(0);
  // Checksum the header with this TLV's value zeroed, without touching the caller's buffer.
  const copy = Buffer.from(header);
  copy.fill(0, t.value.byteOffset - header.byteOffset, t.value.byteOffset - header.byteOffset + 4);
  const actual = crc32c(copy);
  if (actual !== expected) {
    fail('bad_crc32c', `checksum 0x${expected.toString(16)} does not match 0x${actual.toString(16)}`);
  }
}
