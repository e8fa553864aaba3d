/**
 * @module health/udp-check — the `udp` active health check: send one datagram to the backend,
 * succeed when a datagram comes back (and, with an expectation, when it matches).
 *
 * The probe socket is connected, so only the backend's reply is read and an ICMP
 * port-unreachable fails the check at once (`refused`) instead of waiting for the timeout.
 * Like the TCP probes (health/checks.ts), it owns one socket and one timer, both gone when the
 * Promise settles, whatever the outcome, abort included.
 */
import dgram from 'node:dgram';
import { isIP } from 'node:net';
import { HealthCheckError, type CompiledMatcher } from './checks.js';
import { noop } from '../util/noop.js';

/**
 * Sends `send` to host:port over UDP and resolves on the first reply that `matcher` accepts
 * (any reply without a matcher) within `timeoutMs`. A reply that does not match fails the check
 * (`mismatch`): one datagram is one whole answer.
 */
export function udpCheck(
  host: string,
  port: number,
  send: Buffer,
  matcher: CompiledMatcher | undefined,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new HealthCheckError('aborted', 'check aborted'));
      return;
    }
    let settled = false;
    const socket = dgram.createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
    // One loop phase later, as in checks.ts: a reply that came in time, but waits behind a
    // stalled event loop, is read before the timeout is decided.
    const timer = setTimeout(
      () => setImmediate(() => settle(new HealthCheckError('timeout', `timeout after ${timeoutMs}ms waiting for a reply datagram`))),
      timeoutMs,
    );

    function settle(err?: HealthCheckError): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.removeAllListeners('message');
      socket.removeAllListeners('error');
      socket.on('error', noop);
      try {
        socket.close();
      } catch {
        // A failed connect already closed it.
      }
      if (err) reject(err);
      else resolve();
    }
    function onAbort(): void {
      settle(new HealthCheckError('aborted', 'check aborted'));
    }
    socket.on('message', (reply: Buffer) => {
      if (!matcher || matcher.test(reply) === 'match') settle();
      else settle(new HealthCheckError('mismatch', `expected ${matcher.description}, got ${matcher.quote(reply)}`));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNREFUSED') settle(new HealthCheckError('refused', 'port unreachable (ICMP)', { cause: err }));
      else settle(new HealthCheckError('connect', `udp error: ${err.code ?? err.message}`, { cause: err }));
    });
    signal?.addEventListener('abort', onAbort, { once: true });
    socket.connect(port, host, () => {
      if (!settled) socket.send(send);
    });
  });
}

