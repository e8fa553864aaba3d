/**
 * @module admin/route — the admin server's request target, parsed: which endpoint it names,
 * with its path segments percent-decoded. It is pure (no I/O, no state) so that the part of the
 * admin server that reads untrusted URLs can be tested and fuzzed on its own.
 *
 * A target that cannot be read (a URL the WHATWG parser refuses, a bad percent-encoding in a
 * segment that is decoded) is a 400 {@link AdminError} with reason `bad_path`; a readable target
 * that names no endpoint is the `not-found` route, answered 404 by the server.
 */
import { AdminError } from './errors.js';

/** The endpoints a path can name; see the route list in admin/server.ts. */
export type AdminRoute =
  | { kind: 'asset'; name: string }
  | { kind: 'healthz' | 'readyz' | 'metrics' | 'status' | 'events' }
  /** `/api/v1/pools/...`: `parts` is what follows `pools/`, each segment decoded. */
  | { kind: 'pool'; parts: string[] }
  | { kind: 'not-found' };

/** A parsed request target. */
export interface AdminTarget {
  /** The path as the URL parser normalised it (still percent-encoded), for messages. */
  path: string;
  /** The query string's parameters. */
  query: URLSearchParams;
  route: AdminRoute;
}

/** Base for origin-form targets; only the path and query of the result are used. */
const BASE = 'http://admin.invalid';

const FIXED: ReadonlyMap<string, AdminRoute> = new Map<string, AdminRoute>([
  ['/healthz', { kind: 'healthz' }],
  ['/readyz', { kind: 'readyz' }],
  ['/metrics', { kind: 'metrics' }],
  ['/api/v1/status', { kind: 'status' }],
  ['/api/v1/events', { kind: 'events' }],
]);

const ASSETS_PREFIX = '/assets/';

function badPath(): AdminError {
  return new AdminError(400, 'bad_path', 'the path is not valid percent-encoding');
}

function decodeSegment(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    throw badPath();
  }
}

/**
 * Parses a request target (`req.url`: origin-form `/a/b?c`, or absolute-form). Throws a 400
 * {@link AdminError} (`bad_path`) when it cannot be read.
 */
export function parseAdminTarget(rawUrl: string): AdminTarget {
  let url: URL;
  try {
    url = new URL(rawUrl, BASE);
  } catch {
    throw new AdminError(400, 'bad_path', 'the request target is not a valid URL');
  }
  const path = url.pathname;
  return { path, query: url.searchParams, route: routeOf(path) };
}

/**
 * A request target's path as decoded segments (`/proxies/a%20b` → `['proxies', 'a b']`), for a
 * server with routes of its own (the fault API). Throws a 400 {@link AdminError} (`bad_path`).
 */
export function targetSegments(rawUrl: string): { path: string; segments: string[] } {
  const { path } = parseAdminTarget(rawUrl);
  return { path, segments: path.split('/').slice(1).map(decodeSegment) };
}

function routeOf(path: string): AdminRoute {
  if (path === '/' || path === '/index.html') return { kind: 'asset', name: 'index.html' };
  if (path.startsWith(ASSETS_PREFIX)) return { kind: 'asset', name: decodeSegment(path.slice(ASSETS_PREFIX.length)) };
  const fixed = FIXED.get(path);
  if (fixed !== undefined) return fixed;
  const segs = path.split('/').slice(1);
  if (segs[0] === 'api' && segs[1] === 'v1' && segs[2] === 'pools' && segs.length >= 4) {
    return { kind: 'pool', parts: segs.slice(3).map(decodeSegment) };
  }
  return { kind: 'not-found' };
}
