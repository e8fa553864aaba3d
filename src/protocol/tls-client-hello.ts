/**
 * @module protocol/tls-client-hello — incremental peek at a TLS ClientHello for SNI/ALPN routing
 * without terminating TLS (nginx `ssl_preread`, HAProxy `req.ssl_sni`, Go tcpproxy's `sni.go`).
 *
 * Call {@link parseClientHello} with the whole preread buffer after every read. The ClientHello
 * may be split across several TLS records (RFC 8446 §5.1 allows a handshake message to span
 * records) and records may be split across reads; the parser walks the record headers, gathers
 * the handshake bytes and answers `incomplete` until the whole message is there. Nothing is
 * consumed: in passthrough mode every byte, ClientHello included, is forwarded to the backend.
 *
 * It fails as early as the bytes allow, with a {@link ProtocolError} (code
 * `L4LB_ERR_TLS_CLIENT_HELLO`) and one of the {@link ClientHelloErrorReason} values: a first byte
 * that is not a handshake record (0x16) fails at once (`not_tls`), a handshake length that cannot
 * fit in {@link CLIENT_HELLO_MAX} fails as soon as the 4-byte handshake header is in. Work per call
 * is linear in the (capped) buffer, and nothing but ProtocolError is ever thrown.
 *
 * The server name is returned lower-cased without a trailing dot. A server_name extension
 * without a host_name entry yields no name; a malformed or invalid host name is an error
 * (`bad_sni`) rather than "no SNI", so a client cannot dodge a name-based route by sending junk.
 */
import { ErrorCodes, ProtocolError } from '../errors.js';

/** Cap on the bytes peeked for a ClientHello, record headers included (16 KiB). */
export const CLIENT_HELLO_MAX = 16384;

/** Largest TLS plaintext record payload (2^14, RFC 8446 §5.1). */
export const TLS_MAX_RECORD_PAYLOAD = 16384;

const RECORD_HEADER_LEN = 5;
const HANDSHAKE_HEADER_LEN = 4;
const CONTENT_TYPE_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
const EXT_ALPN = 0x0010;
const SNI_HOST_NAME = 0;
const MAX_HOST_NAME = 255;

/** The `reason` values a {@link ProtocolError} from {@link parseClientHello} can carry. */
export type ClientHelloErrorReason =
  | 'not_tls'
  | 'bad_record'
  | 'not_client_hello'
  | 'too_large'
  | 'bad_client_hello'
  | 'bad_extension'
  | 'bad_sni';

/** What routing needs from a complete ClientHello. */
export interface ClientHelloInfo {
  status: 'done';
  /** SNI host name, lower-cased, trailing dot removed; undefined when the client sent none. */
  serverName?: string;
  /** ALPN protocol ids the client offers, in its order; empty when it sent none. */
  alpn: string[];
  /** Offset just past the ClientHello's last byte in the buffer (record headers included). */
  consumed: number;
  /** The ClientHello's legacy_version field (0x0303 for TLS 1.2 and 1.3). */
  legacyVersion: number;
}

/** Result of one parse attempt on the bytes received so far. */
export type ClientHelloResult = { status: 'incomplete' } | ClientHelloInfo;

const INCOMPLETE: ClientHelloResult = Object.freeze({ status: 'incomplete' }) as ClientHelloResult;

function fail(reason: ClientHelloErrorReason, message: string): never {
  throw new ProtocolError(ErrorCodes.TLS_CLIENT_HELLO, reason, `TLS ClientHello: ${message}`);
}

/**
 * Parses the TLS ClientHello at the start of `buf`. Returns `incomplete` while more bytes are
 * needed, the server name and ALPN list once complete, or throws {@link ProtocolError}.
 */
export function parseClientHello(buf: Uint8Array): ClientHelloResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] !== CONTENT_TYPE_HANDSHAKE) fail('not_tls', `first byte 0x${buf[0].toString(16)} is not a TLS handshake record`);
  if (buf.length > 1 && buf[1] !== 0x03) fail('not_tls', `record version major ${buf[1]} is not 3`);

  // Walk the records, collecting views of their payloads until the handshake message is whole.
  const pieces: Uint8Array[] = [];
  let have = 0;
  let need = -1; // total handshake bytes (header + body), once known
  let pos = 0;
  while (true) {
    if (pos + RECORD_HEADER_LEN > buf.length) {
      checkPartialRecordHeader(buf, pos);
      if (pos >= CLIENT_HELLO_MAX) fail('too_large', `ClientHello not complete within ${CLIENT_HELLO_MAX} bytes`);
      return INCOMPLETE;
    }
    if (buf[pos] !== CONTENT_TYPE_HANDSHAKE) fail('bad_record', `record type ${buf[pos]} inside the ClientHello`);
    if (buf[pos + 1] !== 0x03 || buf[pos + 2] > 0x04) {
      fail(pos === 0 ? 'not_tls' : 'bad_record', `record version ${buf[pos + 1]}.${buf[pos + 2]}`);
    }
    const recLen = (buf[pos + 3] << 8) | buf[pos + 4];
    if (recLen === 0) fail('bad_record', 'empty handshake record');
    if (recLen > TLS_MAX_RECORD_PAYLOAD) fail('bad_record', `record length ${recLen} exceeds 2^14`);
    const start = pos + RECORD_HEADER_LEN;
    const end = Math.min(start + recLen, buf.length);
    let take = end - start;
    if (need >= 0) take = Math.min(take, need - have);
    pieces.push(buf.subarray(start, start + take));
    have += take;

    if (need < 0 && have >= HANDSHAKE_HEADER_LEN) {
      const hh = gather(pieces, HANDSHAKE_HEADER_LEN);
      if (hh[0] !== HANDSHAKE_CLIENT_HELLO) fail('not_client_hello', `handshake type ${hh[0]} is not ClientHello`);
      const bodyLen = (hh[1] << 16) | (hh[2] << 8) | hh[3];
      need = HANDSHAKE_HEADER_LEN + bodyLen;
      // Cheapest possible framing: the message in as few records as possible.
      const minRecords = Math.ceil(need / TLS_MAX_RECORD_PAYLOAD);
      if (need + minRecords * RECORD_HEADER_LEN > CLIENT_HELLO_MAX) {
        fail('too_large', `ClientHello of ${need} bytes exceeds the ${CLIENT_HELLO_MAX}-byte cap`);
      }
      if (have > need) {
        // The first record carried more than the message; trim the view to the message.
        const last = pieces.length - 1;
        pieces[last] = pieces[last].subarray(0, pieces[last].length - (have - need));
        have = need;
      }
    }
    if (need >= 0 && have >= need) {
      // Done at the message's last byte: bytes after it in the same record are not waited for.
      const last = pieces[pieces.length - 1];
      return parseBody(gather(pieces, need), start + last.length);
    }
    if (start + recLen > buf.length) {
      if (buf.length >= CLIENT_HELLO_MAX) fail('too_large', `ClientHello not complete within ${CLIENT_HELLO_MAX} bytes`);
      return INCOMPLETE;
    }
    pos = start + recLen;
    if (pos >= CLIENT_HELLO_MAX) fail('too_large', `ClientHello not complete within ${CLIENT_HELLO_MAX} bytes`);
  }
}

/** Validates the bytes of a record header that has only partly arrived. */
function checkPartialRecordHeader(buf: Uint8Array, pos: number): void {
  if (pos < buf.length && buf[pos] !== CONTENT_TYPE_HANDSHAKE) fail('bad_record', `record type ${buf[pos]} inside the ClientHello`);
  if (pos + 1 < buf.length && buf[pos + 1] !== 0x03) fail(pos === 0 ? 'not_tls' : 'bad_record', `record version major ${buf[pos + 1]}`);
  if (pos + 2 < buf.length && buf[pos + 2] > 0x04) fail(pos === 0 ? 'not_tls' : 'bad_record', `record version minor ${buf[pos + 2]}`);
}

/** The first `n` bytes of the pieces, copied only when they span more than one piece. */
function gather(pieces: Uint8Array[], n: number): Uint8Array {
  if (pieces.length > 0 && pieces[0].length >= n) return pieces[0].subarray(0, n);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of pieces) {
    if (at >= n) break;
    const k = Math.min(p.length, n - at);
    out.set(p.subarray(0, k), at);
    at += k;
  }
  return out;
}

/** A bounds-checked cursor over the handshake message; overruns fail with the given reason. */
class Reader {
  pos: number;
  constructor(
    readonly b: Uint8Array,
    start: number,
    readonly end: number,
    readonly reason: ClientHelloErrorReason,
  ) {
    this.pos = start;
  }
  get left(): number {
    return this.end - this.pos;
  }
  need(n: number, what: string): void {
    if (this.pos + n > this.end) fail(this.reason, `truncated ${what}`);
  }
  u8(what: string): number {
    this.need(1, what);
    return this.b[this.pos++];
  }
  u16(what: string): number {
    this.need(2, what);
    const v = (this.b[this.pos] << 8) | this.b[this.pos + 1];
    this.pos += 2;
    return v;
  }
  skip(n: number, what: string): void {
    this.need(n, what);
    this.pos += n;
  }
  /** A sub-reader over the next `n` bytes; this reader moves past them. */
  sub(n: number, what: string, reason: ClientHelloErrorReason = this.reason): Reader {
    this.need(n, what);
    const r = new Reader(this.b, this.pos, this.pos + n, reason);
    this.pos += n;
    return r;
  }
}

function parseBody(msg: Uint8Array, consumed: number): ClientHelloInfo {
  const r = new Reader(msg, HANDSHAKE_HEADER_LEN, msg.length, 'bad_client_hello');
  const legacyVersion = r.u16('legacy_version');
  r.skip(32, 'random');
  const sidLen = r.u8('session id length');
  if (sidLen > 32) fail('bad_client_hello', `session id of ${sidLen} bytes`);
  r.skip(sidLen, 'session id');
  const csLen = r.u16('cipher suites length');
  if (csLen < 2 || csLen % 2 !== 0) fail('bad_client_hello', `cipher suites length ${csLen}`);
  r.skip(csLen, 'cipher suites');
  const cmLen = r.u8('compression methods length');
  if (cmLen < 1) fail('bad_client_hello', 'no compression methods');
  r.skip(cmLen, 'compression methods');
  const info: ClientHelloInfo = { status: 'done', alpn: [], consumed, legacyVersion };
  if (r.left === 0) return info; // pre-TLS-1.2 hellos may omit extensions entirely
  const extLen = r.u16('extensions length');
  if (extLen !== r.left) fail('bad_extension', `extensions length ${extLen} does not match the ${r.left} bytes left`);
  const exts = r.sub(extLen, 'extensions', 'bad_extension');
  const seen = new Set<number>();
  while (exts.left > 0) {
    const type = exts.u16('extension type');
    const len = exts.u16('extension length');
    const body = exts.sub(len, `extension ${type}`);
    if (seen.has(type)) fail('bad_extension', `extension ${type} appears twice`);
    seen.add(type);
    if (type === EXT_SERVER_NAME) {
      const name = parseServerName(new Reader(msg, body.pos, body.end, 'bad_sni'));
      if (name !== undefined) info.serverName = name;
    } else if (type === EXT_ALPN) {
      info.alpn = parseAlpn(body);
    }
  }
  return info;
}

function parseServerName(r: Reader): string | undefined {
  // RFC 6066 §3: a server's reply may carry an empty extension, a client's never does.
  const listLen = r.u16('server name list length');
  if (listLen !== r.left || listLen === 0) fail('bad_sni', `server name list length ${listLen}`);
  let name: string | undefined;
  while (r.left > 0) {
    const nameType = r.u8('name type');
    const len = r.u16('name length');
    const start = r.pos;
    r.skip(len, 'host name');
    if (nameType !== SNI_HOST_NAME) continue;
    if (name !== undefined) fail('bad_sni', 'more than one host_name');
    name = hostName(r.b.subarray(start, start + len));
  }
  return name;
}

/** Validates an SNI host name (letters, digits, `-`, `_`, dots between non-empty labels) and normalises it. */
function hostName(b: Uint8Array): string {
  if (b.length === 0 || b.length > MAX_HOST_NAME + 1) fail('bad_sni', `host name of ${b.length} bytes`);
  let labelLen = 0;
  for (let i = 0; i < b.length; i++) {
    const c = b[i];
    if (c === 0x2e) {
      if (labelLen === 0) fail('bad_sni', 'empty label in host name');
      labelLen = 0;
    } else if (
      (c >= 0x61 && c <= 0x7a) ||
      (c >= 0x41 && c <= 0x5a) ||
      (c >= 0x30 && c <= 0x39) ||
      c === 0x2d ||
      c === 0x5f
    ) {
      if (++labelLen > 63) fail('bad_sni', 'host name label longer than 63 bytes');
    } else {
      fail('bad_sni', `byte 0x${c.toString(16)} in host name`);
    }
  }
  let s = Buffer.from(b.buffer, b.byteOffset, b.length).toString('latin1').toLowerCase();
  if (s.endsWith('.')) s = s.slice(0, -1);
  if (s.length === 0 || s.length > MAX_HOST_NAME) fail('bad_sni', `host name of ${s.length} bytes`);
  return s;
}

function parseAlpn(r: Reader): string[] {
  const listLen = r.u16('ALPN list length');
  if (listLen !== r.left || listLen === 0) fail('bad_extension', `ALPN list length ${listLen}`);
  const out: string[] = [];
  while (r.left > 0) {
    const len = r.u8('ALPN protocol length');
    if (len === 0) fail('bad_extension', 'empty ALPN protocol id');
    const start = r.pos;
    r.skip(len, 'ALPN protocol id');
    out.push(Buffer.from(r.b.buffer, r.b.byteOffset + start, len).toString('latin1'));
  }
  return out;
}
