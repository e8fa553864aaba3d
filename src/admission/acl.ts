/**
 * @module admission/acl — ordered allow/deny CIDR rules checked on every accepted connection,
 * plus the small IP address parser/formatter the protocol and admission modules share.
 *
 * Rules are compiled once into integer masks, so `allows()` parses the client address once and
 * then does a few integer compares per rule (no per-rule string parsing as a `BlockList` per rule
 * would do). First match wins, as in HAProxy `tcp-request connection` and nginx `allow`/`deny`.
 *
 * IPv4-mapped IPv6 addresses (`::ffff:10.0.0.1`, what a dual-stack listener reports for IPv4
 * clients) are treated as the IPv4 address they carry, both as client addresses and in rules
 * (`::ffff:10.0.0.0/104` is the rule `10.0.0.0/8`). IPv4 rules therefore never need a mapped twin.
 * The other way round does not hold: `::/0` matches every IPv6 client but no IPv4 one; allow or
 * deny everything with both `0.0.0.0/0` and `::/0`.
 */
import { ErrorCodes, L4lbError } from '../errors.js';

/** A parsed IP address; IPv4-mapped IPv6 addresses come out as family 4. */
export type IpAddress = { family: 4; v4: number } | { family: 6; v6: Uint8Array };

const MAPPED_PREFIX_BYTES = 12;

/**
 * Parses a strict dotted-quad IPv4 address into an unsigned 32-bit number, or returns -1.
 * Leading zeros are rejected (`010.0.0.1` could mean octal), as `net.isIP` and the PROXY spec do.
 */
export function parseIPv4(s: string): number {
  const len = s.length;
  if (len < 7 || len > 15) return -1;
  let n = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x2e) {
      if (digits === 0 || dots === 3) return -1;
      n = n * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && octet === 0) return -1;
      octet = octet * 10 + (c - 0x30);
      if (octet > 255) return -1;
      digits++;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return n * 256 + octet;
}

/** Formats an unsigned 32-bit number as a dotted-quad IPv4 address. */
export function formatIPv4(n: number): string {
  return `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
  return -1;
}

/** Parses colon-separated groups (no `::`) into `out` at `at`; returns groups written or -1. */
function parseGroups(s: string, out: Uint8Array, at: number, allowV4Tail: boolean): number {
  if (s === '') return 0;
  const parts = s.split(':');
  let written = 0;
  for (let p = 0; p < parts.length; p++) {
    const part = parts[p];
    if (allowV4Tail && p === parts.length - 1 && part.includes('.')) {
      const v4 = parseIPv4(part);
      if (v4 < 0 || at + 4 > 16) return -1;
      out[at++] = v4 >>> 24;
      out[at++] = (v4 >>> 16) & 255;
      out[at++] = (v4 >>> 8) & 255;
      out[at++] = v4 & 255;
      written += 2;
      continue;
    }
    if (part.length === 0 || part.length > 4 || at + 2 > 16) return -1;
    let v = 0;
    for (let i = 0; i < part.length; i++) {
      const h = hexValue(part.charCodeAt(i));
      if (h < 0) return -1;
      v = v * 16 + h;
    }
    out[at++] = v >>> 8;
    out[at++] = v & 255;
    written++;
  }
  return written;
}

/**
 * Parses an IPv6 address (with `::` compression and an optional dotted IPv4 tail) into 16 bytes,
 * or returns `undefined`. A zone (`fe80::1%eth0`) is accepted only when `allowZone` is set, and
 * ignored.
 */
export function parseIPv6(s: string, allowZone = false): Uint8Array | undefined {
  const pct = s.indexOf('%');
  if (pct >= 0) {
    if (!allowZone || pct === s.length - 1) return undefined;
    s = s.slice(0, pct);
  }
  if (s.length < 2 || s.length > 45) return undefined;
  const out = new Uint8Array(16);
  const dc = s.indexOf('::');
  if (dc < 0) {
    return parseGroups(s, out, 0, true) === 8 ? out : undefined;
  }
  if (s.indexOf('::', dc + 1) >= 0) return undefined;
  const head = s.slice(0, dc);
  const tail = s.slice(dc + 2);
  const h = parseGroups(head, out, 0, false);
  if (h < 0) return undefined;
  const tmp = new Uint8Array(16);
  const t = parseGroups(tail, tmp, 0, true);
  if (t < 0 || h + t > 7) return undefined;
  out.set(tmp.subarray(0, t * 2), 16 - t * 2);
  return out;
}

/** True when the 16 bytes are an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`). */
export function isMappedIPv4(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/**
 * Formats 16 bytes as an IPv6 address in RFC 5952 canonical form (lower case, longest zero run
 * compressed, first one on ties). IPv4-mapped addresses are written `::ffff:a.b.c.d`, as Node
 * reports them for IPv4 clients of a dual-stack socket.
 */
export function formatIPv6(b: Uint8Array): string {
  if (isMappedIPv4(b)) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((b[i] << 8) | b[i + 1]);
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = (g: number[]) => g.map((x) => x.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLen))}`;
}

/**
 * Parses a client address as sockets report it: IPv4, IPv6 (zone ignored), IPv4-mapped IPv6
 * unmapped to IPv4. Returns `undefined` for anything else.
 */
export function parseIp(s: string): IpAddress | undefined {
  const v4 = parseIPv4(s);
  if (v4 >= 0) return { family: 4, v4 };
  const v6 = parseIPv6(s, true);
  if (v6 === undefined) return undefined;
  if (isMappedIPv4(v6)) {
    return { family: 4, v4: ((v6[12] << 24) | (v6[13] << 16) | (v6[14] << 8) | v6[15]) >>> 0 };
  }
  return { family: 6, v6 };
}

/** A parsed CIDR block; `v4`/`v6` hold the network with host bits cleared. */
export type Cidr =
  | { family: 4; v4: number; prefix: number }
  | { family: 6; v6: Uint8Array; prefix: number };

/**
 * Parses `10.0.0.0/8`, `2001:db8::/32` or a bare address (a /32 or /128). Host bits below the
 * prefix are cleared (`10.1.2.3/8` is `10.0.0.0/8`), as HAProxy and Go's `ParseCIDR` do.
 * IPv4-mapped IPv6 blocks with a prefix of 96 or more become IPv4 blocks. Thrown-free: returns
 * the block or a reason it is invalid.
 */
export function parseCidr(input: string): Cidr | { error: string } {
  const s = input.trim();
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  const prefixText = slash < 0 ? undefined : s.slice(slash + 1);
  const v4 = parseIPv4(addrText);
  const v6 = v4 < 0 ? parseIPv6(addrText) : undefined;
  if (v4 < 0 && v6 === undefined) return { error: `"${input}": "${addrText}" is not an IPv4 or IPv6 address` };
  const max = v4 >= 0 ? 32 : 128;
  let prefix = max;
  if (prefixText !== undefined) {
    if (!/^\d{1,3}$/.test(prefixText)) return { error: `"${input}": prefix length "${prefixText}" is not a number` };
    prefix = Number(prefixText);
    if (prefix > max) {
      return { error: `"${input}": prefix length ${prefix} is out of range 0-${max} for IPv${max === 32 ? 4 : 6}` };
    }
  }
  if (v4 >= 0) return { family: 4, v4: (v4 & maskV4(prefix)) >>> 0, prefix };
  const bytes = v6 as Uint8Array;
  if (prefix >= 96 && isMappedIPv4(bytes)) {
    const n = ((bytes[12] << 24) | (bytes[13] << 16) | (bytes[14] << 8) | bytes[15]) >>> 0;
    const p4 = prefix - 96;
    return { family: 4, v4: (n & maskV4(p4)) >>> 0, prefix: p4 };
  }
  const net = new Uint8Array(16);
  for (let i = 0; i < 16; i++) {
    const bits = Math.max(0, Math.min(8, prefix - i * 8));
    net[i] = bytes[i] & ((0xff00 >> bits) & 0xff);
  }
  return { family: 6, v6: net, prefix };
}

function maskV4(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** True when `addr` lies inside `cidr` (families must agree; mapped addresses are IPv4). */
export function cidrContains(cidr: Cidr, addr: IpAddress): boolean {
  if (cidr.family === 4) {
    return addr.family === 4 && ((addr.v4 & maskV4(cidr.prefix)) >>> 0) === cidr.v4;
  }
  if (addr.family !== 6) return false;
  const full = cidr.prefix >>> 3;
  const a = addr.v6;
  const n = cidr.v6;
  for (let i = 0; i < full; i++) if (a[i] !== n[i]) return false;
  const rest = cidr.prefix & 7;
  if (rest === 0) return true;
  const m = (0xff00 >> rest) & 0xff;
  return (a[full] & m) === n[full];
}

/** One ACL rule as written in the config. */
export interface AclRuleSpec {
  action: 'allow' | 'deny';
  /** CIDR (`10.0.0.0/8`, `::1/128`) or a single address. */
  cidr: string;
}

/** The result of matching an address: the action taken and which rule decided (-1 = default). */
export interface AclDecision {
  allow: boolean;
  rule: number;
}

interface CompiledV4 {
  net: number;
  mask: number;
  allow: boolean;
  index: number;
}

interface CompiledV6 {
  cidr: Cidr & { family: 6 };
  allow: boolean;
  index: number;
}

/** Thrown when an ACL cannot be built from its rules (an invalid CIDR). */
export class AclError extends L4lbError {
  constructor(message: string) {
    super(ErrorCodes.CONFIG_INVALID, 'internal', message);
    this.name = 'AclError';
  }
}

/**
 * An ordered allow/deny list; the first rule whose CIDR contains the client address decides,
 * otherwise the default action (config default: allow). Addresses that are not IP addresses
 * (a socket already closed reports `undefined`) are denied: an ACL fails closed.
 */
export class Acl {
  readonly #v4: CompiledV4[] = [];
  readonly #v6: CompiledV6[] = [];
  readonly #defaultAllow: boolean;

  /** Compiles the rules; throws {@link AclError} naming the first invalid rule. */
  constructor(rules: readonly AclRuleSpec[], defaultAction: 'allow' | 'deny' = 'allow') {
    this.#defaultAllow = defaultAction === 'allow';
    rules.forEach((rule, index) => {
      if (rule.action !== 'allow' && rule.action !== 'deny') {
        throw new AclError(`acl[${index}]: action must be "allow" or "deny", got "${String(rule.action)}"`);
      }
      const c = parseCidr(String(rule.cidr));
      if ('error' in c) throw new AclError(`acl[${index}]: ${c.error}`);
      const allow = rule.action === 'allow';
      if (c.family === 4) this.#v4.push({ net: c.v4, mask: maskV4(c.prefix), allow, index });
      else this.#v6.push({ cidr: c, allow, index });
    });
  }

  /** True when a connection from `address` may proceed. Called for every accepted connection. */
  allows(address: string | undefined): boolean {
    return this.decide(address).allow;
  }

  /** Like {@link allows}, also saying which rule decided (for logs); rule -1 is the default. */
  decide(address: string | undefined): AclDecision {
    const addr = address === undefined ? undefined : parseIp(address);
    if (addr === undefined) return { allow: false, rule: -1 };
    if (addr.family === 4) {
      const a = addr.v4;
      for (const r of this.#v4) {
        if (((a & r.mask) >>> 0) === r.net) return { allow: r.allow, rule: r.index };
      }
    } else {
      for (const r of this.#v6) {
        if (cidrContains(r.cidr, addr)) return { allow: r.allow, rule: r.index };
      }
    }
    return { allow: this.#defaultAllow, rule: -1 };
  }
}
