/**
 * @module test/fault-injection/support — l4lb with its fault API on, in front of a real loopback
 * backend, driven by the real npm `toxiproxy-node-client` (as a Toxiproxy user's test suite
 * would drive Toxiproxy).
 */
import net from 'node:net';
import { once } from 'node:events';
import type { TestContext } from 'node:test';
import { Toxiproxy } from 'toxiproxy-node-client';
import { startProxy, type Proxy } from '../../src/proxy/proxy.js';
import { configFromBackends } from '../../src/config/quick.js';
import { silentLogger } from '../../src/observability/log.js';
import { startFaultsApi, type FaultsApi } from '../../src/faults/api.js';
import type { AccessRecord } from '../../src/proxy/connection.js';
import type { ToxicSpec } from '../../src/faults/toxics.js';

export interface Rig {
  proxy: Proxy;
  api: FaultsApi;
  /** The Toxiproxy client, pointed at l4lb's fault API. */
  toxiproxy: Toxiproxy;
  /** The l4lb listener's port. */
  port: number;
  records: AccessRecord[];
}

/**
 * l4lb (listener `default`) in front of `backendPort`, its fault API on a free loopback port;
 * closed after the test. `faults`: the listener's `faults:` from the config.
 */
export async function startRig(t: TestContext, backendPort: number, faults?: ToxicSpec[]): Promise<Rig> {
  const cfg = configFromBackends([`127.0.0.1:${backendPort}`], { accessLog: 'off' });
  cfg.faults = { host: '127.0.0.1', port: 0 };
  if (faults) cfg.listeners[0].faults = faults;
  const records: AccessRecord[] = [];
  const proxy = await startProxy(cfg, { logger: silentLogger(), onAccess: (r) => records.push(r) });
  t.after(() => proxy.close());
  const api = await startFaultsApi(proxy, cfg.faults);
  t.after(() => api.close());
  return { proxy, api, toxiproxy: new Toxiproxy(api.url), port: proxy.addresses()[0].port, records };
}

/** Connects to the listener; errors are kept for the test to read, not thrown. */
export async function dial(port: number): Promise<net.Socket> {
  const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
  s.on('error', () => {});
  await once(s, 'connect');
  return s;
}

/** The median of `xs`. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** How a connection ended, seen from the client. */
export interface Outcome {
  bytes: Buffer;
  /** `end` (FIN), `error` (with its code) or `close` without either. */
  how: 'end' | 'error' | 'close';
  code?: string;
  /** ms from start to the end. */
  ms: number;
  reads: number[];
}

/** Reads `s` until it ends, fails or closes, then destroys it. */
export function outcome(s: net.Socket): Promise<Outcome> {
  const t0 = performance.now();
  const chunks: Buffer[] = [];
  const reads: number[] = [];
  return new Promise((resolve) => {
    let done = false;
    const finish = (how: Outcome['how'], code?: string) => {
      if (done) return;
      done = true;
      // Half-open sockets (allowHalfOpen) would otherwise outlive the test.
      s.destroy();
      resolve({ bytes: Buffer.concat(chunks), how, code, ms: performance.now() - t0, reads });
    };
    s.on('data', (c: Buffer) => {
      chunks.push(c);
      reads.push(c.length);
    });
    s.on('end', () => finish('end'));
    s.on('error', (err: NodeJS.ErrnoException) => finish('error', err.code));
    s.on('close', () => finish('close'));
  });
}
