/**
 * Scale-out: two l4lb instances (one in this process, one an `l4lb --config` process)
 * with `balance: maglev`, discovering the same backends through DNS, send each client
 * address to the same backend — so a client keeps its backend whichever instance ECMP or
 * DNS round robin hands it to, also after a backend leaves.
 *
 * "The same backend" is the one the Maglev table over the DNS names (`IP:PORT`) gives, built
 * here independently: Maglev moves the clients of a leaving backend and, by design, a small
 * share of the others too (about 0.1% with 4 backends; which ones depends on the names, so on
 * the port the backends got), so the test predicts those moves rather than assuming none.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startProxy, type Proxy } from '../../src/proxy/proxy.js';
import { MaglevBalancer } from '../../src/balancers/maglev.js';
import { silentLogger } from '../../src/observability/log.js';
import { spawnL4lb, waitFor, type CliProcess } from '../support/net.js';
import { Dnsmasq, configFrom, serversOnOnePort, whoServes, type NamedServer } from './support.js';

/** Client source addresses: all of 127.0.0.0/8 is loopback on Linux. */
const SOURCES = Array.from({ length: 48 }, (_, i) => `127.1.${Math.floor(i / 16)}.${(i % 16) + 1}`);
const BACKEND_HOSTS = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5'];

/** The backend host the Maglev table over `hosts` (named `IP:PORT`, equal weights) gives each of SOURCES. */
function maglevHosts(hosts: string[], port: number): string[] {
  const table = new MaglevBalancer(hosts.map((h) => ({ name: `${h}:${port}`, weight: 1, active: 0 })));
  return SOURCES.map((src) => table.pick({ clientAddress: src, clientPort: 0 }, () => true)!.name.split(':')[0]);
}

async function mapping(ports: number[]): Promise<Array<string[]>> {
  const out: Array<string[]> = [];
  for (const src of SOURCES) out.push(await Promise.all(ports.map((p) => whoServes(p, src))));
  return out;
}

test('two maglev instances in front of the same DNS-discovered backends send each client address to the same backend', async (t) => {
  const servers: NamedServer[] = await serversOnOnePort(BACKEND_HOSTS);
  const dns = await Dnsmasq.start({ hosts: { 'app.test': BACKEND_HOSTS } });
  const dir = await mkdtemp(join(tmpdir(), 'l4lb-scale-'));
  let inProcess: Proxy | undefined;
  let cli: CliProcess | undefined;
  t.after(async () => {
    await inProcess?.close();
    await cli?.stop();
    await Promise.all(servers.map((s) => s.close()));
    await dns.close();
    await rm(dir, { recursive: true, force: true });
  });

  const yaml = `
listeners:
  - name: app
    listen: 127.0.0.1:0
    pool: app
pools:
  - name: app
    balance: maglev
    dns: { name: app.test, port: ${servers[0].port}, resolvers: ["${dns.server}"], minTtl: 100ms, maxTtl: 300ms }
log: { level: warn, access: "off" }
`;
  const file = join(dir, 'l4lb.yaml');
  await writeFile(file, yaml);
  inProcess = await startProxy(configFrom(yaml), { logger: silentLogger() });
  cli = await spawnL4lb(['--config', file]);
  const ports = [inProcess.addresses()[0].port, cli.port];
  const pool = inProcess.pools.get('app')!;
  assert.equal(pool.backends.length, 4);

  // The CLI instance may still be waiting for its first answer: it then closes clients.
  await waitFor(async () => (await whoServes(cli!.port, SOURCES[0])) !== 'closed', 5000, 'the l4lb process to discover its backends');
  const before = await mapping(ports);
  const predicted = maglevHosts(BACKEND_HOSTS, servers[0].port);
  for (const [i, [a, b]] of before.entries()) {
    assert.equal(a, b, `client ${SOURCES[i]}: instances disagree`);
    assert.equal(a, predicted[i], `client ${SOURCES[i]}: the Maglev table's backend`);
  }
  const used = new Set(before.map(([a]) => a));
  assert.deepEqual([...used].sort(), BACKEND_HOSTS, 'the clients spread over every backend');
  // A client keeps its backend from one connection to the next.
  assert.deepEqual(await mapping(ports), before);

  // One backend's record goes away: both instances follow, agree again, and only the
  // clients that were on it move.
  const gone = '127.0.0.4';
  await dns.setHosts({ 'app.test': BACKEND_HOSTS.filter((h) => h !== gone) });
  await waitFor(() => pool.backends.length === 3, 5000, 'the in-process instance to drop the record');
  const wereOnGone = SOURCES.filter((_, i) => before[i][0] === gone);
  await waitFor(
    async () => !(await Promise.all(wereOnGone.map((s) => whoServes(cli!.port, s)))).includes(gone),
    5000,
    'the l4lb process to drop the record',
  );
  const after = await mapping(ports);
  const predictedAfter = maglevHosts(BACKEND_HOSTS.filter((h) => h !== gone), servers[0].port);
  for (const [i, [a, b]] of after.entries()) {
    assert.equal(a, b, `client ${SOURCES[i]}: instances disagree after the change`);
    assert.notEqual(a, gone);
    assert.equal(a, predictedAfter[i], `client ${SOURCES[i]}: the new Maglev table's backend`);
  }
  // Consistent hashing, not a rehash of everyone (which would move about 2/3 of them): the
  // table moves none of the clients whose backend stayed in 97% of port draws, and 5 at
  // worst in 4,000 (test/balancers/maglev.test.ts bounds the share over many keys).
  const stayed = SOURCES.flatMap((_, i) => (before[i][0] === gone ? [] : [i]));
  const moved = stayed.filter((i) => after[i][0] !== before[i][0]);
  assert.ok(moved.length < stayed.length / 4, `${moved.length} of ${stayed.length} clients moved although their backend stayed`);
});
