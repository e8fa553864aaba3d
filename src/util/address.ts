/**
 * @module util/address — parse and format `HOST:PORT` as users write them.
 *
 * `127.0.0.1:80`, `[::1]:80`, `:8080` (all interfaces), `example.com:443`.
 * A bare IPv6 address without brackets (`::1:80`) is rejected: the port is ambiguous.
 */
import { isIP } from 'node:net';

/** `http://`, `tcp://`…: what users paste from a URL. */
const SCHEME_RE = /^[a-z][a-z0-9+.-]*:\/\//i;

/** Dot-separated numbers only: meant as an IPv4 address, never a DNS name (RFC 3696: no all-numeric TLD). */
const NUMERIC_HOST_RE = /^\d+(\.\d+)*\.?$/;

/**
 * Why `host` (not an IP literal) cannot be a host name because it is made of numbers only
 * (`256.256.256.256`, `10.0.0`, `010.0.0.1`), or undefined. A resolver would take such a
 * name as an address of its own making, or not at all.
 */
export function numericHostError(host: string): string | undefined {
  if (!NUMERIC_HOST_RE.test(host)) return undefined;
  return `"${host}" is not a valid IPv4 address: write four numbers from 0 to 255 without leading zeros, e.g. "10.0.0.1"`;
}

export interface HostPort {
  /** Host name or IP literal, without brackets. Empty string means all interfaces. */
  host: string;
  port: number;
}

/** Thrown-free parse: returns the address or a reason it is invalid. */
export function parseHostPort(
  input: string,
  opts: { allowEmptyHost?: boolean; allowPortZero?: boolean } = {},
): HostPort | { error: string } {
  const s = input.trim();
  const scheme = SCHEME_RE.exec(s);
  if (scheme) return { error: `"${input}": a scheme ("${scheme[0]}") is not allowed here: write HOST:PORT, e.g. "127.0.0.1:80"` };
  let host: string;
  let portStr: string;
  if (s.startsWith('[')) {
    const end = s.indexOf(']');
    if (end < 0) return { error: `missing ']' in "${input}"` };
    host = s.slice(1, end);
    if (isIP(host) !== 6) return { error: `"${host}" in brackets is not an IPv6 address` };
    if (s[end + 1] !== ':') return { error: `expected ":PORT" after "]" in "${input}"` };
    portStr = s.slice(end + 2);
  } else {
    const idx = s.lastIndexOf(':');
    if (idx < 0) return { error: `expected HOST:PORT, got "${input}"` };
    host = s.slice(0, idx);
    portStr = s.slice(idx + 1);
    if (host.includes(':')) return { error: `IPv6 addresses need brackets, e.g. "[::1]:80" (got "${input}")` };
  }
  if (host === '' && !opts.allowEmptyHost) return { error: `missing host in "${input}"` };
  if (host !== '' && isIP(host) === 0) {
    const numeric = numericHostError(host);
    if (numeric !== undefined) return { error: numeric };
    if (!/^[a-zA-Z0-9]([a-zA-Z0-9-_.]*[a-zA-Z0-9])?\.?$/.test(host)) return { error: `"${host}" is not a valid host name or IP address` };
  }
  if (!/^\d{1,5}$/.test(portStr)) return { error: `port "${portStr}" is not a number in "${input}"` };
  const port = Number(portStr);
  const min = opts.allowPortZero ? 0 : 1;
  if (port < min || port > 65535) return { error: `port ${port} is out of range ${min}-65535 in "${input}"` };
  return { host, port };
}

/** Formats host and port, bracketing IPv6 literals. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
