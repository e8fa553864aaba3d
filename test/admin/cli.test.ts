/**
 * The admin server as the `l4lb` command starts it: the `admin on http://HOST:PORT` line
 * right after the `listening on` lines, a working server behind it, a clean stop, and the
 * refusal to serve off loopback without a token.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TIMEOUT } from './helpers.js';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { echoServer, runL4lb, spawnL4lb, waitFor, type CliProcess } from '../support/net.js';

/** Waits for the `admin on` line and returns its URL. */
async function adminUrl(p: CliProcess): Promise<string> {
  await waitFor(() => p.stdout.some((l) => l.startsWith('admin on ')) || p.child.exitCode !== null, 5000, 'the admin line');
  const line = p.stdout.find((l) => l.startsWith('admin on '));
  assert.ok(line, `an "admin on" line (stdout: ${JSON.stringify(p.stdout)}, stderr: ${p.stderr()})`);
  return line.slice('admin on '.length);
}

test(
  'l4lb --admin 127.0.0.1:0 BACKEND prints "admin on http://127.0.0.1:PORT" after the listening line',
  TIMEOUT,
  async (t) => {
    const e = await echoServer();
    t.after(() => e.close());
    const p = await spawnL4lb(['--admin', '127.0.0.1:0', `127.0.0.1:${e.port}`]);
    t.after(() => p.stop('SIGKILL'));
    const url = await adminUrl(p);
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(p.stdout[0], /^listening on /);
    assert.equal(p.stdout[1], `admin on ${url}`);
    const r = await fetch(`${url}/healthz`);
    assert.equal(r.status, 200);
  },
);

test('from a config file, "admin on http://127.0.0.1:PORT" follows the listening lines, serves, and stops with l4lb', TIMEOUT, async (t) => {
  const e = await echoServer();
  const dir = await mkdtemp(join(tmpdir(), 'l4lb-cli-admin-'));
  t.after(async () => {
    await e.close();
    await rm(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'l4lb.yaml');
  await writeFile(
    file,
    `admin: { listen: 127.0.0.1:0 }\nlog: { level: warn, access: "off" }\nlisteners:\n  - { name: a, listen: 127.0.0.1:0, pool: p }\n  - { name: b, listen: 127.0.0.1:0, pool: p }\npools: [{ name: p, backends: [127.0.0.1:${e.port}] }]\n`,
  );
  const p = await spawnL4lb(['--config', file], { listeners: 2 });
  t.after(() => p.stop('SIGKILL'));
  const url = await adminUrl(p);
  assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.match(p.stdout[0], /^listening on 127\.0\.0\.1:\d+$/);
  assert.match(p.stdout[1], /^listening on 127\.0\.0\.1:\d+$/);
  assert.equal(p.stdout[2], `admin on ${url}`);
  const status = (await (await fetch(`${url}/api/v1/status`)).json()) as { listeners: Array<{ name: string }>; pools: Array<{ name: string }> };
  assert.deepEqual(status.listeners.map((l) => l.name), ['a', 'b']);
  assert.deepEqual(status.pools.map((x) => x.name), ['p']);
  assert.equal(await p.stop('SIGTERM'), 0, 'a clean stop closes the admin server too');
});

test('l4lb --admin 0.0.0.0:PORT without a token refuses to start, before listening anywhere', TIMEOUT, async (t) => {
  const e = await echoServer();
  t.after(() => e.close());
  // As a config file with that admin section is refused: exit 2, the same message.
  const r = await runL4lb(['--admin', '0.0.0.0:19999', `127.0.0.1:${e.port}`], { env: { L4LB_ADMIN_TOKEN: '' } });
  assert.equal(r.code, 2);
  assert.equal(r.stderr.split('\n')[0], 'l4lb: $L4LB_ADMIN_TOKEN: required when admin.listen is not a loopback address');
  assert.doesNotMatch(r.stdout, /listening on/);
});
