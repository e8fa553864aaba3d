/**
 * @module test/protocols/support — real peers for the protocol tests: HAProxy, nginx and
 * `openssl s_client` started on loopback ports with configs in a temp dir, test certificates
 * made with `openssl`, TLS backends, an in-process l4lb built from YAML, and a logger that
 * keeps its lines in memory.
 *
 * A missing binary fails the test (it never skips): these tests are the proof that l4lb
 * interoperates, and a machine without the peers cannot give that proof.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import type { TestContext } from 'node:test';
import { pino } from 'pino';
import { parseConfigText } from '../../src/config/load.js';
import { startProxy, type Proxy } from '../../src/proxy/proxy.js';
import type { ListenerRuntime } from '../../src/proxy/listener.js';
import type { AccessRecord } from '../../src/proxy/connection.js';
import type { Logger } from '../../src/observability/log.js';
import { connect, exchange, waitFor } from '../support/net.js';

const execFileP = promisify(execFile);

/** Paths of the real peers this suite talks to. */
export const HAPROXY = '/usr/sbin/haproxy';
export const NGINX = '/usr/sbin/nginx';
export const OPENSSL = '/usr/bin/openssl';

/** How long a spawned peer gets to start listening. */
const PEER_START_MS = 10_000;

/** Fails (never skips) when a peer binary is not installed. */
export function requireBinary(path: string): void {
  assert.ok(existsSync(path), `${path} is required by this test but is not installed`);
}

/** A fresh temp dir, removed after the test. */
export async function tempDir(t: TestContext, prefix = 'l4lb-proto-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** A loopback port that was free a moment ago (for peers whose config names their port). */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as net.AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

/** Polls until `host:port` accepts a connection; fails early if `proc` exits. */
export async function waitForPort(port: number, proc?: ChildProcess, what = `port ${port}`, host = '127.0.0.1'): Promise<void> {
  const deadline = Date.now() + PEER_START_MS;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`${what} exited with ${proc.exitCode} before listening`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect({ port, host });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} to listen`);
    await sleep(20);
  }
}

/** A spawned peer process whose output is kept for failure messages. */
export interface Peer {
  child: ChildProcess;
  output(): string;
}

export function spawnPeer(t: TestContext, cmd: string, args: string[], what: string): Peer {
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  child.on('error', (err) => (out += `spawn error: ${err.message}`));
  t.after(async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill('SIGKILL');
    await once(child, 'exit');
  });
  return { child, output: () => `${what} output:\n${out}` };
}

/**
 * An HAProxy frontend on `port` that requires a PROXY header and answers each HTTP request with
 * `format` (a log-format string: `%ci:%cp` is the client the header named).
 */
export function proxyEchoFrontend(port: number, format: string): string {
  return `frontend origin
  bind 127.0.0.1:${port} accept-proxy
  mode http
  http-request return status 200 content-type text/plain lf-string "${format}"
`;
}

/** An nginx server on `port` that requires a PROXY header and answers every request with `body`. */
export function proxyProtocolServer(port: number, body: string): string {
  return `server {
    listen 127.0.0.1:${port} proxy_protocol;
    location / { return 200 "${body}"; }
  }`;
}

/**
 * Starts HAProxy (`haproxy -f CFG -db`, foreground) with `body` after a common global and
 * defaults section, and waits until every port in `ports` accepts connections.
 */
export async function startHaproxy(t: TestContext, dir: string, body: string, ports: number[]): Promise<Peer> {
  requireBinary(HAPROXY);
  const cfg = join(dir, 'haproxy.cfg');
  await writeFile(
    cfg,
    `global
  log stderr format raw local0 warning
defaults
  log global
  timeout connect 5s
  timeout client 10s
  timeout server 10s
${body}
`,
  );
  const peer = spawnPeer(t, HAPROXY, ['-f', cfg, '-db'], 'haproxy');
  try {
    for (const p of ports) await waitForPort(p, peer.child, 'haproxy');
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${peer.output()}`);
  }
  return peer;
}

/**
 * Starts nginx in the foreground, one process, all state in `dir`, with `servers` (one or
 * more `server { … }` blocks) inside `http { }`; waits until every port in `ports` listens.
 * As root (CI containers) workers would switch to `nobody`, which may not read `dir`, so
 * they stay root there.
 */
export async function startNginx(t: TestContext, dir: string, servers: string, ports: number[]): Promise<Peer> {
  requireBinary(NGINX);
  const conf = join(dir, 'nginx.conf');
  const asRoot = process.getuid?.() === 0;
  await writeFile(
    conf,
    `${asRoot ? 'user root;' : ''}
master_process off;
error_log ${dir}/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
${servers}
}
`,
  );
  const peer = spawnPeer(t, NGINX, ['-p', dir, '-c', conf, '-g', `daemon off; pid ${dir}/nginx.pid;`], 'nginx');
  try {
    for (const p of ports) await waitForPort(p, peer.child, 'nginx');
  } catch (err) {
    const log = await readFile(join(dir, 'error.log'), 'utf8').catch(() => '');
    throw new Error(`${(err as Error).message}\n${peer.output()}\nerror.log:\n${log}`);
  }
  return peer;
}

/** A parsed JSON log line. */
export interface LogLine {
  level: string;
  msg: string;
  reason?: string;
  suppressed?: number;
  [k: string]: unknown;
}

/** A pino logger that keeps its lines, parsed, in an array; `warns()` filters the warnings. */
export function memoryLogger(level: 'info' | 'warn' = 'info'): { logger: Logger; lines: LogLine[]; warns(reason?: string): LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino(
    { level, base: null, timestamp: false, formatters: { level: (label) => ({ level: label }) } },
    {
      write(s: string) {
        for (const l of s.split('\n')) if (l) lines.push(JSON.parse(l) as LogLine);
      },
    },
  );
  return {
    logger,
    lines,
    warns: (reason) => lines.filter((l) => l.level === 'warn' && (reason === undefined || l.reason === reason)),
  };
}

/** An in-process l4lb started from YAML text, with access records captured. */
export interface TestL4lb {
  proxy: Proxy;
  records: AccessRecord[];
  /** The runtime of the listener at `index` (config order). */
  listener(index?: number): ListenerRuntime;
  /** The bound port of the listener at `index`. */
  port(index?: number): number;
  log: ReturnType<typeof memoryLogger>;
  /** Parses `yaml` (same dir) and reloads. */
  reload(yaml?: string): Promise<void>;
}

/**
 * Parses `yaml` as the config file `dir/l4lb.yaml` (so relative certificate paths resolve
 * against `dir`) and starts a proxy with an in-memory logger; closed after the test.
 */
export async function startL4lb(t: TestContext, dir: string, yaml: string): Promise<TestL4lb> {
  const file = join(dir, 'l4lb.yaml');
  const parse = (text: string) => parseConfigText(`log: { access: 'off' }\n${text}`, file, {}, { baseDir: dir });
  const log = memoryLogger();
  const records: AccessRecord[] = [];
  const proxy = await startProxy(parse(yaml), { logger: log.logger, onAccess: (r) => records.push(r) });
  t.after(() => proxy.close());
  const listener = (i = 0) => [...proxy.listeners.values()][i];
  return {
    proxy,
    records,
    listener,
    port: (i = 0) => listener(i).address!.port,
    log,
    reload: (text = yaml) => proxy.reload(parse(text)),
  };
}

/** Checks a listener's counters add up: every accepted connection is rejected, closed or active. */
export function assertCountsBalance(l: ListenerRuntime): void {
  const sum = (m: Map<string, number>) => [...m.values()].reduce((a, b) => a + b, 0);
  const { accepted, active, rejected, closed } = l.stats;
  assert.equal(
    sum(rejected) + sum(closed) + active,
    accepted,
    `accepted ${accepted} = rejected ${JSON.stringify([...rejected])} + closed ${JSON.stringify([...closed])} + active ${active}`,
  );
}

/**
 * Waits for an access record matching `pred` (the connection fully closed) and returns it;
 * records before index `since` are not looked at (an earlier connection of the same test may
 * have had the same client port: the kernel reuses them).
 */
export async function recordWhere(l: TestL4lb, pred: (r: AccessRecord) => boolean, ms = 5000, since = 0): Promise<AccessRecord> {
  const match = () => l.records.find((r, i) => i >= since && pred(r));
  await waitFor(() => match() !== undefined, ms, 'a matching access record');
  return match()!;
}

// --- certificates ---------------------------------------------------------------------------

/** A PEM certificate and key on disk. */
export interface CertFiles {
  cert: string;
  key: string;
}

const EC_KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

/** A self-signed certificate for `names` (first one is the CN); EC P-256 keeps it fast. */
export async function selfSigned(dir: string, file: string, names: string[], serial = 1): Promise<CertFiles> {
  requireBinary(OPENSSL);
  const c = { cert: join(dir, `${file}.pem`), key: join(dir, `${file}.key`) };
  await execFileP(OPENSSL, [
    'req', '-x509', ...EC_KEY, '-keyout', c.key, '-out', c.cert, '-days', '2', '-set_serial', String(serial),
    '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`,
  ]);
  return c;
}

/** A CA certificate and key. */
export async function makeCa(dir: string, file: string, cn: string): Promise<CertFiles> {
  requireBinary(OPENSSL);
  const c = { cert: join(dir, `${file}.pem`), key: join(dir, `${file}.key`) };
  await execFileP(OPENSSL, [
    'req', '-x509', ...EC_KEY, '-keyout', c.key, '-out', c.cert, '-days', '2', '-subj', `/CN=${cn}`,
    '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  return c;
}

/** A leaf certificate for `name` signed by `ca`. */
export async function signedBy(dir: string, file: string, name: string, ca: CertFiles): Promise<CertFiles> {
  const c = { cert: join(dir, `${file}.pem`), key: join(dir, `${file}.key`) };
  const csr = join(dir, `${file}.csr`);
  const ext = join(dir, `${file}.ext`);
  await writeFile(ext, `subjectAltName=DNS:${name}\nbasicConstraints=CA:FALSE\n`);
  await execFileP(OPENSSL, ['req', '-new', ...EC_KEY, '-keyout', c.key, '-out', csr, '-subj', `/CN=${name}`]);
  await execFileP(OPENSSL, [
    'x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', '7', '-days', '2', '-out', c.cert, '-extfile', ext,
  ]);
  return c;
}

// --- TLS peers ------------------------------------------------------------------------------

/** A node:tls server that answers every connection with `name=<its name> sni=<…> alpn=<…>` and closes. */
export async function tlsNameServer(
  t: TestContext,
  name: string,
  files: CertFiles,
  opts: { alpn?: string[] } = {},
): Promise<{ port: number; accepted: () => number }> {
  const [cert, key] = await Promise.all([readFile(files.cert), readFile(files.key)]);
  let accepted = 0;
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer({ cert, key, ALPNProtocols: opts.alpn }, (s) => {
    accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.end(`name=${name} sni=${s.servername || '-'} alpn=${s.alpnProtocol || '-'}\n`);
  });
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
  });
  return { port: (server.address() as net.AddressInfo).port, accepted: () => accepted };
}

/** Result of a TLS client run. */
export interface TlsReply {
  /** What the server sent, as text. */
  text: string;
  /** Subject CN of the certificate the client was shown. */
  subjectCN: string | undefined;
  serial: string | undefined;
  alpn: string | false | null;
}

/** tls.connect options plus the net ones Node passes through (its types omit `localAddress`). */
export function tlsOptions(o: tls.ConnectionOptions & { localAddress?: string }): tls.ConnectionOptions {
  return o;
}

/**
 * Connects with node:tls (no verification: these are self-signed test certificates; the
 * test checks which certificate arrived instead), reads until the server closes.
 */
export async function nodeTlsRequest(
  port: number,
  opts: { servername?: string; alpn?: string[]; send?: string; socket?: Duplex; localAddress?: string } = {},
): Promise<TlsReply> {
  const s = tls.connect(
    tlsOptions({
      port,
      host: '127.0.0.1',
      localAddress: opts.localAddress,
      socket: opts.socket,
      servername: opts.servername,
      ALPNProtocols: opts.alpn,
      rejectUnauthorized: false,
    }),
  );
  const chunks: Buffer[] = [];
  s.on('data', (c: Buffer) => chunks.push(c));
  await once(s, 'secureConnect');
  const peer = s.getPeerCertificate();
  const alpn = s.alpnProtocol;
  if (opts.send !== undefined) s.end(opts.send);
  await once(s, 'end');
  s.destroy();
  return { text: Buffer.concat(chunks).toString(), subjectCN: peer.subject?.CN as string | undefined, serial: peer.serialNumber, alpn };
}

/** Output of one `openssl s_client` run. */
export interface SClientResult {
  code: number | null;
  stdout: string;
  stderr: string;
  /** `subject=CN = …` of the server certificate, as s_client prints it. */
  subject: string | undefined;
}

/**
 * Runs `openssl s_client -connect 127.0.0.1:PORT -ign_eof …`, typing `input` (if any): it
 * prints the server certificate and everything the server sends, and exits when the server
 * closes.
 */
export async function sClient(port: number, args: string[], input?: string): Promise<SClientResult> {
  requireBinary(OPENSSL);
  const child = spawn(OPENSSL, ['s_client', '-connect', `127.0.0.1:${port}`, '-ign_eof', ...args], {
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  // Kept open until s_client exits: with -ign_eof it sends `input` and waits for the server to close.
  if (input !== undefined) child.stdin!.write(input);
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  child.stdin?.destroy();
  const m = /^subject=(.*)$/m.exec(stdout);
  return { code, stdout, stderr, subject: m?.[1].trim() };
}

/**
 * A duplex over `socket` whose first write (a TLS ClientHello, when a TLS client sits on it)
 * goes out one byte per TCP segment (Nagle off, a short pause between bytes); later writes
 * pass through. The receiver then sees the first message in many small reads.
 */
export function firstWriteByteByByte(socket: net.Socket): Duplex {
  return wrapFirstWrite(socket, async (chunk) => {
    for (let i = 0; i < chunk.length; i++) {
      socket.write(chunk.subarray(i, i + 1));
      await sleep(1);
    }
  });
}

/**
 * A duplex over `socket` whose first write goes out as `prefix` + that write in one
 * segment: a PROXY header and a ClientHello arriving in the same read.
 */
export function prefixFirstWrite(socket: net.Socket, prefix: Buffer): Duplex {
  return wrapFirstWrite(socket, (chunk) => {
    socket.write(Buffer.concat([prefix, chunk]));
  });
}

function wrapFirstWrite(socket: net.Socket, sendFirst: (chunk: Buffer) => Promise<void> | void): Duplex {
  socket.setNoDelay(true);
  let first = true;
  const d = new Duplex({
    write(chunk: Buffer, _enc, cb) {
      if (!first) {
        socket.write(chunk, cb);
        return;
      }
      first = false;
      void Promise.resolve(sendFirst(chunk)).then(() => cb(), cb);
    },
    final(cb) {
      socket.end();
      cb();
    },
    read() {
      socket.resume();
    },
  });
  socket.on('data', (c: Buffer) => {
    if (!d.push(c)) socket.pause();
  });
  socket.on('end', () => d.push(null));
  socket.on('error', (err) => d.destroy(err));
  d.on('close', () => socket.destroy());
  return d;
}

/**
 * Sends 1 MiB through `port` (an echo path) and checks the SHA-256 both ways.
 * `prefix` is written first (a PROXY header) and is not echoed back by the backend.
 */
export async function checkEcho(port: number, prefix?: Buffer, bytes = 1024 * 1024): Promise<void> {
  const c = await connect(port);
  try {
    if (prefix) c.write(prefix);
    const r = await exchange(c, bytes);
    assert.equal(r.receivedBytes, bytes);
    assert.equal(r.receivedSha, r.sentSha, 'echoed bytes match');
  } finally {
    c.destroy();
  }
}

/**
 * Sends a plain HTTP/1.0 GET over a fresh connection from `localAddress` and returns the
 * response body and the client's own port (what a PROXY-aware peer should report).
 */
export async function httpGet(port: number, localAddress: string, host = '127.0.0.1'): Promise<{ body: string; status: string; clientPort: number }> {
  const c = await connect(port, { localAddress, host });
  const clientPort = c.localPort!;
  const chunks: Buffer[] = [];
  c.on('data', (b: Buffer) => chunks.push(b));
  c.write('GET / HTTP/1.0\r\nHost: test\r\n\r\n');
  await once(c, 'end');
  c.destroy();
  return { ...splitHttp(Buffer.concat(chunks).toString()), clientPort };
}

/** Splits an HTTP response into its status line and body. */
export function splitHttp(text: string): { status: string; body: string } {
  const at = text.indexOf('\r\n\r\n');
  return { status: text.slice(0, text.indexOf('\r\n')), body: at < 0 ? '' : text.slice(at + 4) };
}

/** Resolves once the socket has closed, whether by FIN or reset (unlike `once`, an 'error' does not reject). */
export function closed(s: net.Socket): Promise<void> {
  return s.closed ? Promise.resolve() : new Promise((resolve) => s.once('close', () => resolve()));
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
