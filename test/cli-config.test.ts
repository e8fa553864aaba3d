/**
 * The command line goes through the config file's schema and checks: the same values are
 * refused with the same messages (named by the flag), exit code 2, before anything is bound;
 * and log lines name backends as the admin API does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BIN, echoServer, refusedPort, request, runL4lb, spawnL4lb, waitFor } from './support/net.js';

/** A port nothing listens on (bound once, then closed). */
const freePortForTest = refusedPort;
import { parseCli } from '../src/cli/args.js';

/** Runs l4lb in `cwd` to completion. */
async function runIn(cwd: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  const [code] = (await once(child, 'exit')) as [number | null];
  clearTimeout(timer);
  return { code, stdout, stderr };
}

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-cli-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** The message `l4lb check` gives for a file with `yaml`, without the file:line prefix. */
async function fileMessage(dir: string, yaml: string, path: string): Promise<string> {
  const file = join(dir, 'l4lb.yaml');
  writeFileSync(file, yaml);
  const r = await runL4lb(['check', file]);
  assert.equal(r.code, 2, r.stderr);
  const line = r.stderr.split('\n').find((l) => l.includes(`: ${path}: `));
  assert.ok(line, `the file's error for ${path}:\n${r.stderr}`);
  return line.slice(line.indexOf(`: ${path}: `) + path.length + 4);
}

const FILE_BASE = ['listeners:', '  - { listen: "127.0.0.1:0", pool: p }', 'pools:', '  - { name: p, backends: ["127.0.0.1:9"] }'];

test('each flag is refused with the message the config file gets for the same value, exit 2', async (t) => {
  const dir = tempDir(t);
  // [flag args, key path in a file, the file's text with that value]
  const cases: Array<[string[], string, string[]]> = [
    [['--access-log', 'stdout'], 'log.access', [...FILE_BASE, 'log: { access: stdout }']],
    [['--workers', '1025'], 'workers', [...FILE_BASE, 'workers: 1025']],
    [['--retries', '-1'], 'listeners[0].retries', ['listeners:', '  - { listen: "127.0.0.1:0", pool: p, retries: -1 }', ...FILE_BASE.slice(2)]],
    [['--balance', 'leastconn'], 'pools[0].balance', [...FILE_BASE.slice(0, 3), '  - { name: p, balance: leastconn, backends: ["127.0.0.1:9"] }']],
    [['--connect-timeout', '0'], 'listeners[0].timeouts.connect', ['listeners:', '  - { listen: "127.0.0.1:0", pool: p, timeouts: { connect: 0 } }', ...FILE_BASE.slice(2)]],
    [['--log-level', 'verbose'], 'log.level', [...FILE_BASE, 'log: { level: verbose }']],
  ];
  for (const [flags, path, yaml] of cases) {
    const expected = await fileMessage(dir, yaml.join('\n'), path);
    const r = await runIn(dir, [...flags, '127.0.0.1:9']);
    assert.equal(r.code, 2, `${flags.join(' ')}: ${r.stderr}`);
    assert.equal(r.stdout, '', 'nothing was started');
    assert.equal(r.stderr.split('\n')[0], `l4lb: ${flags[0]}: ${expected}`, flags.join(' '));
  }
  assert.equal(existsSync(join(dir, 'stdout')), false, '--access-log stdout created no file');
});

test('--listen and --admin on one address are refused before anything listens', async () => {
  const port = await freePortForTest();
  const r = await runL4lb(['--listen', `127.0.0.1:${port}`, '--admin', `127.0.0.1:${port}`, '127.0.0.1:9']);
  assert.equal(r.code, 2);
  assert.doesNotMatch(r.stdout, /listening on/);
  assert.equal(r.stderr.split('\n')[0], `l4lb: --admin: admin address "127.0.0.1:${port}" clashes with listeners[0] ("127.0.0.1:${port}")`);
});

test('--admin over a config file is checked against the file: a clash names the flag', async (t) => {
  const dir = tempDir(t);
  const port = await freePortForTest();
  const file = join(dir, 'l4lb.yaml');
  writeFileSync(file, [`listeners:`, `  - { listen: "127.0.0.1:${port}", pool: p }`, ...FILE_BASE.slice(2)].join('\n'));
  const r = await runL4lb(['--config', file, '--admin', `127.0.0.1:${port}`]);
  assert.equal(r.code, 2);
  assert.doesNotMatch(r.stdout, /listening on/);
  assert.match(r.stderr, new RegExp(`l4lb\\.yaml: --admin: admin address "127\\.0\\.0\\.1:${port}" clashes with listeners\\[0\\]`));
});

test('the command line takes what the file takes: --workers up to 1024, durations, retries', () => {
  const a = parseCli(['--workers', '300', '--retries', '0', '--idle-timeout', '0', '--connect-timeout', '1m30s', '127.0.0.1:9']);
  assert.equal(a.kind, 'run');
  if (a.kind !== 'run') return;
  assert.equal(a.config.workers, 300);
  assert.equal(a.config.listeners[0].retries, 0);
  assert.equal(a.config.listeners[0].timeouts.idleMs, 0);
  assert.equal(a.config.listeners[0].timeouts.connectMs, 90_000);
  assert.equal(a.config.pools[0].backends[0].name, '127.0.0.1:9');
});

test('log lines name a backend as the admin API does, with its address beside it', async (t) => {
  const dir = tempDir(t);
  const live = await echoServer();
  t.after(() => live.close());
  const dead = await refusedPort();
  const file = join(dir, 'l4lb.yaml');
  writeFileSync(file, [
    'listeners:',
    '  - { name: front, listen: "127.0.0.1:0", pool: p }',
    'pools:',
    '  - name: p',
    '    passive: { consecutiveFailures: 1 }',
    '    backends:',
    `      - { name: s1, address: "127.0.0.1:${live.port}" }`,
    `      - { name: s2, address: "127.0.0.1:${dead}" }`,
  ].join('\n'));
  const l4lb = await spawnL4lb(['--config', file]);
  t.after(() => l4lb.stop('SIGKILL'));
  for (let i = 0; i < 4; i++) assert.equal(await request(l4lb.port, `x${i}`), `x${i}`);
  const lines = () => l4lb.stderr().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  await waitFor(() => lines().filter((l) => l.msg === 'access').length === 4, 5000, 'four access lines');
  for (const a of lines().filter((l) => l.msg === 'access')) {
    assert.equal(a.backend, 's1');
    assert.equal(a.backendAddress, `127.0.0.1:${live.port}`);
  }
  const failure = lines().find((l) => l.code === 'L4LB_ERR_CONNECT_REFUSED' && l.msg !== 'access');
  assert.ok(failure, 'the connect failure was logged');
  assert.equal(failure.backend, 's2');
  assert.equal(failure.backendAddress, `127.0.0.1:${dead}`);
  const ejected = lines().find((l) => /^ejected/.test(String(l.msg)));
  assert.ok(ejected, 'the ejection was logged');
  assert.equal(ejected.backend, 's2');
  assert.equal(ejected.backendAddress, `127.0.0.1:${dead}`);
});
