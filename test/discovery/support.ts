/**
 * @module test/discovery/support — a real DNS server (dnsmasq) on a loopback port, plus
 * small helpers the discovery tests share. Every helper returns something with close().
 */
import { accessSync, constants } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dgram from 'node:dgram';
import net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Logger } from '../../src/observability/log.js';
import { parseConfigText } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';
// dnsmasq runs under the watchdog, so it cannot outlive a test process killed before its cleanup.
import { spawnWatched, stopWatched, type Watched } from '../support/watchdog.js';

/** Where Debian installs dnsmasq. The tests need it: they fail, never skip, without it. */
export const DNSMASQ = '/usr/sbin/dnsmasq';
/** TTL dnsmasq gives the records it serves from files, in seconds. */
export const RECORD_TTL_S = 1;

/** An SRV record as dnsmasq's `srv-host` writes it. */
export interface SrvRecord {
  target: string;
  port: number;
  priority: number;
  weight: number;
}

/** Records served: A/AAAA per name (any IP literal), SRV per service name. */
export interface Zone {
  hosts?: Record<string, string[]>;
  srv?: Record<string, SrvRecord[]>;
  /**
   * Whether dnsmasq owns the zone (`local=/test/`, the default): a family a name has no
   * record for is then NODATA. Without it, dnsmasq (with no upstream) answers REFUSED for
   * that family, as a non-authoritative dnsmasq in front of real networks does.
   */
  authoritative?: boolean;
}

/** Ports tried for dnsmasq: below the kernel's ephemeral range (32768-60999 by default),
 * where TIME_WAIT leftovers of outgoing connections (benchmarks leave tens of thousands)
 * would make dnsmasq's TCP bind fail. */
const DNS_PORT_RANGE = [20_000, 32_000] as const;

/** A loopback port free for UDP and TCP alike (checked by binding both, then released). */
export async function freeDnsPort(): Promise<number> {
  for (let attempt = 0; ; attempt++) {
    const port = DNS_PORT_RANGE[0] + Math.floor(Math.random() * (DNS_PORT_RANGE[1] - DNS_PORT_RANGE[0]));
    const udp = dgram.createSocket('udp4');
    const tcp = net.createServer();
    try {
      udp.bind(port, '127.0.0.1');
      await Promise.race([once(udp, 'listening'), once(udp, 'error').then(([e]) => Promise.reject(e))]);
      tcp.listen(port, '127.0.0.1');
      await Promise.race([once(tcp, 'listening'), once(tcp, 'error').then(([e]) => Promise.reject(e))]);
      return port;
    } catch (err) {
      if (attempt >= 20) throw err;
    } finally {
      await new Promise<void>((r) => udp.close(() => r())).catch(() => {});
      if (tcp.listening) await new Promise((r) => tcp.close(r));
    }
  }
}


/** A running dnsmasq: its watchdog shell and dnsmasq's own pid. */
type Running = Watched;

/**
 * dnsmasq serving the zone `test` only from files this object writes: names missing from
 * the hosts file are NXDOMAIN (`local=/test/`), A/AAAA records carry a TTL of
 * {@link RECORD_TTL_S}. Host changes are applied with SIGHUP (dnsmasq re-reads its hosts
 * file); SRV changes need a restart on the same port (srv-host lines are read at start only).
 */
export class Dnsmasq {
  readonly dir: string;
  port = 0;
  #zone: Zone;
  #run: Running | undefined;
  #log = '';

  private constructor(dir: string, zone: Zone) {
    this.dir = dir;
    this.#zone = zone;
  }

  /** Starts dnsmasq on a free loopback port with `zone`. */
  static async start(zone: Zone = {}): Promise<Dnsmasq> {
    accessSync(DNSMASQ, constants.X_OK); // throws: the test fails when dnsmasq is missing
    const dir = await mkdtemp(join(tmpdir(), 'l4lb-dns-'));
    // dnsmasq started as root drops to "nobody", which must still read the files on SIGHUP.
    await chmod(dir, 0o755);
    const d = new Dnsmasq(dir, zone);
    try {
      await d.#writeFiles();
      await d.#spawnOnFreePort();
    } catch (err) {
      await d.close();
      throw err;
    }
    return d;
  }

  /** `127.0.0.1:PORT`, as `dns.resolvers` takes it. */
  get server(): string {
    return `127.0.0.1:${this.port}`;
  }

  get #hostsFile(): string {
    return join(this.dir, 'hosts');
  }

  get #confFile(): string {
    return join(this.dir, 'dnsmasq.conf');
  }

  /** Replaces the A/AAAA records and waits until dnsmasq has re-read them. */
  async setHosts(hosts: Record<string, string[]>): Promise<void> {
    this.#zone = { ...this.#zone, hosts };
    await this.#writeFiles();
    const run = this.#run;
    if (!run || run.exited) return;
    const before = this.#reads();
    process.kill(run.pid, 'SIGHUP');
    await this.#until(() => this.#reads() > before, 'dnsmasq to re-read its hosts file');
  }

  /** Replaces the SRV records: rewrites the config and restarts dnsmasq on the same port. */
  async setSrv(srv: Record<string, SrvRecord[]>): Promise<void> {
    this.#zone = { ...this.#zone, srv };
    await this.#writeFiles();
    await this.restart();
  }

  /** Kills dnsmasq: the resolver is down (queries get ICMP port unreachable). */
  async kill(): Promise<void> {
    const run = this.#run;
    this.#run = undefined;
    if (run) await stopWatched(run);
  }

  /** Starts dnsmasq again on the same port, with the current records. */
  async restart(): Promise<void> {
    await this.kill();
    await this.#spawn(this.port);
  }

  /** Kills dnsmasq and removes its files. */
  async close(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }

  async #writeFiles(): Promise<void> {
    const hosts = Object.entries(this.#zone.hosts ?? {})
      .flatMap(([name, ips]) => ips.map((ip) => `${ip} ${name}\n`))
      .join('');
    const srv = Object.entries(this.#zone.srv ?? {})
      .flatMap(([name, recs]) => recs.map((r) => `srv-host=${name},${r.target},${r.port},${r.priority},${r.weight}\n`))
      .join('');
    await writeFile(this.#hostsFile, hosts, { mode: 0o644 });
    await writeFile(this.#confFile, `${this.#zone.authoritative === false ? '' : 'local=/test/\n'}${srv}`, { mode: 0o644 });
  }

  async #spawnOnFreePort(): Promise<void> {
    const errors: string[] = [];
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        await this.#spawn(await freeDnsPort());
        return;
      } catch (err) {
        errors.push((err as Error).message);
      }
    }
    throw new Error(`dnsmasq did not start:\n${errors.join('\n')}`);
  }

  async #spawn(port: number): Promise<void> {
    const args = [
      '--no-daemon',
      '--no-resolv',
      '--no-hosts',
      '--bind-interfaces',
      '--listen-address=127.0.0.1',
      `--port=${port}`,
      `--conf-file=${this.#confFile}`,
      `--addn-hosts=${this.#hostsFile}`,
      `--local-ttl=${RECORD_TTL_S}`,
      '--pid-file=',
      '--log-facility=-',
    ];
    let log = '';
    const run: Running = spawnWatched(DNSMASQ, args, undefined, (chunk) => {
      log += chunk;
      if (this.#run === run) this.#log = log;
    });
    // The hosts file is read after the sockets are bound: from then on queries are answered.
    const deadline = Date.now() + 5000;
    while (run.pid === 0 || log.split(`read ${this.#hostsFile}`).length < 2) {
      if (run.exited || Date.now() > deadline) {
        await stopWatched(run);
        throw new Error(`dnsmasq did not start (port ${port}): ${log.trim() || '(no output)'}`);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
    this.#run = run;
    this.#log = log;
    this.port = port;
  }

  #reads(): number {
    return this.#log.split(`read ${this.#hostsFile}`).length - 1;
  }

  async #until(pred: () => boolean, what: string, ms = 5000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!pred()) {
      if (this.#run === undefined || this.#run.exited) throw new Error(`dnsmasq exited waiting for ${what}:\n${this.#log}`);
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}:\n${this.#log}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }
}

/** A TCP server on `host:port` (port 0 = any) answering each connection with `name\n`, then echoing. */
export interface NamedServer {
  name: string;
  host: string;
  port: number;
  accepted: number;
  sockets: Set<net.Socket>;
  server: net.Server;
  close(): Promise<void>;
}

/**
 * Starts a backend that writes `name\n` on connect, then runs `handler` (default: echo,
 * ending when the client ends).
 */
export async function namedServer(
  name: string,
  host: string,
  port = 0,
  handler: (s: net.Socket) => void = (s) => s.pipe(s),
): Promise<NamedServer> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ allowHalfOpen: true }, (s) => {
    ns.accepted++;
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
    s.write(`${name}\n`);
    handler(s);
  });
  const ns: NamedServer = {
    name,
    host,
    port: 0,
    accepted: 0,
    sockets,
    server,
    async close() {
      for (const s of sockets) s.destroy();
      if (server.listening) await new Promise((r) => server.close(r));
    },
  };
  server.listen(port, host);
  await Promise.race([once(server, 'listening'), once(server, 'error').then(([e]) => Promise.reject(e))]);
  ns.port = (server.address() as net.AddressInfo).port;
  return ns;
}

/**
 * Backends on several loopback addresses, all on one port (A records carry no port):
 * the first picks a free port, the others take the same one; retried if it is taken.
 */
export async function serversOnOnePort(hosts: string[], name: (host: string) => string = (h) => h): Promise<NamedServer[]> {
  for (let attempt = 0; ; attempt++) {
    const first = await namedServer(name(hosts[0]), hosts[0]);
    const out = [first];
    try {
      for (const h of hosts.slice(1)) out.push(await namedServer(name(h), h, first.port));
      return out;
    } catch (err) {
      await Promise.all(out.map((s) => s.close()));
      if (attempt >= 4) throw err;
    }
  }
}

/** Connects to `port` on 127.0.0.1 and resolves with the first line the backend sends; the
 * socket is left paused (call resume() to read on). */
export async function firstLine(port: number, localAddress?: string): Promise<{ line: string; socket: net.Socket }> {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress, allowHalfOpen: true });
  socket.on('error', () => {});
  return new Promise((resolve, reject) => {
    let buf = '';
    const onData = (c: Buffer) => {
      buf += c.toString('latin1');
      const nl = buf.indexOf('\n');
      if (nl >= 0) {
        socket.off('data', onData);
        socket.off('end', closed);
        socket.pause();
        const rest = Buffer.from(buf.slice(nl + 1), 'latin1');
        if (rest.length > 0) socket.unshift(rest);
        resolve({ line: buf.slice(0, nl), socket });
      }
    };
    socket.on('data', onData);
    // allowHalfOpen: a FIN from l4lb ends the readable side without closing the socket.
    const closed = () => {
      socket.destroy();
      reject(new Error(`closed before a line (got ${JSON.stringify(buf)})`));
    };
    socket.once('end', closed);
    socket.once('close', closed);
    socket.once('error', (err) => {
      socket.destroy();
      reject(err);
    });
  });
}

/** Which backend serves a new connection: its name, or `closed` when l4lb closed it. */
export async function whoServes(port: number, localAddress?: string): Promise<string> {
  try {
    const { line, socket } = await firstLine(port, localAddress);
    socket.destroy();
    return line;
  } catch {
    return 'closed';
  }
}

/** A logger that keeps every line it writes, parsed, for assertions on log output. */
export function captureLogger(level: 'debug' | 'info' | 'warn' = 'info'): { logger: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l.trim() !== '') lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { logger: pino({ level }, stream), lines };
}

/** A config from YAML text, through the real loader. */
export function configFrom(yaml: string): Config {
  return parseConfigText(yaml, 'test.yaml', {});
}
