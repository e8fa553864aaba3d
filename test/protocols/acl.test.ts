/**
 * ACLs over real sockets from different loopback sources: first match wins, the default
 * action, IPv6, and what a denied connection costs — no backend connection, one counter, and
 * a rate-limited warning.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { echoServer, waitFor } from '../support/net.js';
import { assertCountsBalance, closed, sleep, startL4lb, tempDir } from './support.js';

/**
 * Sends "ping" from `localAddress` and returns what came back: "ping" through the echo
 * backend, "" when l4lb closed the connection.
 */
async function ping(port: number, opts: { localAddress?: string; host?: string } = {}): Promise<string> {
  const c = net.connect({ port, host: opts.host ?? '127.0.0.1', localAddress: opts.localAddress });
  c.on('error', () => {}); // a refused client may see a reset
  let reply = '';
  c.on('data', (b: Buffer) => (reply += b.toString()));
  await once(c, 'connect');
  c.end('ping');
  await closed(c);
  return reply;
}

test('ACL rules decide by client address, first match wins', async (t) => {
  const dir = await tempDir(t);
  const backend = await echoServer();
  t.after(() => backend.close());
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - name: first-match
    listen: 127.0.0.1:0
    pool: echo
    acl: [ { deny: 127.0.0.2/32 }, { allow: 127.0.0.0/8 } ]
    aclDefault: deny
  - name: default-deny
    listen: 127.0.0.1:0
    pool: echo
    acl: [ { allow: 127.0.0.3 } ]
    aclDefault: deny
  - name: v6-deny
    listen: '[::1]:0'
    pool: echo
    acl: [ { deny: ::1/128 } ]
  - name: v6-allow
    listen: '[::1]:0'
    pool: echo
    acl: [ { allow: 127.0.0.0/8 }, { allow: ::1/128 } ]
    aclDefault: deny
pools:
  - { name: echo, backends: [127.0.0.1:${backend.port}] }
`,
  );

  const cases: { listener: number; from?: string; host?: string; allowed: boolean; what: string }[] = [
    { listener: 0, from: '127.0.0.2', allowed: false, what: 'a /32 deny before a /8 allow denies 127.0.0.2' },
    { listener: 0, from: '127.0.0.3', allowed: true, what: 'the /8 allow after it admits 127.0.0.3' },
    { listener: 1, from: '127.0.0.2', allowed: false, what: 'no matching rule falls to aclDefault deny' },
    { listener: 1, from: '127.0.0.3', allowed: true, what: 'a single address as a rule admits that address' },
    { listener: 2, host: '::1', allowed: false, what: 'an IPv6 ::1/128 deny denies ::1' },
    { listener: 3, host: '::1', allowed: true, what: 'an IPv6 ::1/128 allow admits ::1 under a default deny' },
  ];
  for (const c of cases) {
    await t.test(c.what, async () => {
      const l = l4.listener(c.listener);
      const accepted = backend.accepted;
      const rejected = l.stats.rejected.get('acl') ?? 0;
      const reply = await ping(l4.port(c.listener), { localAddress: c.from, host: c.host });
      if (c.allowed) {
        assert.equal(reply, 'ping');
        assert.equal(backend.accepted, accepted + 1);
        assert.equal(l.stats.rejected.get('acl') ?? 0, rejected);
      } else {
        assert.equal(reply, '');
        assert.equal(backend.accepted, accepted, 'no backend connection for a denied client');
        assert.equal(l.stats.rejected.get('acl'), rejected + 1);
        const w = l4.log.warns('acl').filter((x) => x.listener === l.config.name);
        assert.equal(w.at(-1)?.client, c.from ?? '::1');
      }
    });
  }
});

test('a flood of denied connections is logged at most ten lines a second, with a suppressed count', async (t) => {
  const dir = await tempDir(t);
  const backend = await echoServer();
  t.after(() => backend.close());
  const l4 = await startL4lb(
    t,
    dir,
    `
listeners:
  - { name: guarded, listen: 127.0.0.1:0, pool: echo, acl: [ { deny: 127.0.0.2 } ] }
pools:
  - { name: echo, backends: [127.0.0.1:${backend.port}] }
`,
  );
  const N = 100;
  const t0 = Date.now();
  for (let i = 0; i < N; i += 20) {
    const replies = await Promise.all(Array.from({ length: 20 }, () => ping(l4.port(), { localAddress: '127.0.0.2' })));
    assert.deepEqual(new Set(replies), new Set(['']));
  }
  const seconds = Math.ceil((Date.now() - t0) / 1000);
  const stats = l4.listener().stats;
  await waitFor(() => stats.rejected.get('acl') === N, 5000, 'every denial counted');
  const burst = l4.log.warns('acl').length;
  assert.ok(burst >= 1 && burst <= 10 * seconds, `${burst} warning lines for ${N} denials in ${seconds}s`);

  // The next window's first line reports how many were held back before it.
  await sleep(1100);
  assert.equal(await ping(l4.port(), { localAddress: '127.0.0.2' }), '');
  const lines = l4.log.warns('acl');
  assert.equal(lines.length, burst + 1);
  const reported = lines.reduce((n, l) => n + 1 + (l.suppressed ?? 0), 0);
  assert.equal(reported, N + 1, 'every denial is either a line or counted as suppressed');
  assert.ok((lines.at(-1)!.suppressed ?? 0) > 0, 'the suppressed count is reported');
  assert.equal(backend.accepted, 0);
  assertCountsBalance(l4.listener());
});
