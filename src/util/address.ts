/**
 * @module util/address — parse and format `HOST:PORT` as users write them.
 *
 * `127.0.0.1:80`, `[::1]:80`, `:8080` (all interfaces), `example.com:443`.
 * A bare IPv6 address without brackets (`::1:80`) is rejected: the port is ambiguous.
 */
import { isIP } from 'node:net';

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
  if (host !== '' && isIP(host) === 0 && !/^[a-zA-Z0-9]([a-zA-Z0-9-_.]*[a-zA-Z0-9])?\.?$/.test(host)) {
    return { error: `"${host}" is not a valid host name or IP address` };
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
