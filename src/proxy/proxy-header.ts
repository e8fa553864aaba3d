/**
 * @module proxy/proxy-header — the PROXY protocol header l4lb sends to a backend: what the
 * connection knows of its client, and what a received v2 header passes on.
 */
import {
  encodeProxyV1, encodeProxyV2, proxyInfoFor, PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_SSL, PP2_TYPE_UNIQUE_ID, type ProxyTlv,
} from '../protocol/proxy-protocol.js';

/**
 * TLVs of a received PROXY v2 header passed on to backends in the v2 header l4lb sends: what
 * the sender knew of the client's connection (server name, protocol, TLS, request id). The
 * CRC32C and NOOP TLVs belong to one header and are not copied; l4lb's own authority and ALPN
 * (from its own TLS handling) win over received ones.
 */
const FORWARDED_TLVS = new Set([PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_UNIQUE_ID, PP2_TYPE_SSL]);

/** The TLVs of a received v2 header to pass on; undefined when none. */
export function forwardedTlvs(received: ProxyTlv[]): ProxyTlv[] | undefined {
  const tlvs = received.filter((x) => FORWARDED_TLVS.has(x.type));
  return tlvs.length > 0 ? tlvs : undefined;
}

/** What one header says. */
export interface ProxyHeaderFacts {
  clientAddress: string;
  clientPort: number;
  /** The address the client connected to (ours, or what a received header named). */
  destAddress: string | undefined;
  destPort: number | undefined;
  /** SNI, when known. */
  serverName: string | undefined;
  /** The protocol in use, only when l4lb terminated TLS (in passthrough the backend picks). */
  alpn: string | undefined;
  /** From a received v2 header ({@link forwardedTlvs}). */
  forward: ProxyTlv[] | undefined;
}

/** The header for `version`, built from `f`. */
export function proxyHeader(version: 'v1' | 'v2', f: ProxyHeaderFacts): Buffer {
  const info = proxyInfoFor(f.clientAddress, f.clientPort, f.destAddress, f.destPort);
  if (version === 'v1') return encodeProxyV1(info);
  const { alpn } = f;
  const authority = f.serverName || undefined;
  // What a received v2 header said that l4lb does not know better passes on unchanged.
  const tlvs = f.forward?.filter(
    (x) => !(x.type === PP2_TYPE_AUTHORITY && authority !== undefined) && !(x.type === PP2_TYPE_ALPN && alpn !== undefined),
  );
  return encodeProxyV2({ ...info, authority, alpn, tlvs });
}
