/**
 * @module test/admin/helpers — a real proxy with real backends and its admin server, plus
 * a small HTTP client, for the admin tests. Everything started here is closed by `close()`.
 */
import http from 'node:http';
import net from 'node:net';
import { startProxy, type Proxy } from '../../src/proxy/proxy.js';
import { configFromBackends } from '../../src/config/quick.js';
import { silentLogger } from '../../src/observability/log.js';
import { startProxyAdmin, type AdminServer, type AdminServerOptions } from '../../src/admin/server.js';
import type { BackendConfig, Config } from '../../src/config/types.js';
import { startServer, type TestServer } from '../support/net.js';

export interface Stack {
  proxy: Proxy;
  admin: AdminServer;
  backends: TestServer[];
  /** Backend names, as configFromBackends names them (their addresses). */
  names: string[];
  /** The proxy's listening port. */
  port: number;
  /** The admin server's base URL. */
  url: string;
  close(): Promise<void>;
}

export interface StackOptions {
  backends?: number;
  token?: string;
  /** Changes to the config before the proxy starts. */
  tweak?: (cfg: Config) => void;
  admin?: Partial<AdminServerOptions>;
}

/** Pool backends `b0`, `b1`… on the given servers, enabled, weight 1, no limit. */
export function namedBackends(servers: TestServer[]): BackendConfig[] {
  return servers.map((x, i) => ({
    name: `b${i}`, host: '127.0.0.1', port: x.port, weight: 1, backup: false, state: 'enabled' as const, maxConnections: 0, check: true,
  }));
}

/** Echo backends (each reply prefixed by nothing: plain echo, half-close aware). */
export async function startStack(o: StackOptions = {}): Promise<Stack> {
  const backends: TestServer[] = [];
  for (let i = 0; i < (o.backends ?? 2); i++) backends.push(await startServer((s) => s.pipe(s)));
  const names = backends.map((b) => `127.0.0.1:${b.port}`);
  const cfg = configFromBackends(names, { accessLog: 'off', logLevel: 'silent' });
  o.tweak?.(cfg);
  const proxy = await startProxy(cfg, { logger: silentLogger() });
  let admin: AdminServer;
  try {
    admin = await startProxyAdmin(proxy, { host: '127.0.0.1', port: 0, token: o.token, persist: false }, o.admin);
  } catch (err) {
    await proxy.close();
    for (const b of backends) await b.close();
    throw err;
  }
  return {
    proxy,
    admin,
    backends,
    names,
    port: proxy.addresses()[0].port,
    url: admin.url,
    async close() {
      await admin.close();
      await proxy.close();
      for (const b of backends) await b.close();
    },
  };
}

export interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  /** The body parsed as JSON (undefined when it is not JSON). */
  json: any;
}

/** One HTTP request with full control over headers (Host and Origin included). */
export function call(
  url: string,
  path: string,
  o: { method?: string; body?: string | Buffer; token?: string; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const u = new URL(path, url);
  const headers: Record<string, string> = { ...o.headers };
  if (o.token !== undefined) headers.authorization = `Bearer ${o.token}`;
  if (o.body !== undefined) headers['content-type'] ??= 'application/json';
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: u.hostname, port: u.port, path: `${u.pathname}${u.search}`, method: o.method ?? 'GET', headers, agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(o.body);
  });
}

/** Opens `n` connections through the proxy and waits until each has reached a backend. */
export async function holdConnections(port: number, n: number, timeoutMs = 5000): Promise<net.Socket[]> {
  const socks: net.Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = net.connect({ port, host: '127.0.0.1' });
    s.on('error', () => {});
    socks.push(s);
    // An echo round trip proves the relay is up (the backend side is connected).
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connection ${i + 1} got no echo within ${timeoutMs}ms`)), timeoutMs);
      s.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      s.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      s.write('x');
    });
  }
  return socks;
}

/** Per-test limit: a stuck socket fails its test instead of hanging the run. */
export const TIMEOUT = { timeout: 30_000 } as const;

/** Percent-encodes a backend or pool name for a URL path. */
export const enc = encodeURIComponent;
