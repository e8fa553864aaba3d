/**
 * @module proxy/listener-match — which running listener each listener of a new config keeps
 * on reload, so that only listeners that really moved are bound again. One rule for the
 * single process (proxy/proxy.ts) and the cluster primary (cluster/reload.ts).
 */
import type { ListenerConfig } from '../config/types.js';

/** A running listener as a reload sees it. */
export interface RunningListener {
  name: string;
  host: string;
  /** The port its config names (0 = any). */
  port: number;
  /** The port it is bound to (undefined when not bound). */
  boundPort: number | undefined;
}

/**
 * For each listener of `next` (same order), the index in `running` of the listener it keeps,
 * or undefined when it needs a socket of its own. A listener is kept:
 * - by the same name on the same host, when the port is the one configured, the one bound,
 *   or 0 ("any port": the one it already has);
 * - else by any running listener no other one keeps, on the same host and bound to exactly
 *   the port named: a config written after a start on port 0 names the port the proxy got,
 *   often under another listener name, and binding that port again would fail.
 */
export function matchListeners(next: readonly ListenerConfig[], running: readonly RunningListener[]): (number | undefined)[] {
  const out: (number | undefined)[] = next.map(() => undefined);
  const taken = new Set<number>();
  next.forEach((lc, i) => {
    const j = running.findIndex((r) => r.name === lc.name);
    if (j < 0) return;
    const r = running[j];
    if (r.host === lc.host && (lc.port === r.port || lc.port === r.boundPort || lc.port === 0)) {
      out[i] = j;
      taken.add(j);
    }
  });
  next.forEach((lc, i) => {
    if (out[i] !== undefined || lc.port === 0) return;
    const j = running.findIndex((r, k) => !taken.has(k) && r.host === lc.host && r.boundPort === lc.port);
    if (j < 0) return;
    out[i] = j;
    taken.add(j);
  });
  return out;
}
