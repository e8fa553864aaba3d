/**
 * @module test/fuzz/targets — what the fuzzer feeds and what it holds each parser to.
 *
 * A target turns an input (bytes and a variant: `yaml`/`json` for the config loader, which
 * admin function for the admin API) into one call of the parser and checks its contract:
 * the answer is a result or the parser's own error type (ProtocolError with its code and a
 * known reason, ConfigError with located issues, AdminError 400, UsageError), never anything
 * else, and a result keeps the invariants listed with each target. A broken contract throws
 * {@link Finding}. The same `check` runs in the fuzzer, in its worker, and in the replay test
 * of the saved reproducers, so a reproducer passes exactly when the bug is fixed.
 */
import { isIPv4, isIPv6 } from 'node:net';
import fc from 'fast-check';
import { stringify as yamlStringify } from 'yaml';
import { ConfigError, ErrorCodes, ProtocolError, UsageError } from '../../src/errors.js';
import {
  PROXY_V1_MAX,
  PROXY_V2_MAX_DEFAULT,
  PROXY_V2_SIGNATURE,
  decodeProxyHeader,
  encodeProxyV1,
  encodeProxyV2,
  type ProxyHeader,
  type ProxyInfo,
  type ProxyTlv,
} from '../../src/protocol/proxy-protocol.js';
import { CLIENT_HELLO_MAX, parseClientHello } from '../../src/protocol/tls-client-hello.js';
import { parseConfigText } from '../../src/config/load.js';
import { MAX_DURATION_MS, MAX_WORKERS } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import { parseCli } from '../../src/cli/args.js';
import { AdminError } from '../../src/admin/errors.js';
import { parseJsonBody } from '../../src/admin/http.js';
import { parseAdminTarget } from '../../src/admin/route.js';
import { MAX_WEIGHT, expectNoFields, parseNewBackend, parseWeightBody } from '../../src/admin/requests.js';
import { bearerToken, hostAllowed, originAllowed } from '../../src/admin/auth.js';
import { parseIPv6 } from '../../src/admission/acl.js';
import { ext, clientHello, records } from '../support/client-hello.js';
import type { MutationProfile } from './mutate.js';

/** The parsers under test, by the name `--parser` takes. */
export const TARGET_NAMES = ['proxy', 'tls', 'config', 'admin', 'cli'] as const;
export type TargetName = (typeof TARGET_NAMES)[number];

/** One input: bytes, and how the target reads them. */
export interface FuzzInput {
  variant: string;
  bytes: Buffer;
}

/** An input with, for the round-trip properties, what its parse must give. */
export interface FuzzCase {
  input: FuzzInput;
  expect?: unknown;
}

/** How a parser answered an input that kept its contract. */
export type Verdict = 'accepted' | 'rejected' | 'incomplete';

/** What a finding is: an exception the contract does not allow, a broken invariant, or too slow. */
export type FindingKind = 'exception' | 'invariant' | 'hang' | 'socket';

/** The usual part of a slice for the properties: they find structure, mutation finds edges. */
const PROPERTY_SHARE = 0.25;

/** A broken contract. */
export class Finding extends Error {
  readonly kind: FindingKind;
  constructor(kind: FindingKind, message: string) {
    super(message);
    this.name = 'Finding';
    this.kind = kind;
  }
}

/** A parser under test. */
export interface FuzzTarget {
  name: TargetName;
  /** The variants its inputs come in; seed files carry the variant as their extension. */
  variants: readonly string[];
  profile: MutationProfile;
  /** Part of its in-process time given to the fast-check properties (the rest is mutation). */
  propertyShare: number;
  /** Runs the parser on `input` and checks its contract; throws {@link Finding}. */
  check(input: FuzzInput, expect?: unknown): Verdict;
  /** fast-check properties: generators of cases, each checked with `check`. */
  properties(): fc.Arbitrary<FuzzCase>[];
}

function invariant(message: string): Finding {
  return new Finding('invariant', message);
}

/** An exception the contract does not allow, named by type, message and where it was thrown. */
export function unexpected(err: unknown): Finding {
  if (err instanceof Finding) return err;
  if (!(err instanceof Error)) return new Finding('exception', `threw a non-Error: ${String(err)}`);
  const frame = err.stack?.split('\n').find((l) => l.trim().startsWith('at '))?.trim() ?? '';
  return new Finding('exception', `${err.name}: ${err.message} ${frame}`.trim());
}

function tokens(...xs: (string | Buffer)[]): Buffer[] {
  return xs.map((x) => (typeof x === 'string' ? Buffer.from(x, 'latin1') : x));
}

function protocolErrorOr(err: unknown, code: string, reasons: ReadonlySet<string>): void {
  if (!(err instanceof ProtocolError)) throw unexpected(err);
  if (err.code !== code) throw invariant(`ProtocolError with code ${err.code}, expected ${code}`);
  if (!reasons.has(err.reason)) throw invariant(`ProtocolError with undocumented reason "${err.reason}"`);
}

/** The parse of a prefix of a complete header must be `incomplete`, never an error. */
function prefixesIncomplete(bytes: Buffer, consumed: number, parse: (b: Buffer) => { status: string }): void {
  for (const k of new Set([consumed - 1, consumed >> 1, 1])) {
    if (k < 0 || k >= consumed) continue;
    let status: string;
    try {
      status = parse(bytes.subarray(0, k)).status;
    } catch (err) {
      throw invariant(`the ${k}-byte prefix of a header complete at ${consumed} bytes fails: ${(err as Error).message}`);
    }
    if (status !== 'incomplete') throw invariant(`the ${k}-byte prefix of a header complete at ${consumed} bytes is "${status}"`);
  }
}

function isPort(p: unknown, min = 0): boolean {
  return typeof p === 'number' && Number.isInteger(p) && p >= min && p <= 65535;
}

/** A backend name must survive a trip through an admin URL path segment (issue 20, defect 5). */
function nameRoundTrips(pool: string, backend: string): boolean {
  const target = `/api/v1/pools/${encodeURIComponent(pool)}/backends/${encodeURIComponent(backend)}`;
  try {
    const r = parseAdminTarget(target).route;
    return r.kind === 'pool' && r.parts.length === 3 && r.parts[0] === pool && r.parts[2] === backend;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// PROXY protocol v1/v2.

const PROXY_REASONS: ReadonlySet<string> = new Set([
  'bad_signature', 'v1_too_long', 'bad_v1_line', 'bad_v1_address', 'bad_v1_port', 'bad_version', 'bad_command',
  'bad_family', 'unix_family_unsupported', 'short_address', 'v2_too_long', 'tlv_overflow', 'bad_ssl_tlv', 'bad_crc32c',
]);

/** What a round-trip property expects the decoder to give back. */
interface ProxyExpect {
  version: 1 | 2;
  command: 'PROXY' | 'LOCAL';
  family: 'tcp4' | 'tcp6' | 'unknown';
  source?: [string, number];
  dest?: [string, number];
  /** v2: the TLVs in wire order, as [type, hex]. */
  tlvs: [number, string][];
}

function sameAddress(a: string | undefined, b: string, family: 'tcp4' | 'tcp6'): boolean {
  if (a === undefined) return false;
  if (family === 'tcp4') return a === b;
  const x = parseIPv6(a);
  const y = parseIPv6(b);
  return x !== undefined && y !== undefined && Buffer.from(x).equals(Buffer.from(y));
}

function checkProxyHeader(bytes: Buffer, h: ProxyHeader, consumed: number): void {
  if (!(consumed > 0 && consumed <= bytes.length)) throw invariant(`consumed ${consumed} of ${bytes.length} bytes`);
  if (h.version === 1 && consumed > PROXY_V1_MAX) throw invariant(`a v1 header of ${consumed} bytes`);
  if (h.version === 2 && consumed > PROXY_V2_MAX_DEFAULT) throw invariant(`a v2 header of ${consumed} bytes`);
  if (h.family === 'unknown') {
    if (h.sourceAddress !== undefined || h.destAddress !== undefined) throw invariant('addresses on an unknown-family header');
    return;
  }
  const isAddr = h.family === 'tcp4' ? isIPv4 : isIPv6;
  if (!isAddr(h.sourceAddress ?? '') || !isAddr(h.destAddress ?? '')) {
    throw invariant(`${h.family} addresses "${h.sourceAddress}" and "${h.destAddress}"`);
  }
  if (!isPort(h.sourcePort) || !isPort(h.destPort)) throw invariant(`ports ${h.sourcePort} and ${h.destPort}`);
  const info: ProxyInfo = {
    command: h.command,
    family: h.family,
    sourceAddress: h.sourceAddress,
    sourcePort: h.sourcePort,
    destAddress: h.destAddress,
    destPort: h.destPort,
  };
  if (h.version === 2) {
    // A decoded TCP header encodes back to the very bytes it came from.
    const again = encodeProxyV2({ ...info, tlvs: h.tlvs });
    if (!again.equals(bytes.subarray(0, consumed))) throw invariant('a decoded v2 header does not encode back to its bytes');
  } else {
    const again = decodeProxyHeader(encodeProxyV1(info));
    if (again.status !== 'done') throw invariant('a decoded v1 header does not encode to a complete one');
    const g = again.header;
    if (g.sourceAddress !== h.sourceAddress || g.destAddress !== h.destAddress || g.sourcePort !== h.sourcePort || g.destPort !== h.destPort) {
      throw invariant('a decoded v1 header does not survive encoding and decoding again');
    }
  }
}

function checkProxyExpect(h: ProxyHeader, e: ProxyExpect): void {
  const got = `v${h.version} ${h.command} ${h.family}`;
  const want = `v${e.version} ${e.command} ${e.family}`;
  if (got !== want) throw invariant(`decoded ${got}, encoded ${want}`);
  if (e.family !== 'unknown') {
    if (!e.source || !e.dest) throw invariant('a TCP expectation without addresses');
    if (!sameAddress(h.sourceAddress, e.source[0], e.family) || h.sourcePort !== e.source[1]) throw invariant('source address or port differs');
    if (!sameAddress(h.destAddress, e.dest[0], e.family) || h.destPort !== e.dest[1]) throw invariant('destination address or port differs');
  }
  const tlvs = h.tlvs.map((t) => [t.type, t.value.toString('hex')]);
  if (JSON.stringify(tlvs) !== JSON.stringify(e.tlvs)) throw invariant(`TLVs ${JSON.stringify(tlvs)}, encoded ${JSON.stringify(e.tlvs)}`);
}

const port = fc.integer({ min: 0, max: 65535 });
const proxyTlv: fc.Arbitrary<ProxyTlv> = fc
  .record({ type: fc.integer({ min: 0, max: 255 }).filter((t) => t !== 0x03 && t !== 0x20), value: fc.uint8Array({ maxLength: 40 }) })
  .map((t) => ({ type: t.type, value: Buffer.from(t.value) }));

const proxyRoundTrip: fc.Arbitrary<FuzzCase> = fc
  .record({
    v2: fc.boolean(),
    local: fc.boolean(),
    family: fc.constantFrom('tcp4' as const, 'tcp6' as const, 'unknown' as const),
    v4: fc.tuple(fc.ipV4(), fc.ipV4()),
    v6: fc.tuple(fc.ipV6(), fc.ipV6()),
    ports: fc.tuple(port, port),
    authority: fc.option(fc.domain(), { nil: undefined }),
    alpn: fc.option(fc.constantFrom('h2', 'http/1.1', 'x'), { nil: undefined }),
    uniqueId: fc.option(fc.uint8Array({ maxLength: 128 }).map((u) => Buffer.from(u)), { nil: undefined }),
    tlvs: fc.array(proxyTlv, { maxLength: 4 }),
    crc32c: fc.boolean(),
  })
  .map((r): FuzzCase => {
    const family = r.family;
    const addrs = family === 'tcp6' ? r.v6 : r.v4;
    const tcp = family !== 'unknown';
    const info: ProxyInfo = {
      command: r.v2 && r.local ? 'LOCAL' : 'PROXY',
      family,
      ...(tcp && { sourceAddress: addrs[0], sourcePort: r.ports[0], destAddress: addrs[1], destPort: r.ports[1] }),
      ...(r.v2 && { authority: r.authority, alpn: r.alpn, uniqueId: r.uniqueId, tlvs: r.tlvs, crc32c: r.crc32c }),
    };
    const bytes = r.v2 ? encodeProxyV2(info) : encodeProxyV1(info);
    const proxied = info.command === 'PROXY' && tcp;
    const tlvs: [number, string][] = [];
    if (r.v2 && proxied) {
      if (r.authority !== undefined) tlvs.push([0x02, Buffer.from(r.authority, 'utf8').toString('hex')]);
      if (r.alpn !== undefined) tlvs.push([0x01, Buffer.from(r.alpn, 'latin1').toString('hex')]);
      if (r.uniqueId !== undefined) tlvs.push([0x05, r.uniqueId.toString('hex')]);
      for (const t of r.tlvs) tlvs.push([t.type, t.value.toString('hex')]);
      if (r.crc32c) tlvs.push([0x03, bytes.subarray(bytes.length - 4).toString('hex')]);
    }
    const expect: ProxyExpect = {
      version: r.v2 ? 2 : 1,
      command: info.command,
      family: proxied ? family : 'unknown',
      ...(proxied && { source: [addrs[0], r.ports[0]] as [string, number], dest: [addrs[1], r.ports[1]] as [string, number] }),
      tlvs,
    };
    return { input: { variant: 'bin', bytes }, expect };
  });

export const proxyTarget: FuzzTarget = {
  name: 'proxy',
  propertyShare: PROPERTY_SHARE,
  variants: ['bin'],
  profile: {
    text: false,
    maxLength: 1024,
    dictionary: tokens('PROXY ', 'TCP4 ', 'TCP6 ', 'UNKNOWN', '\r\n', ' ', '::ffff:', '255.255.255.255', '65535', PROXY_V2_SIGNATURE, Buffer.from([0x21, 0x11]), Buffer.from([0x21, 0x21])),
  },
  check(input, expect) {
    const { bytes } = input;
    let r;
    try {
      r = decodeProxyHeader(bytes);
    } catch (err) {
      protocolErrorOr(err, ErrorCodes.PROXY_HEADER, PROXY_REASONS);
      if (expect !== undefined) throw invariant(`an encoded header is refused: ${(err as Error).message}`);
      return 'rejected';
    }
    if (r.status === 'incomplete') {
      const cap = bytes[0] === 0x50 ? PROXY_V1_MAX : PROXY_V2_MAX_DEFAULT;
      if (bytes.length >= cap) throw invariant(`still incomplete after ${bytes.length} bytes (cap ${cap})`);
      if (expect !== undefined) throw invariant('an encoded header is incomplete');
      return 'incomplete';
    }
    checkProxyHeader(bytes, r.header, r.consumed);
    prefixesIncomplete(bytes, r.consumed, decodeProxyHeader);
    if (expect !== undefined) checkProxyExpect(r.header, expect as ProxyExpect);
    return 'accepted';
  },
  properties: () => [
    proxyRoundTrip,
    fc.tuple(fc.constantFrom(PROXY_V2_SIGNATURE, Buffer.from('PROXY ')), fc.uint8Array({ maxLength: 300 })).map(([sig, rest]) => ({
      input: { variant: 'bin', bytes: Buffer.concat([sig, rest]) },
    })),
  ],
};

// ---------------------------------------------------------------------------------------------
// TLS ClientHello.

const TLS_REASONS: ReadonlySet<string> = new Set([
  'not_tls', 'bad_record', 'not_client_hello', 'too_large', 'bad_client_hello', 'bad_extension', 'bad_sni',
]);

const HOST_NAME_RE = /^[a-z0-9_-]{1,63}(\.[a-z0-9_-]{1,63})*$/;

interface TlsExpect {
  serverName: string | null;
  alpn: string[];
}

const alpnId = fc.string({ unit: 'binary-ascii', minLength: 1, maxLength: 20 });
const helloSpec = fc.record(
  {
    sni: fc.domain(),
    alpn: fc.array(alpnId, { minLength: 1, maxLength: 4 }),
    sessionId: fc.uint8Array({ maxLength: 32 }).map((u) => Buffer.from(u)),
    extensions: fc
      .uniqueArray(fc.record({ type: fc.integer({ min: 0x0011, max: 0xffff }), body: fc.uint8Array({ maxLength: 60 }) }), {
        maxLength: 5,
        selector: (e) => e.type,
      })
      .map((list) => list.map((e) => ext(e.type, Buffer.from(e.body)))),
  },
  { requiredKeys: ['sessionId', 'extensions'] },
);

export const tlsTarget: FuzzTarget = {
  name: 'tls',
  propertyShare: PROPERTY_SHARE,
  variants: ['bin'],
  profile: {
    text: false,
    maxLength: 4096,
    dictionary: tokens(Buffer.from([0x16, 0x03, 0x01]), Buffer.from([0x00, 0x00]), Buffer.from([0x00, 0x10]), Buffer.from([0x03, 0x03]), 'example.com', '.', 'h2'),
  },
  check(input, expect) {
    const { bytes } = input;
    let r;
    try {
      r = parseClientHello(bytes);
    } catch (err) {
      protocolErrorOr(err, ErrorCodes.TLS_CLIENT_HELLO, TLS_REASONS);
      if (expect !== undefined) throw invariant(`a built ClientHello is refused: ${(err as Error).message}`);
      return 'rejected';
    }
    if (r.status === 'incomplete') {
      if (bytes.length >= CLIENT_HELLO_MAX) throw invariant(`still incomplete after ${bytes.length} bytes (cap ${CLIENT_HELLO_MAX})`);
      if (expect !== undefined) throw invariant('a built ClientHello is incomplete');
      return 'incomplete';
    }
    if (!(r.consumed > 0 && r.consumed <= bytes.length && r.consumed <= CLIENT_HELLO_MAX)) throw invariant(`consumed ${r.consumed} of ${bytes.length} bytes`);
    if (r.serverName !== undefined && (r.serverName.length > 255 || !HOST_NAME_RE.test(r.serverName))) {
      throw invariant(`server name ${JSON.stringify(r.serverName)} is not a normalised host name`);
    }
    if (r.alpn.some((p) => p.length === 0 || p.length > 255)) throw invariant(`ALPN ids ${JSON.stringify(r.alpn)}`);
    prefixesIncomplete(bytes, r.consumed, parseClientHello);
    if (expect !== undefined) {
      const e = expect as TlsExpect;
      if ((r.serverName ?? null) !== e.serverName || JSON.stringify(r.alpn) !== JSON.stringify(e.alpn)) {
        throw invariant(`parsed ${JSON.stringify([r.serverName, r.alpn])}, built ${JSON.stringify([e.serverName, e.alpn])}`);
      }
    }
    return 'accepted';
  },
  properties: () => [
    fc.tuple(helloSpec, fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 8 })).map(([s, sizes]) => ({
      input: { variant: 'bin', bytes: records(clientHello(s), sizes) },
      expect: { serverName: s.sni === undefined ? null : s.sni.toLowerCase().replace(/\.$/, ''), alpn: s.alpn ?? [] } satisfies TlsExpect,
    })),
    fc.uint8Array({ maxLength: 400 }).map((u) => ({ input: { variant: 'bin', bytes: Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u]) } })),
  ],
};

// ---------------------------------------------------------------------------------------------
// Config loader (YAML and JSON text).

/** The environment `${NAME}` references see while fuzzing. */
const FUZZ_ENV = { FUZZ_PORT: '9001', FUZZ_HOST: '127.0.0.1', FUZZ_EMPTY: '', FUZZ_DURATION: '5s' };
/** Where relative paths in a fuzzed config resolve (never read: loading does no I/O). */
const FUZZ_BASE_DIR = '/nonexistent/l4lb-fuzz';

function checkLoadedConfig(c: Config): void {
  if (c.listeners.length === 0 || c.pools.length === 0) throw invariant('a config without listeners or pools was accepted');
  for (const l of c.listeners) {
    if (!isPort(l.port)) throw invariant(`listener "${l.name}" port ${l.port}`);
    for (const [k, v] of Object.entries(l.timeouts)) {
      if (typeof v === 'number' && !(Number.isFinite(v) && v >= 0 && v <= MAX_DURATION_MS)) throw invariant(`listener "${l.name}" timeout ${k} = ${v}`);
    }
  }
  for (const p of c.pools) {
    for (const b of p.backends) {
      if (!isPort(b.port, 1)) throw invariant(`pool "${p.name}" backend "${b.name}" port ${b.port}`);
      if (!(Number.isFinite(b.weight) && b.weight > 0)) throw invariant(`pool "${p.name}" backend "${b.name}" weight ${b.weight}`);
      if (b.name === '' || b.host === '') throw invariant(`pool "${p.name}" has a backend with an empty name or host`);
      if (!nameRoundTrips(p.name, b.name)) throw invariant(`backend name ${JSON.stringify(b.name)} in pool ${JSON.stringify(p.name)} cannot be named in an admin URL`);
    }
  }
}

const durationValue = fc.oneof(fc.constantFrom('5s', '250ms', '1m30s', '0', '24d', '25d', '-1s', '1e3s', '${FUZZ_DURATION}'), fc.integer(), fc.double());
const addressValue = fc.oneof(
  fc.constantFrom('127.0.0.1:9001', '[::1]:9002', 'localhost:80', ':8080', '127.0.0.1:0', '${FUZZ_HOST}:${FUZZ_PORT}', '1.2.3.4:65536', 'http://127.0.0.1:80'),
  fc.tuple(fc.ipV4(), fc.integer({ min: -1, max: 70000 })).map(([h, p]) => `${h}:${p}`),
  fc.string({ maxLength: 30 }),
);
const nameValue = fc.oneof(fc.constantFrom('web', 'api', '..', '.', 'a b', 'x/y', '%2e', 'é'), fc.string({ maxLength: 12 }));
const junk = fc.oneof(fc.string({ maxLength: 10 }), fc.integer(), fc.double(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 }));
/** Mostly a plausible value, sometimes anything at all. */
const maybe = <T>(a: fc.Arbitrary<T>) => fc.oneof({ arbitrary: a, weight: 6 }, { arbitrary: junk, weight: 1 });

const backendValue = fc.oneof(
  addressValue,
  fc.record(
    {
      address: maybe(addressValue),
      name: maybe(nameValue),
      weight: maybe(fc.oneof(fc.integer({ min: 0, max: 10 }), fc.double(), fc.constant(1e309))),
      backup: maybe(fc.boolean()),
      state: maybe(fc.constantFrom('enabled', 'draining', 'disabled', 'up')),
      maxConnections: maybe(fc.integer({ min: -1, max: 100 })),
    },
    { requiredKeys: ['address'] },
  ),
);
const poolValue = fc.record(
  {
    name: maybe(nameValue),
    balance: maybe(fc.constantFrom('round-robin', 'least-connections', 'maglev', 'random', 'weighted-round-robin', 'power-of-two-choices', 'source-ip-hash', 'fastest')),
    backends: maybe(fc.array(backendValue, { maxLength: 4 })),
    retries: maybe(fc.integer({ min: -1, max: 5 })),
  },
  { requiredKeys: ['name', 'backends'] },
);
const listenerValue = fc.record(
  {
    name: maybe(nameValue),
    listen: maybe(addressValue),
    pool: maybe(nameValue),
    retries: maybe(fc.integer({ min: -1, max: 5 })),
    maxConnections: maybe(fc.integer({ min: -1, max: 100 })),
    overLimit: maybe(fc.constantFrom('queue', 'reject')),
    timeouts: maybe(fc.record({ connect: durationValue, idle: durationValue, preread: durationValue }, { requiredKeys: [] })),
    acl: maybe(fc.array(fc.record({ allow: fc.constantFrom('10.0.0.0/8', '::1/128', '300.0.0.0/8', 'x') }, { requiredKeys: [] }), { maxLength: 2 })),
    acceptProxy: maybe(fc.record({ trusted: fc.array(fc.constantFrom('127.0.0.1/32', '0.0.0.0/0', 'bad'), { maxLength: 2 }) })),
    tls: maybe(fc.record({ mode: fc.constantFrom('passthrough', 'terminate', 'bogus') }, { requiredKeys: [] })),
    routes: maybe(fc.array(fc.record({ serverNames: fc.array(fc.constantFrom('a.example', '*.example', 'bad name'), { maxLength: 2 }), pool: nameValue }), { maxLength: 2 })),
  },
  { requiredKeys: ['listen'] },
);
const configValue = fc.record(
  {
    listeners: maybe(fc.array(listenerValue, { minLength: 1, maxLength: 2 })),
    pools: maybe(fc.array(poolValue, { minLength: 1, maxLength: 2 })),
    workers: maybe(fc.oneof(fc.integer({ min: 0, max: 300 }), fc.constant('auto'))),
    log: maybe(fc.record({ level: fc.constantFrom('info', 'debug', 'loud'), access: fc.constantFrom('stderr', 'off', 'access.log') }, { requiredKeys: [] })),
    admin: maybe(fc.record({ listen: addressValue, token: fc.string({ maxLength: 8 }) }, { requiredKeys: [] })),
  },
  { requiredKeys: ['listeners', 'pools'] },
);

export const configTarget: FuzzTarget = {
  name: 'config',
  // Building a config object and writing it as YAML or JSON costs twice a mutation, and this
  // loader is the slowest target: it needs its inputs.
  propertyShare: 0.1,
  variants: ['yaml', 'json'],
  profile: {
    text: true,
    maxLength: 16 * 1024,
    dictionary: tokens(
      'listeners:', 'pools:', 'backends:', 'listen: ', 'pool: ', 'name: ', '- ', '\n', '  ', '[', ']', '{', '}', ': ', ', ', '"',
      "'", '&a ', '*a', '<<: *a', '!!str ', '!!binary ', '? ', '|', '>', '#', '${FUZZ_PORT}', '${X}', '$${', '---\n', '...\n', 'x-', '~', 'null',
    ),
  },
  check(input) {
    const file = input.variant === 'json' ? 'fuzz.json' : 'fuzz.yaml';
    const text = input.bytes.toString('utf8');
    let config: Config;
    try {
      config = parseConfigText(text, file, FUZZ_ENV, { baseDir: FUZZ_BASE_DIR });
    } catch (err) {
      if (!(err instanceof ConfigError)) throw unexpected(err);
      if (err.code !== ErrorCodes.CONFIG_PARSE && err.code !== ErrorCodes.CONFIG_INVALID) throw invariant(`ConfigError with code ${err.code}`);
      if (err.issues.length === 0) throw invariant('a ConfigError without issues');
      for (const i of err.issues) {
        if (typeof i.path !== 'string' || typeof i.message !== 'string' || i.message === '') throw invariant(`an issue without a path or message: ${JSON.stringify(i)}`);
      }
      if (!err.message.startsWith(file)) throw invariant('a ConfigError message that does not start with the file name');
      return 'rejected';
    }
    checkLoadedConfig(config);
    return 'accepted';
  },
  properties: () => [
    fc.tuple(configValue, fc.boolean()).map(([c, json]) => ({
      input: json ? { variant: 'json', bytes: Buffer.from(JSON.stringify(c, null, 1)) } : { variant: 'yaml', bytes: Buffer.from(yamlStringify(c)) },
    })),
  ],
};

// ---------------------------------------------------------------------------------------------
// Admin API request parsing.

/** The admin server's address as the fuzzed Host/Origin checks see it. */
const ADMIN_HOST = '127.0.0.1';
const ADMIN_HOST_HEADER = '127.0.0.1:9000';

function adminErrorOr(err: unknown): void {
  if (!(err instanceof AdminError)) throw unexpected(err);
  if (err.status !== 400) throw invariant(`AdminError with status ${err.status} (${err.reason}) for a malformed request`);
}

/** Body variants: the JSON parse, then the request parser that takes it. */
function checkBody(bytes: Buffer, parse: (body: unknown) => void): Verdict {
  try {
    parse(parseJsonBody(bytes));
  } catch (err) {
    adminErrorOr(err);
    return 'rejected';
  }
  return 'accepted';
}

const urlSegment = fc.oneof(
  fc.constantFrom('api', 'v1', 'pools', 'backends', 'web', 'drain', 'enable', 'weight', 'remove', '..', '.', '%', '%2e', '%2E%2e', '%2F', '%zz', '%C3%A9', '%E0%A4%A', '', 'assets', 'healthz'),
  fc.string({ maxLength: 10 }),
  fc.string({ maxLength: 10 }).map(encodeURIComponent),
);
const adminBody = fc.oneof(
  fc.record(
    {
      address: maybe(addressValue),
      name: maybe(nameValue),
      weight: maybe(fc.oneof(fc.double(), fc.integer())),
      backup: maybe(fc.boolean()),
      state: maybe(fc.constantFrom('enabled', 'draining', 'disabled')),
      maxConnections: maybe(fc.integer()),
    },
    { requiredKeys: [] },
  ).map((b) => JSON.stringify(b)),
  fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)),
);

export const adminTarget: FuzzTarget = {
  name: 'admin',
  propertyShare: PROPERTY_SHARE,
  variants: ['url', 'backend', 'weight', 'nofields', 'host', 'origin', 'auth'],
  profile: {
    text: true,
    maxLength: 2048,
    dictionary: tokens('/', '%', '%2e', '%2F', '..', '?', '#', '&', '=', '/api/v1/pools/', '/backends/', '/assets/', 'http://', '[', ']', ':', '"name"', '"address"', '"weight"', '{', '}', 'Bearer ', '\t', '\u00ff'),
  },
  check(input) {
    const s = input.bytes.toString(input.variant === 'url' ? 'latin1' : 'utf8');
    switch (input.variant) {
      case 'url': {
        try {
          const t = parseAdminTarget(s);
          if (t.route.kind === 'pool' && t.route.parts.some((p) => typeof p !== 'string')) throw invariant('a pool route with a segment that is not a string');
          return 'accepted';
        } catch (err) {
          if (err instanceof Finding) throw err;
          adminErrorOr(err);
          return 'rejected';
        }
      }
      case 'backend':
        return checkBody(input.bytes, (body) => {
          const b = parseNewBackend(body);
          if (!isPort(b.port, 1) || b.host === '') throw invariant(`an added backend at "${b.host}" port ${b.port}`);
          if (!(b.weight > 0 && b.weight <= MAX_WEIGHT)) throw invariant(`an added backend with weight ${b.weight}`);
          if (!nameRoundTrips('web', b.name)) throw invariant(`backend name ${JSON.stringify(b.name)} is accepted but cannot be named in an admin URL`);
        });
      case 'weight':
        return checkBody(input.bytes, (body) => {
          const w = parseWeightBody(body);
          if (!(w > 0 && w <= MAX_WEIGHT)) throw invariant(`weight ${w} accepted`);
        });
      case 'nofields':
        return checkBody(input.bytes, (body) => expectNoFields(body, 'drain'));
      case 'host':
        try {
          return hostAllowed(s, ADMIN_HOST) ? 'accepted' : 'rejected';
        } catch (err) {
          throw unexpected(err);
        }
      case 'origin':
        try {
          return originAllowed(s, ADMIN_HOST_HEADER) ? 'accepted' : 'rejected';
        } catch (err) {
          throw unexpected(err);
        }
      case 'auth': {
        let token: string | undefined;
        try {
          token = bearerToken(s);
        } catch (err) {
          throw unexpected(err);
        }
        if (token !== undefined && (token === '' || /\s/.test(token))) throw invariant(`bearer token ${JSON.stringify(token)}`);
        return token === undefined ? 'rejected' : 'accepted';
      }
      default:
        throw invariant(`unknown admin variant "${input.variant}"`);
    }
  },
  properties: () => [
    fc.tuple(fc.array(urlSegment, { minLength: 1, maxLength: 7 }), fc.option(fc.string({ maxLength: 12 }), { nil: undefined })).map(([segs, q]) => ({
      input: { variant: 'url', bytes: Buffer.from(`/${segs.join('/')}${q !== undefined ? `?${q}` : ''}`, 'latin1') },
    })),
    fc.tuple(fc.constantFrom('backend', 'weight', 'nofields'), adminBody).map(([variant, body]) => ({ input: { variant, bytes: Buffer.from(body) } })),
    fc.tuple(fc.constantFrom('host', 'origin', 'auth'), fc.string({ maxLength: 40 })).map(([variant, s]) => ({ input: { variant, bytes: Buffer.from(s) } })),
  ],
};

// ---------------------------------------------------------------------------------------------
// CLI arguments.

/** argv is stored as its arguments joined with NUL bytes (no argument can hold one). */
export function argvOf(bytes: Buffer): string[] {
  return bytes.length === 0 ? [] : bytes.toString('utf8').split('\u0000');
}

function checkCliConfig(c: Config): void {
  const l = c.listeners[0];
  if (!isPort(l.port)) throw invariant(`listen port ${l.port}`);
  for (const [k, v] of Object.entries(l.timeouts)) {
    if (typeof v === 'number' && !(Number.isFinite(v) && v >= 0 && v <= MAX_DURATION_MS)) {
      throw invariant(`timeout ${k} = ${v} ms is beyond ${MAX_DURATION_MS} ms (the config file's limit, Node's timer limit)`);
    }
  }
  for (const b of c.pools[0].backends) if (!isPort(b.port, 1) || b.host === '') throw invariant(`backend "${b.host}" port ${b.port}`);
  if (!(Number.isInteger(c.workers) && c.workers >= 1 && c.workers <= MAX_WORKERS)) throw invariant(`workers ${c.workers}`);
}

const cliFlag = fc.constantFrom(
  '-l', '--listen', '--udp', '-b', '--balance', '--connect-timeout', '--retries', '--idle-timeout', '--admin', '--workers', '-c', '--config',
  '--check', '--watch', '--log-level', '--access-log', '--demo', '-h', '--help', '-V', '--version', '--', '-', 'check', '--listen=', '-lb',
);
const cliValue = fc.oneof(
  addressValue,
  fc.constantFrom('round-robin', 'maglev', 'auto', '4', '0', '257', '5s', '25d', '1e3', 'debug', 'off', 'l4lb.yaml', '', '-1'),
  fc.integer({ min: 0, max: 100 }).map((n) => `${n}${['ms', 's', 'm', 'h', 'd'][n % 5]}`),
  fc.string({ maxLength: 12 }),
);

export const cliTarget: FuzzTarget = {
  name: 'cli',
  propertyShare: PROPERTY_SHARE,
  variants: ['args'],
  profile: {
    text: true,
    maxLength: 512,
    dictionary: tokens('\u0000', '\u0000--listen\u0000', '\u0000-b\u0000', '\u0000--retries\u0000', '\u0000--workers\u0000', '\u0000--config\u0000', '=', '--', '-', ':', '[::1]:', '127.0.0.1:', 'd', 'ms'),
  },
  check(input) {
    let action;
    try {
      action = parseCli(argvOf(input.bytes));
    } catch (err) {
      if (!(err instanceof UsageError)) throw unexpected(err);
      if (err.message === '') throw invariant('a UsageError without a message');
      return 'rejected';
    }
    if (action.kind === 'run' || action.kind === 'demo') checkCliConfig(action.config);
    return 'accepted';
  },
  properties: () => [
    fc.array(fc.oneof(cliFlag, cliValue, fc.tuple(cliFlag, cliValue).map(([f, v]) => `${f}=${v}`)), { maxLength: 8 }).map((argv) => ({
      input: { variant: 'args', bytes: Buffer.from(argv.join('\u0000')) },
    })),
  ],
};

/** Every target, by name. */
export const TARGETS: Readonly<Record<TargetName, FuzzTarget>> = {
  proxy: proxyTarget,
  tls: tlsTarget,
  config: configTarget,
  admin: adminTarget,
  cli: cliTarget,
};
