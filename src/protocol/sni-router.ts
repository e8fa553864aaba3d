/**
 * @module protocol/sni-router — picks a target from the TLS server name and ALPN list a client
 * offered in its ClientHello (Traefik `HostSNI`, nginx `ssl_preread` + `map`, HAProxy
 * `use_backend if { req.ssl_sni ... }`).
 *
 * Names: exact (`api.example.com`) or a one-label wildcard (`*.example.com`), compared
 * case-insensitively with a trailing dot ignored. As in nginx and HAProxy, `*.example.com`
 * matches `a.example.com` but neither `example.com` nor `a.b.example.com`.
 *
 * A route matches when its name list (if any) matches the server name and its ALPN list (if any)
 * shares a protocol with the client's (ALPN ids compared exactly, they are bytes). Among the
 * matching routes the most specific wins, in this order:
 *   1. exact name with ALPN     2. exact name
 *   3. wildcard with ALPN       4. wildcard
 *   5. ALPN only (no names)     6. neither (a catch-all route)
 * and then the default target. Ties within one rank go to the route listed first.
 * A client without SNI can only match routes that list no names (ranks 5 and 6), else the default.
 */

/** One routing rule. */
export interface SniRoute<T> {
  /** Exact names or `*.suffix` wildcards; absent or empty = any name, or none. */
  serverNames?: string[];
  /** ALPN ids; absent or empty = any. */
  alpn?: string[];
  target: T;
}

interface Compiled<T> {
  alpn: ReadonlySet<string> | undefined;
  target: T;
}

/** Normalises a name for comparison: lower case, trailing dot removed. */
export function normalizeServerName(name: string): string {
  const s = name.toLowerCase();
  return s.endsWith('.') ? s.slice(0, -1) : s;
}

const LABEL = /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Checks a route name as users write it: an exact host name or `*.` followed by one. Returns
 * a reason it is invalid, or `undefined` when it is fine. For the config validator.
 */
export function validateServerNamePattern(pattern: string): string | undefined {
  const s = normalizeServerName(pattern);
  const host = s.startsWith('*.') ? s.slice(2) : s;
  if (host.length === 0) return `"${pattern}" has no host name`;
  if (host.length > 253) return `"${pattern}" is longer than 253 characters`;
  for (const label of host.split('.')) {
    if (label.includes('*')) return `"${pattern}": a wildcard may only be the whole first label ("*.example.com")`;
    if (!LABEL.test(label)) return `"${pattern}": "${label}" is not a valid host name label`;
  }
  return undefined;
}

/** Routes server names and ALPN lists to targets; built once per listener config. */
export class SniRouter<T> {
  readonly #exact = new Map<string, Compiled<T>[]>();
  readonly #wildcard = new Map<string, Compiled<T>[]>();
  readonly #nameless: Compiled<T>[] = [];
  readonly #default: T | undefined;

  /** Compiles the routes; throws TypeError on an invalid name pattern. */
  constructor(routes: readonly SniRoute<T>[], defaultTarget?: T) {
    this.#default = defaultTarget;
    const push = (map: Map<string, Compiled<T>[]>, key: string, c: Compiled<T>) => {
      const list = map.get(key);
      if (list) list.push(c);
      else map.set(key, [c]);
    };
    routes.forEach((route, index) => {
      const alpn = route.alpn && route.alpn.length > 0 ? new Set(route.alpn) : undefined;
      const c: Compiled<T> = { alpn, target: route.target };
      const names = route.serverNames ?? [];
      if (names.length === 0) {
        this.#nameless.push(c);
        return;
      }
      for (const pattern of names) {
        const problem = validateServerNamePattern(pattern);
        if (problem) throw new TypeError(`routes[${index}].serverNames: ${problem}`);
        const s = normalizeServerName(pattern);
        if (s.startsWith('*.')) push(this.#wildcard, s.slice(2), c);
        else push(this.#exact, s, c);
      }
    });
    // Within each bucket ALPN-constrained routes rank first; sort is stable, so ties keep order.
    const rank = (list: Compiled<T>[]) => list.sort((a, b) => (a.alpn ? 0 : 1) - (b.alpn ? 0 : 1));
    for (const list of this.#exact.values()) rank(list);
    for (const list of this.#wildcard.values()) rank(list);
    rank(this.#nameless);
  }

  /** The target for a client, or the default (possibly undefined) when no route matches. */
  route(serverName: string | undefined, alpn: readonly string[]): T | undefined {
    if (serverName !== undefined && serverName !== '') {
      const name = normalizeServerName(serverName);
      const hit = pick(this.#exact.get(name), alpn);
      if (hit) return hit.target;
      const dot = name.indexOf('.');
      if (dot > 0) {
        const w = pick(this.#wildcard.get(name.slice(dot + 1)), alpn);
        if (w) return w.target;
      }
    }
    const n = pick(this.#nameless, alpn);
    return n ? n.target : this.#default;
  }
}

function pick<T>(list: Compiled<T>[] | undefined, alpn: readonly string[]): Compiled<T> | undefined {
  if (!list) return undefined;
  for (const c of list) {
    if (!c.alpn) return c;
    for (const p of alpn) if (c.alpn.has(p)) return c;
  }
  return undefined;
}
