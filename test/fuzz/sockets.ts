/**
 * @module test/fuzz/sockets — the fuzzer's slices over real sockets, through a running l4lb.
 *
 * - `proxy` and `tls`: an in-process l4lb (startProxy on 127.0.0.1:0) with a PROXY-in listener
 *   and an SNI-routing passthrough listener in front of an echo backend. Mutated headers and
 *   ClientHellos are sent on fresh connections; each one the parser refuses must be closed by
 *   l4lb with a `bad_proxy_header`/`bad_client_hello` access record, rejection counter and
 *   warning; the others are sent with a FIN and must be closed too. Meanwhile a well-formed
 *   control connection keeps relaying through the same listener, checked by SHA-256 at the end,
 *   and the process must hold no more descriptors afterwards than before.
 * - `admin`: the admin server of such an l4lb, on 127.0.0.1:0 with a token, gets raw HTTP
 *   requests with mutated targets, headers and bodies. None may be answered 500 or log at error
 *   level; /healthz still answers afterwards; no descriptor is left behind.
 */
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { parseConfigText } from '../../src/config/load.js';
import { startProxy, type Proxy } from '../../src/proxy/proxy.js';
import type { ListenerRuntime } from '../../src/proxy/listener.js';
import type { AccessRecord } from '../../src/proxy/connection.js';
import { startProxyAdmin } from '../../src/admin/server.js';
import { decodeProxyHeader } from '../../src/protocol/proxy-protocol.js';
import { parseClientHello } from '../../src/protocol/tls-client-hello.js';
import { echoServer, type TestServer } from '../support/net.js';
import { clientHello, records } from '../support/client-hello.js';
import { memoryLogger } from '../protocols/support.js';
import { TARGETS, type FuzzInput, type TargetName } from './targets.js';
import { Rng, mutate } from './mutate.js';
import { loadSeeds } from './corpus.js';

/** The parsers that also get a slice over real sockets. */
export const SOCKET_PARSERS: readonly TargetName[] = ['proxy', 'tls', 'admin'];

/** Something wrong seen over the sockets, with the input that showed it when there is one. */
export interface SliceFinding {
  message: string;
  input?: FuzzInput;
  index: number;
}

/** Connections in flight at once. */
const CONCURRENCY = 16;
/** How long l4lb has to close a connection it was sent a bad (or a finished) input on. */
const CLOSE_WITHIN_MS = 5_000;
/** How long the descriptor count gets to settle back after the last connection closed. */
const FD_SETTLE_MS = 5_000;
/** The preread timeout of the fuzzed listeners (inputs that stay incomplete are sent with a FIN). */
const PREREAD = '2s';
/** Bytes per round trip of the control connection. */
const CONTROL_CHUNK = 16 * 1024;
const ADMIN_TOKEN = 'fuzz-token-0123456789';
/** The server name the SNI listener routes; the control connection sends it. */
const CONTROL_SNI = 'fuzz.example';

function openDescriptors(): number {
  return readdirSync('/proc/self/fd').length;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) return false;
    await sleep(20);
  }
  return true;
}

/** A long-lived, well-formed connection relaying random bytes in rounds through an echo backend. */
function controlConnection(port: number, head: Buffer, headEchoed: boolean): { stop(): Promise<string | undefined> } {
  const sent = createHash('sha256');
  const got = createHash('sha256');
  let sentBytes = 0;
  let gotBytes = 0;
  let stopping = false;
  const c = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  let failure: string | undefined;
  c.on('error', (err) => (failure ??= `control connection error: ${err.message}`));
  c.on('data', (b: Buffer) => {
    gotBytes += b.length;
    got.update(b);
  });
  const ended = once(c, 'end').catch(() => undefined);
  const loop = (async () => {
    await once(c, 'connect');
    c.write(head);
    if (headEchoed) {
      sent.update(head);
      sentBytes += head.length;
    }
    while (!stopping && failure === undefined) {
      const chunk = randomBytes(CONTROL_CHUNK);
      sent.update(chunk);
      sentBytes += chunk.length;
      c.write(chunk);
      if (!(await until(() => gotBytes === sentBytes || failure !== undefined, CLOSE_WITHIN_MS))) failure = 'control connection stalled';
    }
  })();
  return {
    async stop() {
      stopping = true;
      await loop.catch((err: Error) => (failure ??= err.message));
      c.end();
      await Promise.race([ended, sleep(CLOSE_WITHIN_MS)]);
      c.destroy();
      if (failure !== undefined) return failure;
      if (gotBytes !== sentBytes) return `control connection: ${gotBytes} bytes back of ${sentBytes}`;
      if (got.digest('hex') !== sent.digest('hex')) return 'control connection: SHA-256 of the echo differs from what was sent';
      return sentBytes > 0 ? undefined : 'control connection relayed nothing';
    },
  };
}

/** Sends `bytes` (with a FIN when `fin`) and waits until l4lb closes; false when it does not. */
async function sendAndWaitClose(port: number, bytes: Buffer, fin: boolean): Promise<{ closed: boolean; localPort: number }> {
  const c = net.connect({ port, host: '127.0.0.1' });
  c.on('error', () => {}); // a reset is a fine way to be closed
  c.resume();
  const closed = once(c, 'close').then(() => true);
  await Promise.race([once(c, 'connect'), closed]);
  const localPort = c.localPort ?? 0;
  if (fin) c.end(bytes);
  else c.write(bytes);
  const ok = await Promise.race([closed, sleep(CLOSE_WITHIN_MS).then(() => false)]);
  c.destroy();
  return { closed: ok, localPort };
}

function listenerAt(proxy: Proxy, i: number): ListenerRuntime {
  return [...proxy.listeners.values()][i];
}

function sum(m: Map<string, number>): number {
  return [...m.values()].reduce((a, b) => a + b, 0);
}

/** Mutated inputs of `parser` from its seed corpus. */
function inputSource(parser: TargetName, seed: number): () => FuzzInput {
  const rng = new Rng(seed);
  const seeds = loadSeeds(parser);
  const profile = TARGETS[parser].profile;
  return () => {
    const base = rng.pick(seeds);
    const same = seeds.filter((s) => s.variant === base.variant).map((s) => s.bytes);
    return { variant: base.variant, bytes: mutate(rng, base.bytes, same, profile) };
  };
}

async function withEchoProxy<T>(yaml: (backendPort: number) => string, run: (proxy: Proxy, log: ReturnType<typeof memoryLogger>, records: AccessRecord[]) => Promise<T>): Promise<T> {
  const backend: TestServer = await echoServer();
  const log = memoryLogger('info');
  const recs: AccessRecord[] = [];
  let proxy: Proxy | undefined;
  try {
    proxy = await startProxy(parseConfigText(yaml(backend.port), 'fuzz.yaml', {}), { logger: log.logger, onAccess: (r) => recs.push(r) });
    return await run(proxy, log, recs);
  } finally {
    await proxy?.close();
    await backend.close();
  }
}

/** Runs the socket slice of `parser` for about `ms`. */
export async function runSocketSlice(
  parser: TargetName,
  ms: number,
  seed: number,
  onFinding: (f: SliceFinding) => void,
): Promise<{ connections: number; detail: string }> {
  if (parser === 'admin') return adminSlice(ms, seed, onFinding);
  if (parser !== 'proxy' && parser !== 'tls') throw new Error(`no socket slice for ${parser}`);
  return wireSlice(parser, ms, seed, onFinding);
}

async function wireSlice(parser: 'proxy' | 'tls', ms: number, seed: number, onFinding: (f: SliceFinding) => void): Promise<{ connections: number; detail: string }> {
  const yaml = (port: number) => `log: { access: 'off' }
listeners:
  - name: proxy-in
    listen: 127.0.0.1:0
    pool: echo
    acceptProxy: { trusted: [127.0.0.1/32] }
    timeouts: { preread: ${PREREAD} }
  - name: sni
    listen: 127.0.0.1:0
    pool: echo
    tls: { mode: passthrough }
    routes: [ { serverNames: [${CONTROL_SNI}], pool: echo } ]
    timeouts: { preread: ${PREREAD} }
pools:
  - { name: echo, backends: ['127.0.0.1:${port}'] }
`;
  return withEchoProxy(yaml, async (proxy, log, recs) => {
    const l = listenerAt(proxy, parser === 'proxy' ? 0 : 1);
    const port = l.address!.port;
    const reason = parser === 'proxy' ? 'bad_proxy_header' : 'bad_client_hello';
    const fdsBefore = openDescriptors();
    const head = parser === 'proxy' ? Buffer.from('PROXY TCP4 127.0.0.9 127.0.0.1 4000 80\r\n') : records(clientHello({ sni: CONTROL_SNI, alpn: ['h2'] }), []);
    const control = controlConnection(port, head, parser === 'tls');
    const next = inputSource(parser, seed);
    const classify = (b: Buffer): 'rejected' | 'incomplete' | 'done' => {
      try {
        return (parser === 'proxy' ? decodeProxyHeader(b) : parseClientHello(b)).status === 'done' ? 'done' : 'incomplete';
      } catch {
        return 'rejected';
      }
    };
    const rejectedPorts: number[] = [];
    const counts = { rejected: 0, incomplete: 0, done: 0 };
    let connections = 0;
    const deadline = Date.now() + ms;
    const worker = async () => {
      while (Date.now() < deadline) {
        const input = next();
        const kind = classify(input.bytes);
        const index = connections++;
        counts[kind]++;
        // Refused input must be closed by l4lb alone; the rest gets a FIN (or would wait for the preread timeout).
        const r = await sendAndWaitClose(port, input.bytes, kind !== 'rejected');
        if (!r.closed) onFinding({ message: `a connection sent ${kind} input was not closed within ${CLOSE_WITHIN_MS} ms`, input, index });
        if (kind === 'rejected') rejectedPorts.push(r.localPort);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const controlProblem = await control.stop();
    if (controlProblem) onFinding({ message: controlProblem, index: connections });
    if (!(await until(() => l.stats.active === 0, CLOSE_WITHIN_MS))) onFinding({ message: `${l.stats.active} connections still active after the slice`, index: connections });

    const rejectedCount = l.stats.rejected.get(reason) ?? 0;
    if (rejectedCount !== counts.rejected) onFinding({ message: `${counts.rejected} refused inputs sent, ${reason} counter is ${rejectedCount}`, index: connections });
    const byPort = new Set(recs.filter((r) => r.reason === reason).map((r) => r.clientPort));
    const unrecorded = rejectedPorts.filter((p) => !byPort.has(p)).length;
    if (unrecorded > 0) onFinding({ message: `${unrecorded} refused connections have no ${reason} access record`, index: connections });
    const warns = log.warns(reason);
    if (counts.rejected > 0 && warns.length === 0) onFinding({ message: `no ${reason} warning was logged`, index: connections });
    if (warns.some((w) => typeof w.detail !== 'string')) onFinding({ message: `a ${reason} warning without a detail`, index: connections });
    const { accepted, active, rejected, closed } = l.stats;
    if (sum(rejected) + sum(closed) + active !== accepted) onFinding({ message: `counters do not add up: accepted ${accepted}, rejected ${sum(rejected)}, closed ${sum(closed)}, active ${active}`, index: connections });
    let fdsAfter = openDescriptors();
    if (!(await until(() => (fdsAfter = openDescriptors()) <= fdsBefore, FD_SETTLE_MS))) {
      onFinding({ message: `descriptor leak: ${fdsBefore} open before the slice, ${fdsAfter} after`, index: connections });
    }
    return {
      connections,
      detail: `${counts.rejected} refused (${rejectedCount} counted, ${warns.length} warnings), ${counts.done} complete, ${counts.incomplete} incomplete; control relayed intact: ${controlProblem === undefined}; fds ${fdsBefore} → ${fdsAfter}`,
    };
  });
}

/** One raw HTTP exchange; the status of the answer, or 0 when none came. */
async function rawHttp(port: number, request: Buffer): Promise<{ status: number; closed: boolean }> {
  const c = net.connect({ port, host: '127.0.0.1' });
  c.on('error', () => {});
  let head = '';
  c.on('data', (b: Buffer) => {
    if (head.length < 64) head += b.toString('latin1');
  });
  const closed = once(c, 'close').then(() => true);
  await Promise.race([once(c, 'connect'), closed]);
  c.end(request);
  const ok = await Promise.race([closed, sleep(CLOSE_WITHIN_MS).then(() => false)]);
  c.destroy();
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
  return { status: m ? Number(m[1]) : 0, closed: ok };
}

const METHODS = ['GET', 'GET', 'GET', 'HEAD', 'POST', 'POST', 'POST', 'DELETE', 'PUT', 'OPTIONS', 'PATCH'];

async function adminSlice(ms: number, seed: number, onFinding: (f: SliceFinding) => void): Promise<{ connections: number; detail: string }> {
  const yaml = (port: number) => `log: { access: 'off' }
listeners: [ { name: web, listen: '127.0.0.1:0', pool: web } ]
pools: [ { name: web, backends: ['127.0.0.1:${port}'] } ]
`;
  return withEchoProxy(yaml, async (proxy, log) => {
    const admin = await startProxyAdmin(proxy, { host: '127.0.0.1', port: 0, token: ADMIN_TOKEN, persist: false });
    try {
      const port = admin.address.port;
      const fdsBefore = openDescriptors();
      const rng = new Rng(seed);
      const seeds = loadSeeds('admin');
      const pick = (variant: string) => {
        const same = seeds.filter((s) => s.variant === variant).map((s) => s.bytes);
        return rng.oneIn(4) ? rng.pick(same) : mutate(rng, rng.pick(same), same, TARGETS.admin.profile);
      };
      const statuses = new Map<number, number>();
      let connections = 0;
      const deadline = Date.now() + ms;
      const worker = async () => {
        while (Date.now() < deadline) {
          const index = connections++;
          const method = rng.pick(METHODS);
          const target = pick('url');
          const auth = rng.oneIn(8) ? Buffer.concat([Buffer.from('Authorization: '), pick('auth'), Buffer.from('\r\n')]) : Buffer.from(`Authorization: Bearer ${ADMIN_TOKEN}\r\n`);
          const origin = rng.oneIn(8) ? Buffer.concat([Buffer.from('Origin: '), pick('origin'), Buffer.from('\r\n')]) : Buffer.alloc(0);
          const body = method === 'POST' || method === 'DELETE' ? pick(rng.pick(['backend', 'weight', 'nofields'])) : Buffer.alloc(0);
          const request = Buffer.concat([
            Buffer.from(`${method} `),
            target,
            Buffer.from(` HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n`),
            auth,
            origin,
            Buffer.from(`Content-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`),
            body,
          ]);
          const r = await rawHttp(port, request);
          statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
          if (r.status >= 500 && r.status !== 503) onFinding({ message: `${method} answered ${r.status}`, input: { variant: 'url', bytes: target }, index });
          if (!r.closed && r.status !== 200) onFinding({ message: `a ${method} request answered ${r.status} was not closed within ${CLOSE_WITHIN_MS} ms`, input: { variant: 'url', bytes: target }, index });
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      const errors = log.lines.filter((l) => l.level === 'error' || l.level === 'fatal');
      if (errors.length > 0) onFinding({ message: `${errors.length} error-level log lines, first: ${errors[0].msg}`, index: connections });
      const health = await rawHttp(port, Buffer.from(`GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nAuthorization: Bearer ${ADMIN_TOKEN}\r\nConnection: close\r\n\r\n`));
      if (health.status !== 200) onFinding({ message: `/healthz answered ${health.status} after the slice`, index: connections });
      let fdsAfter = openDescriptors();
      if (!(await until(() => (fdsAfter = openDescriptors()) <= fdsBefore, FD_SETTLE_MS))) {
        onFinding({ message: `descriptor leak: ${fdsBefore} open before the slice, ${fdsAfter} after`, index: connections });
      }
      const byStatus = [...statuses].sort((a, b) => a[0] - b[0]).map(([s, n]) => `${s}×${n}`).join(' ');
      return { connections, detail: `statuses ${byStatus}; ${errors.length} error lines; fds ${fdsBefore} → ${fdsAfter}` };
    } finally {
      await admin.close();
    }
  });
}
