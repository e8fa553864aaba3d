/**
 * @module health/checks — the probes behind active health checks: `tcp` (a connect
 * succeeds) and `send-expect` (connect, send bytes, read until the reply matches).
 *
 * Each probe returns a Promise that resolves on success and rejects with a
 * {@link HealthCheckError} whose message is the human-readable reason (it ends up in
 * `Backend.lastError`, the admin API and the logs) and whose `kind` is a short stable
 * word for metrics. Every probe owns exactly one socket and at most one timer, and both
 * are gone by the time the Promise settles, whatever the outcome — including abort.
 */
import net from 'node:net';
import { ErrorCodes, L4lbError, type ErrorCode } from '../errors.js';
import type { ExpectMatcher } from '../config/types.js';
import { noop } from '../util/noop.js';

/** Largest reply a send-expect check accumulates before giving up (a backend streaming
 * garbage must not grow our memory without bound). */
export const MAX_REPLY_BYTES = 64 * 1024;

/** How much of a reply is quoted in a failure message. */
const QUOTE_CHARS = 64;

/** Why a check failed, for metrics labels and tests. */
export type HealthCheckFailureKind =
  | 'refused' // connect refused (nothing listens)
  | 'connect' // any other connect error (reset, unreachable, DNS)
  | 'timeout' // no connect, or no matching reply, within the timeout
  | 'closed' // the backend closed before the reply matched
  | 'mismatch' // the reply can no longer match (hex prefix differs)
  | 'overflow' // the reply exceeded MAX_REPLY_BYTES without matching
  | 'aborted'; // the checker stopped or the backend was removed

/** Reply-phase failures (wrong reply, closed, too long) have their own stable code. */
const REPLY_FAILURE_CODE: ErrorCode = ErrorCodes.HEALTH_CHECK;

/** A failed health check; `message` is the reason shown to users. */
export class HealthCheckError extends L4lbError {
  readonly kind: HealthCheckFailureKind;

  constructor(kind: HealthCheckFailureKind, message: string, options?: { cause?: unknown }) {
    super(codeFor(kind), 'backend', message, options);
    this.name = 'HealthCheckError';
    this.kind = kind;
  }
}

function codeFor(kind: HealthCheckFailureKind): ErrorCode {
  if (kind === 'refused') return ErrorCodes.CONNECT_REFUSED;
  if (kind === 'timeout') return ErrorCodes.CONNECT_TIMEOUT;
  if (kind === 'connect') return ErrorCodes.CONNECT_FAILED;
  return REPLY_FAILURE_CODE;
}

/** Outcome of testing the reply received so far. */
export type MatchResult = 'match' | 'need-more' | 'mismatch';

/** A compiled `expect`: tests a (growing) reply, and describes itself in messages. */
export interface CompiledMatcher {
  test(reply: Buffer): MatchResult;
  /** `"PONG"`, `/^\+PONG/`, `hex 2b504f4e47` — how the expectation reads in a message. */
  readonly description: string;
  /** Quotes a reply the way this matcher reads it (text, or hex for hex matchers). */
  quote(reply: Buffer): string;
}

/**
 * Compiles an expectation once, so a check does not rebuild it every interval.
 * Throws an L4lbError (CONFIG_INVALID) for an invalid regex or hex string; the config
 * loader may call this to reject such a config up front.
 */
export function compileMatcher(expect: ExpectMatcher): CompiledMatcher {
  switch (expect.kind) {
    case 'substring': {
      // Byte search equals a search in the UTF-8 text for any valid UTF-8 needle,
      // and needs no decoding of the reply.
      const needle = Buffer.from(expect.value, 'utf8');
      return {
        test: (reply) => (reply.includes(needle) ? 'match' : 'need-more'),
        description: JSON.stringify(expect.value),
        quote: quoteText,
      };
    }
    case 'regex': {
      let re: RegExp;
      try {
        re = new RegExp(expect.value);
      } catch (err) {
        throw new L4lbError(ErrorCodes.CONFIG_INVALID, 'internal', `invalid expect regex /${expect.value}/: ${(err as Error).message}`);
      }
      return {
        test: (reply) => (re.test(reply.toString('utf8')) ? 'match' : 'need-more'),
        description: `/${expect.value}/`,
        quote: quoteText,
      };
    }
    case 'hex': {
      const prefix = parseHex(expect.value);
      return {
        test: (reply) => {
          const n = Math.min(reply.length, prefix.length);
          if (reply.compare(prefix, 0, n, 0, n) !== 0) return 'mismatch';
          return n === prefix.length ? 'match' : 'need-more';
        },
        description: `hex ${prefix.toString('hex')}`,
        quote: (reply) => `hex ${reply.subarray(0, QUOTE_CHARS / 2).toString('hex')}${reply.length > QUOTE_CHARS / 2 ? '...' : ''}`,
      };
    }
  }
}

/** Parses `2b504f4e47`, `2B 50 4F` or `0x2b50`; throws CONFIG_INVALID otherwise. */
function parseHex(value: string): Buffer {
  const digits = value.replace(/^0x/i, '').replace(/\s+/g, '');
  if (digits.length === 0 || digits.length % 2 !== 0 || !/^[0-9a-fA-F]+$/.test(digits)) {
    throw new L4lbError(ErrorCodes.CONFIG_INVALID, 'internal', `invalid expect hex "${value}": need an even number of hex digits`);
  }
  return Buffer.from(digits, 'hex');
}

function quoteText(reply: Buffer): string {
  const text = reply.toString('utf8');
  return text.length > QUOTE_CHARS ? `${JSON.stringify(text.slice(0, QUOTE_CHARS))}...` : JSON.stringify(text);
}

/**
 * Succeeds when a TCP connection to host:port is established within `timeoutMs`,
 * then closes it at once (HAProxy's plain `check`) — after writing `preamble` (a PROXY
 * header, as HAProxy's `check-send-proxy`), when given.
 */
export function tcpCheck(host: string, port: number, timeoutMs: number, signal?: AbortSignal, preamble?: Buffer): Promise<void> {
  return probe(host, port, timeoutMs, signal, undefined, undefined, preamble);
}

/**
 * Connects, writes `send` (when empty, nothing is written and the banner the backend
 * sends on its own is read), and succeeds once the accumulated reply matches `expect`
 * (substring or regex on the UTF-8 text, or a hex byte prefix) within `timeoutMs` —
 * one deadline for connect and reply together. `preamble` (a PROXY header) goes first.
 */
export function sendExpectCheck(
  host: string,
  port: number,
  send: Buffer,
  expect: ExpectMatcher | CompiledMatcher,
  timeoutMs: number,
  signal?: AbortSignal,
  preamble?: Buffer,
): Promise<void> {
  let matcher: CompiledMatcher;
  try {
    matcher = 'kind' in expect ? compileMatcher(expect) : expect;
  } catch (err) {
    return Promise.reject(err);
  }
  return probe(host, port, timeoutMs, signal, send, matcher, preamble);
}

/** The one probe both checks share; without a matcher, a connect is success. */
function probe(
  host: string,
  port: number,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  send: Buffer | undefined,
  matcher: CompiledMatcher | undefined,
  preamble: Buffer | undefined,
): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(new HealthCheckError('aborted', 'check aborted'));
      return;
    }
    let acc = Buffer.alloc(0);
    let connected = false;
    let settled = false;
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => setImmediate(onTimeout), timeoutMs);

    function settle(err?: HealthCheckError): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.removeListener('connect', onConnect);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      // Late errors of a socket being torn down must not become uncaught exceptions.
      socket.removeListener('error', onError);
      socket.on('error', noop);
      socket.destroy();
      if (err) reject(err);
      else resolve();
    }
    function onConnect(): void {
      connected = true;
      if (!matcher) {
        // A connect is success; a preamble is sent whole first, so the backend sees a
        // complete header rather than a connection cut in the middle of one.
        if (preamble) socket.write(preamble, () => settle());
        else settle();
        return;
      }
      if (preamble) socket.write(preamble);
      if (send && send.length > 0) socket.write(send);
    }
    function onData(chunk: Buffer): void {
      if (!matcher) return;
      // Never keep more than the cap, however large the chunk.
      acc = Buffer.concat([acc, chunk.subarray(0, MAX_REPLY_BYTES - acc.length)]);
      const result = matcher.test(acc);
      if (result === 'match') settle();
      else if (result === 'mismatch') {
        settle(new HealthCheckError('mismatch', `expected ${matcher.description}, got ${matcher.quote(acc)}`));
      } else if (acc.length >= MAX_REPLY_BYTES) {
        settle(new HealthCheckError('overflow', `reply exceeded ${MAX_REPLY_BYTES} bytes without matching ${matcher.description}`));
      }
    }
    function onEnd(): void {
      if (!matcher) return;
      settle(new HealthCheckError('closed', `connection closed: expected ${matcher.description}, got ${matcher.quote(acc)}`));
    }
    function onError(err: NodeJS.ErrnoException): void {
      settle(connectFailure(err, connected));
    }
    /**
     * Runs one loop phase after the timer (setImmediate): timers run before I/O in each turn
     * of the event loop, so after a stall longer than the timeout (a busy process or machine)
     * the timer would fire ahead of an answer that came in time and is waiting to be read.
     * Past the poll phase, such an answer has settled the check first.
     */
    function onTimeout(): void {
      if (!connected) {
        settle(new HealthCheckError('timeout', `timeout after ${timeoutMs}ms connecting`));
      } else if (matcher && acc.length > 0) {
        settle(new HealthCheckError('timeout', `timeout after ${timeoutMs}ms: expected ${matcher.description}, got ${matcher.quote(acc)}`));
      } else {
        settle(new HealthCheckError('timeout', `timeout after ${timeoutMs}ms waiting for a reply`));
      }
    }
    function onAbort(): void {
      settle(new HealthCheckError('aborted', 'check aborted'));
    }

    socket.once('connect', onConnect);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.on('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function connectFailure(err: NodeJS.ErrnoException, connected: boolean): HealthCheckError {
  switch (err.code) {
    case 'ECONNREFUSED':
      return new HealthCheckError('refused', 'connect refused', { cause: err });
    case 'ECONNRESET':
      return new HealthCheckError(connected ? 'closed' : 'connect', 'connection reset', { cause: err });
    case 'EPIPE':
      return new HealthCheckError('closed', 'connection closed while sending', { cause: err });
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new HealthCheckError('connect', `connect failed: ${err.code}`, { cause: err });
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new HealthCheckError('connect', `dns lookup failed: ${err.code}`, { cause: err });
    default:
      return new HealthCheckError(connected ? 'closed' : 'connect', `${connected ? 'socket error' : 'connect failed'}: ${err.code ?? err.message}`, { cause: err });
  }
}

