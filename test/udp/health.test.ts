/**
 * The `udp` active health check against a real DNS server: a DNS query sent as hex, the reply
 * matched by its id, rise/fall over a dnsmasq that is killed and restarted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Dnsmasq } from '../discovery/support.js';
import { udpCheck } from '../../src/health/udp-check.js';
import { compileMatcher, HealthCheckError } from '../../src/health/checks.js';
import { refusedPort } from '../support/net.js';
import { dnsQuery, proxyFrom, udpEcho, until } from './support.js';

test('udpCheck: a matching reply passes; a wrong reply, ICMP unreachable and silence fail with their reason', async (t) => {
  const echo = await udpEcho('PONG ');
  const silent = await udpEcho();
  silent.socket.removeAllListeners('message');
  t.after(() => Promise.all([echo.close(), silent.close()]));
  await udpCheck('127.0.0.1', echo.port, Buffer.from('ping'), compileMatcher({ kind: 'substring', value: 'PONG' }), 1_000);
  await udpCheck('127.0.0.1', echo.port, Buffer.from('ping'), undefined, 1_000);
  const fails = async (p: Promise<void>, kind: string, message: RegExp) => {
    await assert.rejects(p, (err: unknown) => err instanceof HealthCheckError && err.kind === kind && message.test(err.message));
  };
  await fails(udpCheck('127.0.0.1', echo.port, Buffer.from('x'), compileMatcher({ kind: 'hex', value: 'ffff' }), 1_000), 'mismatch', /expected hex ffff, got hex 504f4e47/);
  await fails(udpCheck('127.0.0.1', await refusedPort(), Buffer.from('x'), undefined, 1_000), 'refused', /port unreachable/);
  await fails(udpCheck('127.0.0.1', silent.port, Buffer.from('x'), undefined, 200), 'timeout', /timeout after 200ms/);
});

test('a udp health check with a DNS query marks a killed dnsmasq down after fall, and up after rise once it returns', async (t) => {
  const dns = await Dnsmasq.start({ hosts: { 'svc.test': ['10.0.0.1'] } });
  t.after(() => dns.close());
  const query = dnsQuery('svc.test', 0x4c34).toString('hex');
  const p = await proxyFrom(`
listeners:
  - { name: dns, listen: 127.0.0.1:0, protocol: udp, pool: dns, udp: { responses: 1 } }
pools:
  - name: dns
    backends: [${dns.server}]
    healthCheck: { type: udp, sendHex: "${query}", expectHex: "4c34", interval: 100ms, timeout: 100ms, rise: 2, fall: 2 }
`);
  t.after(() => p.close());
  const b = p.proxy.pools.get('dns')!.backends[0];
  await until(() => b.lastCheckOk === true, 'a passing check');
  assert.equal(b.state(), 'up');
  await dns.kill();
  await until(() => b.state() === 'down', 'fall: down after two failed checks');
  assert.match(b.lastError ?? '', /port unreachable/);
  await dns.restart();
  await until(() => b.state() === 'up', 'rise: up after two passing checks');
});
