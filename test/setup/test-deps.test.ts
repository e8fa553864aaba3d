/**
 * scripts/test-deps.mjs, which `npm test` runs first: with a PATH that hides a tool (nothing is
 * uninstalled), it stops at once with one line naming the package and the command that installs
 * it; it never tries to install without apt-get; with everything present it is silent.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from '../support/net.js';

const SCRIPT = join(ROOT, 'scripts', 'test-deps.mjs');

/** A PATH directory with everything of /usr/bin and /bin except `hidden`. */
function pathWithout(t: { after: (fn: () => void) => void }, hidden: string[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-path-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const seen = new Set<string>();
  for (const from of ['/usr/bin', '/bin']) {
    for (const name of readdirSync(from)) {
      if (hidden.includes(name) || seen.has(name)) continue;
      seen.add(name);
      symlinkSync(join(from, name), join(dir, name));
    }
  }
  return dir;
}

function run(path: string, args: string[] = [], script = SCRIPT) {
  const started = performance.now();
  const r = spawnSync(process.execPath, [script, ...args], { env: { ...process.env, PATH: path }, encoding: 'utf8', timeout: 60_000 });
  return { ...r, ms: performance.now() - started };
}

const SUDO = process.getuid?.() === 0 ? '' : 'sudo ';

test('a hidden tool stops the check at once with one line: the package and the command that installs it', (t) => {
  // apt-get hidden too: the "cannot install" path even when the tests run as root.
  const r = run(pathWithout(t, ['dig', 'apt-get']));
  assert.equal(r.status, 1);
  assert.equal(r.stdout, '');
  assert.equal(
    r.stderr,
    `npm test needs Debian packages that are missing: bind9-dnsutils; install them with: ${SUDO}apt-get update && ${SUDO}apt-get install -y --no-install-recommends bind9-dnsutils\n`,
  );
});

test('several missing tools are named once each, in the list order; --check never installs', (t) => {
  // apt-get stays on the PATH: --check alone keeps the script from using it.
  const r = run(pathWithout(t, ['redis-server', 'chromium', 'dig']), ['--check']);
  assert.equal(r.status, 1);
  assert.equal(r.stderr.split('\n').length, 2, 'one line');
  assert.match(r.stderr, /missing: bind9-dnsutils chromium redis-server; install them with: .*apt-get install -y --no-install-recommends bind9-dnsutils chromium redis-server\n$/);
  assert.doesNotMatch(r.stderr, /installing/);
});

test('the benchmark packages are checked only with --bench', (t) => {
  const path = pathWithout(t, ['wrk', 'apt-get']);
  assert.equal(run(path).status, 0, 'npm test does not need wrk');
  const r = run(path, ['--bench']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /^the tests and benchmark need Debian packages that are missing: wrk; /);
});

test('with every tool present the check is silent and exits 0', () => {
  const r = run(process.env.PATH ?? '');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stderr, '');
});

test('npm test runs the check before building: a hidden tool stops it before tsc', (t) => {
  const path = pathWithout(t, ['dig', 'apt-get']);
  const r = spawnSync('npm', ['test'], { cwd: ROOT, env: { ...process.env, PATH: path }, encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /npm test needs Debian packages that are missing: bind9-dnsutils; install them with: /);
  assert.doesNotMatch(r.stdout + r.stderr, /error TS|ℹ tests|ℹ pass/, 'neither tsc nor a test ran');
});
