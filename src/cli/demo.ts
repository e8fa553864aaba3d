/**
 * @module cli/demo — `l4lb --demo`: three small echo backends on free ports, each
 * prefixing replies with its name, so a newcomer sees the round robin at once.
 */
import net from 'node:net';

/** Number of built-in demo backends. */
export const DEMO_BACKENDS = 3;

export interface DemoBackends {
  addresses: { name: string; host: string; port: number }[];
  close(): Promise<void>;
}

/** Starts the demo echo backends on 127.0.0.1, free ports. */
export async function startDemoBackends(count = DEMO_BACKENDS): Promise<DemoBackends> {
  const servers: net.Server[] = [];
  const sockets = new Set<net.Socket>();
  const addresses = [];
  for (let i = 1; i <= count; i++) {
    const name = `backend-${i}`;
    const server = net.createServer({ allowHalfOpen: true }, (sock) => {
      sockets.add(sock);
      sock.on('close', () => sockets.delete(sock));
      sock.on('error', () => sock.destroy());
      let pending = '';
      sock.setEncoding('utf8');
      sock.on('data', (chunk: string) => {
        pending += chunk;
        let nl;
        while ((nl = pending.indexOf('\n')) >= 0) {
          sock.write(`${name}: ${pending.slice(0, nl + 1)}`);
          pending = pending.slice(nl + 1);
        }
      });
      sock.on('end', () => {
        if (pending) sock.write(`${name}: ${pending}\n`);
        sock.end();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    servers.push(server);
    addresses.push({ name, host: '127.0.0.1', port: (server.address() as net.AddressInfo).port });
  }
  return {
    addresses,
    async close() {
      for (const s of sockets) s.destroy();
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    },
  };
}

/** The instructions printed after the demo starts. */
export function demoInstructions(listen: string, port: number): string {
  return [
    '',
    `l4lb demo: ${DEMO_BACKENDS} echo backends behind ${listen}, round robin.`,
    `Try it:   nc 127.0.0.1 ${port}        (type a line; the backend that answers prefixes its name)`,
    `Round robin:   for i in 1 2 3 4 5 6; do echo hello | nc -w1 127.0.0.1 ${port}; done`,
    'Press Ctrl-C to stop.',
    '',
  ].join('\n');
}
