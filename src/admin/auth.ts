/**
 * @module admin/auth — who may talk to the admin server.
 *
 * - Off loopback, a token is mandatory: the server refuses to start without one.
 * - With a token, every API request carries `Authorization: Bearer TOKEN`, compared in
 *   constant time (both sides hashed first, so neither the content nor the length leaks).
 * - Without a token (loopback only), the `Host` header must name a loopback address or the
 *   configured host. A web page the operator visits could otherwise reach the API through
 *   DNS rebinding (a name of the attacker's that resolves to 127.0.0.1).
 * - A request that changes something and carries an `Origin` must come from the admin
 *   server's own origin: a cross-site form post cannot drain a backend.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { isIP } from 'node:net';
import type { AdminConfig } from '../config/types.js';
import { isLoopbackHost } from '../config/schema.js';
import { formatHostPort } from '../util/address.js';
import { AdminError } from './errors.js';

/** Throws when `admin` would expose the API beyond this machine without a token. */
export function assertAdminConfigSafe(admin: AdminConfig): void {
  if (isLoopbackHost(admin.host)) return;
  if (admin.token !== undefined && admin.token !== '') return;
  const where = admin.host === '' ? `all interfaces (port ${admin.port})` : formatHostPort(admin.host, admin.port);
  throw new AdminError(
    0,
    'token_required',
    `refusing to serve the admin API on ${where} without a token: set admin.token, or listen on a loopback address such as 127.0.0.1`,
    'internal',
  );
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s, 'utf8').digest();
}

/** Constant-time comparison of a presented token with the configured one. */
export function tokenMatches(given: string, expected: string): boolean {
  return timingSafeEqual(digest(given), digest(expected));
}

/** The token of an `Authorization: Bearer TOKEN` header, if there is one. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header);
  return m ? m[1] : undefined;
}

/** The host part of a `Host` header (`127.0.0.1:9000`, `[::1]:9000`, `localhost`). */
export function hostOfHeader(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end > 0 ? h.slice(1, end) : h;
  }
  const colon = h.lastIndexOf(':');
  return colon >= 0 && isIP(h) === 0 ? h.slice(0, colon) : h;
}

/** Without a token: does this `Host` header name this machine (or the configured host)? */
export function hostAllowed(hostHeader: string | undefined, adminHost: string): boolean {
  if (hostHeader === undefined || hostHeader === '') return false;
  const h = hostOfHeader(hostHeader);
  return isLoopbackHost(h) || h === adminHost.toLowerCase();
}

/** For requests that change state: an `Origin`, when present, must be the server's own. */
export function originAllowed(origin: string | undefined, hostHeader: string | undefined): boolean {
  if (origin === undefined) return true; // not a browser, or a same-origin GET
  if (hostHeader === undefined) return false;
  try {
    const u = new URL(origin);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.host.toLowerCase() === hostHeader.trim().toLowerCase();
  } catch {
    return false; // "null" and other opaque origins
  }
}
