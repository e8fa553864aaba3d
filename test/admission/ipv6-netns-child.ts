/**
 * Run inside a network namespace by ipv6-prefix.test.ts (`ip netns exec NS node …`): an echo
 * backend and l4lb with per-source limits on `[::1]`, and clients from three IPv6 addresses
 * of the namespace's loopback. Prints one JSON line: which client was served.
 */
import net from 'node:net';
import { startProxy } from '../../src/proxy/proxy.js';
import { parseConfigText } from '../../src/config/load.js';
import { silentLogger } from '../../src/observability/log.js';
import { startServer } from '../support/net.js';

/** Sends a line from `localAddress` and says whether it came back. */
function served(port: number, localAddress: string, keepOpen: net.Socket[]): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ port, host: '::1', localAddress });
    const timer = setTimeout(() => {
      s.destroy();
      resolve(false);
    }, 2000);
    s.on('error', () => {});
    s.once('data', () => {
      clearTimeout(timer);
      keepOpen.push(s); // held: it counts against its source while open
      resolve(true);
    });
    s.once('close', () => {
      clearTimeout(timer);
      resolve(false);
    });
    s.write('hello\n');
  });
}

const [prefix, ...clients] = process.argv.slice(2);
const backend = await startServer((s) => s.pipe(s), '::1');
const proxy = await startProxy(
  parseConfigText(
    `
listeners:
  - name: v6
    listen: '[::1]:0'
    pool: echo
    sourceLimits: { maxConnections: 1, ipv6Prefix: ${Number(prefix)} }
pools:
  - { name: echo, backends: ['[::1]:${backend.port}'] }
log: { access: 'off' }
`,
    'netns.yaml',
    {},
  ),
  { logger: silentLogger() },
);
const port = proxy.addresses()[0].port;
const open: net.Socket[] = [];
const result: Record<string, boolean> = {};
for (const c of clients) result[c] = await served(port, c, open);
process.stdout.write(`${JSON.stringify({ result, rejected: Object.fromEntries(proxy.listeners.get('v6')!.stats.rejected) })}\n`);
for (const s of open) s.destroy();
await proxy.close();
await backend.close();
