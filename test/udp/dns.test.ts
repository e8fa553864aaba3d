/**
 * UDP load balancing in front of real DNS servers: two dnsmasq instances answer the same name
 * differently, queried through l4lb with dig and with Node's resolver.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Resolver } from 'node:dns/promises';
import { Dnsmasq } from '../discovery/support.js';
import { UdpClient, dnsAnswer, dnsQuery, proxyFrom, until } from './support.js';

const run = promisify(execFile);

/** Two dnsmasq servers: `svc.test` is 10.0.0.1 on the first, 10.0.0.2 on the second. */
async function twoServers(): Promise<[Dnsmasq, Dnsmasq]> {
  const a = await Dnsmasq.start({ hosts: { 'svc.test': ['10.0.0.1'] } });
  const b = await Dnsmasq.start({ hosts: { 'svc.test': ['10.0.0.2'] } }).catch(async (err) => {
    await a.close();
    throw err;
  });
  return [a, b];
}

function dnsConfig(a: Dnsmasq, b: Dnsmasq, extra = '', passive = ''): string {
  return `
listeners:
  - name: dns
    listen: 127.0.0.1:0
    protocol: udp
    pool: dns
    udp: { responses: 1 }
${extra}
pools:
  - name: dns
    backends: [${a.server}, ${b.server}]
${passive}
`;
}

/** Two servers, a proxy with `responses: 1` in front, and a client; all closed after `t`. */
async function dnsAndClient(t: TestContext) {
  const [a, b] = await twoServers();
  t.after(() => Promise.all([a.close(), b.close()]));
  const p = await proxyFrom(dnsConfig(a, b));
  t.after(() => p.close());
  const c = await UdpClient.open();
  t.after(() => c.close());
  return { p, c };
}

async function dig(port: number, name: string): Promise<string> {
  const { stdout } = await run('dig', ['+short', '+tries=1', '+time=3', '-p', String(port), '@127.0.0.1', name]);
  return stdout.trim();
}

test('dig through a UDP listener gets correct answers, alternating between the two servers (round robin)', async (t) => {
  const [a, b] = await twoServers();
  t.after(() => Promise.all([a.close(), b.close()]));
  const p = await proxyFrom(dnsConfig(a, b));
  t.after(() => p.close());
  const answers: string[] = [];
  for (let i = 0; i < 6; i++) answers.push(await dig(p.port, 'svc.test'));
  // Round robin starts anywhere in the list, then alternates.
  const first = answers[0];
  const second = first === '10.0.0.1' ? '10.0.0.2' : '10.0.0.1';
  assert.deepEqual(answers, [first, second, first, second, first, second]);
  assert.ok(['10.0.0.1', '10.0.0.2'].includes(first));
  // responses: 1 ended every session on its answer.
  await until(() => p.records.length === 6, 'six access records');
  assert.equal(p.proxy.udp.sessionCount(), 0);
  for (const r of p.records) {
    assert.equal(r.reason, 'responses_done');
    assert.equal(r.protocol, 'udp');
    assert.equal(r.datagramsUp, 1);
    assert.equal(r.datagramsDown, 1);
    assert.ok(r.bytesUp > 12 && r.bytesDown > r.bytesUp, `bytes ${r.bytesUp}/${r.bytesDown}`);
  }
});

test("Node's dns Resolver through l4lb: both answers come back, in turn", async (t) => {
  const [a, b] = await twoServers();
  t.after(() => Promise.all([a.close(), b.close()]));
  const p = await proxyFrom(dnsConfig(a, b));
  t.after(() => p.close());
  const resolver = new Resolver({ timeout: 3_000, tries: 1 });
  resolver.setServers([`127.0.0.1:${p.port}`]);
  const seen: string[] = [];
  for (let i = 0; i < 4; i++) seen.push(...(await resolver.resolve4('svc.test')));
  assert.deepEqual([...seen].sort(), ['10.0.0.1', '10.0.0.1', '10.0.0.2', '10.0.0.2']);
  assert.notEqual(seen[0], seen[1]);
});

test('responses: 1 ends a session as soon as its answer is sent: the next query from the same port opens a new one', async (t) => {
  const { p, c } = await dnsAndClient(t);
  await c.send(p.port, dnsQuery('svc.test', 1));
  await c.waitReplies(1);
  // Ended on the answer, not by the idle timeout (30s).
  await until(() => p.proxy.udp.sessionCount() === 0, 'the session to end');
  await c.send(p.port, dnsQuery('svc.test', 2));
  const [r1, r2] = (await c.waitReplies(2)).map(dnsAnswer);
  assert.deepEqual([r1.id, r2.id], [1, 2]);
  // Same client port, two sessions: round robin moved the second to the other server.
  assert.notEqual(r1.address, r2.address);
  const l = p.proxy.udp.map.get('dns')!;
  assert.equal(l.stats.accepted, 2);
  assert.equal(l.stats.closed.get('responses_done'), 2);
});

test('a dnsmasq killed mid-run is ejected on ICMP port-unreachable and comes back once it answers again', async (t) => {
  const [a, b] = await twoServers();
  t.after(() => Promise.all([a.close(), b.close()]));
  const p = await proxyFrom(dnsConfig(a, b, '', '    passive: { consecutiveFailures: 2, baseEjection: 1s, maxEjection: 1s }'));
  t.after(() => p.close());
  const pool = p.proxy.pools.get('dns')!;
  const [ba, bb] = pool.backends;
  const c = await UdpClient.open();
  t.after(() => c.close());
  let id = 0;
  /** Sends one query and waits for its answer, or for `ms` when none comes. */
  const ask = async (ms = 1_500): Promise<string | undefined> => {
    const before = c.replies.length;
    await c.send(p.port, dnsQuery('svc.test', ++id));
    try {
      await c.waitReplies(before + 1, ms);
      return dnsAnswer(c.replies[before]).address;
    } catch {
      return undefined;
    }
  };
  assert.deepEqual([await ask(), await ask()].sort(), ['10.0.0.1', '10.0.0.2']);
  await a.kill();
  // Queries that land on the dead server get no answer; each ICMP error counts against it.
  for (let i = 0; i < 8 && ba.state() !== 'down'; i++) await ask(300);
  assert.equal(ba.state(), 'down', 'the killed server is ejected');
  const unreachable = p.records.filter((r) => r.reason === 'backend_unreachable');
  assert.ok(unreachable.length >= 2);
  assert.ok(unreachable.every((r) => r.backend === ba.name && r.backendAddress === ba.address && r.code === 'L4LB_ERR_CONNECT_REFUSED'));
  // While it is out, every answer comes from the live one.
  for (let i = 0; i < 3; i++) assert.equal(await ask(), '10.0.0.2');
  await a.restart();
  // After the 1s ejection the next session tries it again, and its answer clears the streak.
  await until(() => ba.ejectedUntil <= Date.now(), 'the ejection to run out', 5_000);
  const after: Array<string | undefined> = [];
  for (let i = 0; i < 4; i++) after.push(await ask());
  assert.ok(after.includes('10.0.0.1'), `back in rotation: ${after.join(',')}`);
  assert.equal(ba.state(), 'up');
  assert.equal(bb.state(), 'up');
});

test('responses counts per datagram (nginx proxy_responses): two queries sent at once on one session are both answered before it ends', async (t) => {
  const { p, c } = await dnsAndClient(t);
  await Promise.all([c.send(p.port, dnsQuery('svc.test', 7)), c.send(p.port, dnsQuery('svc.test', 8))]);
  const ids = (await c.waitReplies(2)).map((r) => dnsAnswer(r).id).sort();
  assert.deepEqual(ids, [7, 8]);
  await until(() => p.records.length >= 1, 'the session to end');
  // Both went out on one session (the second before the first answer) or on two in turn;
  // either way every query got its answer and no session is left.
  const up = p.records.reduce((n, r) => n + (r.datagramsUp ?? 0), 0);
  const down = p.records.reduce((n, r) => n + (r.datagramsDown ?? 0), 0);
  assert.deepEqual([up, down], [2, 2]);
  assert.ok(p.records.every((r) => r.reason === 'responses_done'));
  assert.equal(p.proxy.udp.sessionCount(), 0);
});
