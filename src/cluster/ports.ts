/**
 * @module cluster/ports — listening-port questions the primary answers before workers bind.
 *
 * - Whether this Node.js and kernel support SO_REUSEPORT (`reusePort`, Node ≥ 22.12 / 23.1
 *   on Linux): two sockets bound to one port prove it. Older Node ignores the option, so
 *   the second bind fails.
 * - Port 0: with SO_REUSEPORT every worker binding port 0 would get a different port. The
 *   primary binds port 0 itself (with SO_REUSEPORT), holds that socket while the workers
 *   bind the port it got, and closes it once they have: the port can never be taken by
 *   someone else in between. Without SO_REUSEPORT the primary binds port 0, closes the
 *   socket and hands the port on; the cluster module then binds it once for all workers.
 * - A listener on a given port is test-bound first, without SO_REUSEPORT, at start and when
 *   a reload adds it: an address in use fails the start (as in one process) or the reload
 *   (before any worker changes anything). Without this, in `reuseport` mode a second l4lb
 *   started on the same port by mistake would silently share its traffic with the first.
 */
import net from 'node:net';
import { L4lbError, ErrorCodes } from '../errors.js';
import { formatHostPort } from '../util/address.js';

/** A bound socket kept open until released. */
export interface PortHold {
  port: number;
  release(): Promise<void>;
}

function bind(host: string, port: number, reusePort: boolean): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', (err: NodeJS.ErrnoException) => {
      const what = err.code === 'EADDRINUSE' ? 'address already in use' : err.code === 'EACCES' ? 'permission denied' : err.message;
      reject(new L4lbError(ErrorCodes.LISTEN, 'internal', `cannot listen on ${formatHostPort(host || '0.0.0.0', port)}: ${what}`, { cause: err }));
    });
    // No connection is ever accepted here: the socket only holds the port.
    s.on('connection', (c) => c.destroy());
    s.listen({ host: host || undefined, port, reusePort, exclusive: true, backlog: 1 }, () => resolve(s));
  });
}

function close(s: net.Server): Promise<void> {
  return new Promise((resolve) => s.close(() => resolve()));
}

/** True when sockets can share a port with SO_REUSEPORT here. */
export async function reusePortSupported(): Promise<boolean> {
  let a: net.Server | undefined;
  let b: net.Server | undefined;
  try {
    a = await bind('127.0.0.1', 0, true);
    b = await bind('127.0.0.1', (a.address() as net.AddressInfo).port, true);
    return true;
  } catch {
    return false;
  } finally {
    if (b) await close(b);
    if (a) await close(a);
  }
}

/**
 * Binds `host:port` (port 0 = a free one). With `hold` the socket stays open until
 * released (SO_REUSEPORT mode: workers bind next to it); otherwise it is closed at once
 * and only the port number is kept. Rejects with L4LB_ERR_LISTEN.
 */
export async function reservePort(host: string, port: number, reusePort: boolean, hold: boolean): Promise<PortHold> {
  const s = await bind(host, port, reusePort);
  const got = (s.address() as net.AddressInfo).port;
  if (!hold) {
    await close(s);
    return { port: got, release: async () => {} };
  }
  let released = false;
  return {
    port: got,
    async release() {
      if (released) return;
      released = true;
      await close(s);
    },
  };
}
