/**
 * Byte counters include connections that are still open: a long transfer shows up in
 * /api/v1/status (and so in the dashboard's throughput) while it runs, not only when it
 * ends, and nothing is counted twice when it does end.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { startProxy } from '../../src/proxy/proxy.js';
import { configFromBackends } from '../../src/config/quick.js';
import { silentLogger } from '../../src/observability/log.js';
import { ProxyStatusSource } from '../../src/admin/proxy-source.js';
import { connect, startServer, waitFor } from '../support/net.js';

test('bytes of an open connection are counted while it runs, and exactly once in total', async (t) => {
  // A sink that closes after the client's FIN: otherwise the connection stays half-open until
  // the clientFin timeout (30 s) before it ends.
  const backend = await startServer((s) => {
    s.resume();
    s.on('end', () => s.end());
  });
  const proxy = await startProxy(configFromBackends([`127.0.0.1:${backend.port}`], { accessLog: 'off' }), { logger: silentLogger() });
  const source = new ProxyStatusSource(proxy);
  t.after(async () => {
    await proxy.close();
    await backend.close();
  });
  const c = await connect(proxy.addresses()[0].port);
  c.write(Buffer.alloc(300_000, 1));
  const bytesUp = async () => (await source.status()).listeners[0].bytesUp;
  await waitFor(async () => (await bytesUp()) === 300_000, 5000, 'open connection counted');
  const backendIn = (await source.status()).pools[0].backends[0].bytesIn;
  assert.equal(backendIn, 300_000, 'per-backend counter too');

  c.end(Buffer.alloc(200_000, 2));
  c.resume();
  await once(c, 'close');
  await waitFor(() => proxy.activeConnections() === 0, 5000, 'closed');
  const s = await source.status();
  assert.equal(s.listeners[0].bytesUp, 500_000, 'counted once in total after close');
  assert.equal(s.pools[0].backends[0].bytesIn, 500_000);
});
