/**
 * Multi-process mode with DNS discovery: the primary looks the records up, every worker uses
 * the backends it found and follows their changes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { waitFor } from '../support/net.js';
import { Dnsmasq, serversOnOnePort, whoServes } from '../discovery/support.js';
import { accessLines, batch, startCluster } from './helpers.js';

test('backends discovered by the primary reach every worker, and so do record changes', async (t) => {
  const hosts = ['127.0.0.2', '127.0.0.3'];
  const servers = await serversOnOnePort(hosts);
  const dns = await Dnsmasq.start({ hosts: { 'app.test': hosts } });
  t.after(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await dns.close();
  });
  const c = await startCluster({
    listeners: [{ name: 'app', listen: '127.0.0.1:0', pool: 'app' }],
    pools: [{
      name: 'app',
      dns: { name: 'app.test', port: servers[0].port, resolvers: [dns.server], minTtl: '100ms', maxTtl: '300ms' },
    }],
  });
  t.after(() => c.close());

  await waitFor(async () => (await whoServes(c.port)) !== 'closed', 5000, 'the first answer to reach the workers');
  const first = accessLines(c).length;
  assert.deepEqual(new Set(await batch(100, 10, () => whoServes(c.port))), new Set(hosts));
  await waitFor(() => accessLines(c).length >= first + 100, 5000, 'access lines');
  assert.equal(new Set(accessLines(c).slice(first).map((l) => l.pid)).size, 2, 'both workers use the discovered backends');

  await dns.setHosts({ 'app.test': ['127.0.0.3'] });
  await waitFor(
    async () => (await batch(20, 5, () => whoServes(c.port))).every((h) => h === '127.0.0.3'),
    5000,
    'the workers to drop the removed record',
  );
  const before = accessLines(c).length;
  assert.deepEqual(new Set(await batch(100, 10, () => whoServes(c.port))), new Set(['127.0.0.3']));
  await waitFor(() => accessLines(c).length >= before + 100, 5000, 'access lines');
  assert.equal(new Set(accessLines(c).slice(before).map((l) => l.pid)).size, 2);
});
