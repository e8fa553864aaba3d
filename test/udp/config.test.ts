/**
 * UDP configuration: defaults, what a UDP listener refuses (exit 2 with file, path and reason),
 * and the one-line `l4lb --udp` command.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { parseConfigText } from '../../src/config/load.js';
import { ConfigError } from '../../src/errors.js';
import { BIN, runL4lb } from '../support/net.js';
import { UdpClient, udpEcho } from './support.js';

const base = (listener: string, pool = '') => `
listeners:
  - listen: 127.0.0.1:5353
    protocol: udp
    pool: p
${listener}
pools:
  - name: p
    backends: [127.0.0.1:53]
${pool}
`;

test('a UDP listener gets the UDP defaults: 30s idle timeout, no responses limit, 5s response timeout, sessions', () => {
  const c = parseConfigText(base(''), 'u.yaml', {});
  const l = c.listeners[0];
  assert.equal(l.protocol, 'udp');
  assert.equal(l.timeouts.idleMs, 30_000);
  assert.deepEqual(l.udp, { responses: 0, responseTimeoutMs: 5_000, perDatagram: false });
  const tcp = parseConfigText(base('').replace('    protocol: udp\n', ''), 't.yaml', {});
  assert.equal(tcp.listeners[0].protocol, undefined);
  assert.equal(tcp.listeners[0].timeouts.idleMs, 600_000);
  assert.equal(tcp.listeners[0].udp, undefined);
});

test('TCP and UDP listeners may share a port number; two UDP listeners on one address clash', () => {
  const both = `
listeners:
  - { name: t, listen: 127.0.0.1:5353, pool: p }
  - { name: u, listen: 127.0.0.1:5353, pool: p, protocol: udp }
pools:
  - { name: p, backends: [127.0.0.1:53] }
`;
  assert.equal(parseConfigText(both, 'b.yaml', {}).listeners.length, 2);
  assert.throws(
    () => parseConfigText(both.replace('{ name: t, listen: 127.0.0.1:5353, pool: p }', '{ name: t, listen: 127.0.0.1:5353, pool: p, protocol: udp }'), 'c.yaml', {}),
    (err: unknown) => err instanceof ConfigError && /listeners\[1\]\.listen: .*clashes with listeners\[0\]/.test(err.message),
  );
});

const BAD: Array<[string, string, RegExp]> = [
  ['tls on a UDP listener', base('    tls: { mode: passthrough }'), /listeners\[0\]\.tls: not allowed with protocol: udp/],
  ['acceptProxy on a UDP listener', base('    acceptProxy: { trusted: [127.0.0.1] }'), /listeners\[0\]\.acceptProxy: not allowed with protocol: udp/],
  ['overLimit: queue on a UDP listener', base('    overLimit: queue'), /listeners\[0\]\.overLimit: .*dropped, never queued/],
  ['perDatagram with responses', base('    udp: { perDatagram: true, responses: 1 }'), /listeners\[0\]\.udp\.responses: perDatagram expects no reply/],
  ['a negative responses count', base('    udp: { responses: -1 }'), /listeners\[0\]\.udp\.responses: must be at least 0/],
  ['an unknown udp key', base('    udp: { response: 1 }'), /listeners\[0\]\.udp\.response: unknown key "response" \(did you mean "responses"\?\)/],
  ['a pool that sends PROXY headers', base('', '    proxyProtocol: v2'), /listeners\[0\]\.pool: pool "p" sends a PROXY header/],
  ['udp settings on a TCP listener', base('    udp: { responses: 1 }').replace('    protocol: udp\n', ''), /listeners\[0\]\.udp: needs protocol: udp/],
  ['a datagram rate on a TCP listener', base('    sourceLimits: { datagramsPerSecond: 5 }').replace('    protocol: udp\n', ''), /sourceLimits\.datagramsPerSecond: applies to protocol: udp/],
  ['datagramBurst without a rate', base('    sourceLimits: { datagramBurst: 5 }'), /sourceLimits\.datagramBurst: needs datagramsPerSecond/],
  ['a udp health check with nothing to send', base('', '    healthCheck: { type: udp }'), /pools\[0\]\.healthCheck\.type: a udp check needs send or sendHex/],
  ['an unknown protocol', base('').replace('protocol: udp', 'protocol: sctp'), /listeners\[0\]\.protocol: must be one of tcp, udp/],
];

for (const [what, yaml, message] of BAD) {
  test(`l4lb check rejects ${what} with exit 2, the file, the path and the reason`, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'l4lb-udp-check-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, yaml);
    const r = await runL4lb(['check', file]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /L4LB_ERR_CONFIG_INVALID/);
    assert.match(r.stderr, /bad\.yaml:\d+: /);
    assert.match(r.stderr, message);
  });
}

test('l4lb --udp HOST:PORT BACKEND... balances datagrams from the command line', async (t) => {
  const a = await udpEcho('A:');
  const b = await udpEcho('B:');
  t.after(() => Promise.all([a.close(), b.close()]));
  const child = spawn(process.execPath, [BIN, '--udp', '127.0.0.1:0', '--access-log', 'off', `127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  const [line] = (await once(createInterface({ input: child.stdout }), 'line')) as [string];
  const m = /^listening on 127\.0\.0\.1:(\d+) udp$/.exec(line);
  assert.ok(m, line);
  const port = Number(m[1]);
  const tags: string[] = [];
  for (let i = 0; i < 4; i++) {
    const c = await UdpClient.open();
    await c.send(port, 'q');
    tags.push((await c.waitReplies(1))[0].toString());
    await c.close();
  }
  assert.deepEqual([...tags].sort(), ['A:q', 'A:q', 'B:q', 'B:q']);
  assert.notEqual(tags[0], tags[1]);
  const bad = await runL4lb(['--udp', '127.0.0.1:0', '--listen', '127.0.0.1:0', '127.0.0.1:1']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /either --listen \(TCP\) or --udp \(UDP\)/);
});
