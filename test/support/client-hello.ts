/**
 * @module test/support/client-hello — a small TLS ClientHello builder: the handshake message
 * bytes from a spec (SNI, ALPN, extensions, session id), then framing into records. Shared by
 * the parser's tests and the fuzzer's properties.
 */

export const u8 = (n: number) => Buffer.from([n & 255]);
export const u16 = (n: number) => Buffer.from([(n >> 8) & 255, n & 255]);
export const u24 = (n: number) => Buffer.from([(n >> 16) & 255, (n >> 8) & 255, n & 255]);

export function ext(type: number, body: Buffer): Buffer {
  return Buffer.concat([u16(type), u16(body.length), body]);
}

export function sniExt(names: { type?: number; name: Buffer | string }[]): Buffer {
  const entries = Buffer.concat(
    names.map((n) => {
      const b = typeof n.name === 'string' ? Buffer.from(n.name, 'latin1') : n.name;
      return Buffer.concat([u8(n.type ?? 0), u16(b.length), b]);
    }),
  );
  return ext(0x0000, Buffer.concat([u16(entries.length), entries]));
}

export function alpnExt(protocols: string[]): Buffer {
  const list = Buffer.concat(protocols.map((p) => Buffer.concat([u8(p.length), Buffer.from(p, 'latin1')])));
  return ext(0x0010, Buffer.concat([u16(list.length), list]));
}

export interface HelloSpec {
  sni?: string;
  alpn?: string[];
  /** Extensions written as given, after SNI and ALPN. */
  extensions?: Buffer[];
  /** Omit the extensions block entirely. */
  noExtensions?: boolean;
  sessionId?: Buffer;
  handshakeType?: number;
}

/** A ClientHello handshake message (4-byte header + body). */
export function clientHello(spec: HelloSpec = {}): Buffer {
  const sid = spec.sessionId ?? Buffer.alloc(32, 7);
  const parts = [
    u16(0x0303),
    Buffer.alloc(32, 1),
    u8(sid.length),
    sid,
    u16(4),
    Buffer.from([0x13, 0x01, 0x13, 0x02]),
    u8(1),
    u8(0),
  ];
  if (!spec.noExtensions) {
    const exts: Buffer[] = [];
    if (spec.sni !== undefined) exts.push(sniExt([{ name: spec.sni }]));
    if (spec.alpn !== undefined) exts.push(alpnExt(spec.alpn));
    exts.push(...(spec.extensions ?? [ext(0x002b, Buffer.from([2, 3, 4]))]));
    const all = Buffer.concat(exts);
    parts.push(u16(all.length), all);
  }
  const body = Buffer.concat(parts);
  return Buffer.concat([u8(spec.handshakeType ?? 1), u24(body.length), body]);
}

export function record(payload: Buffer, type = 0x16, version = 0x0301): Buffer {
  return Buffer.concat([u8(type), u16(version), u16(payload.length), payload]);
}

/** Frames a handshake message into records of the given payload sizes (the last takes the rest). */
export function records(msg: Buffer, sizes: number[] = []): Buffer {
  const out: Buffer[] = [];
  let at = 0;
  for (const s of sizes) {
    if (at >= msg.length) break;
    const n = Math.max(1, Math.min(s, msg.length - at));
    out.push(record(msg.subarray(at, at + n)));
    at += n;
  }
  if (at < msg.length) out.push(record(msg.subarray(at)));
  return Buffer.concat(out);
}
