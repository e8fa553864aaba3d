/**
 * @module test/library/pack — the package as npm ships it: `npm pack`, then `npm install
 * <tarball>` in an empty project gives a working `l4lb` command and an importable library.
 *
 * The tarball must carry the compiled code (`files` has dist/src; `prepare` builds it on
 * `npm pack` and on `npm install` in a clone). Here the pack skips `prepare` because `npm
 * test` has just built dist/; `L4LB_PACK_BUILD=1` runs it as a user would. The install is
 * offline, nothing from the network: the project installing the tarball gets a lockfile
 * made of this repository's locked runtime dependencies, so `npm ci --offline` takes them
 * from npm's cache (filled by this repository's own `npm ci`). Resolving the versions is
 * npm's job and is not what this checks; what the tarball contains and how it installs is.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { echoServer, ROOT } from '../support/net.js';
import { logLines, runReadmeExample } from '../support/readme-example.js';

const run = promisify(execFile);
/** npm pack and npm install on a loaded machine. */
const NPM_TIMEOUT_MS = 180_000;

test('npm pack + npm install <tarball> gives a working l4lb command and an importable library', { timeout: 2 * NPM_TIMEOUT_MS }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-pack-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const npmEnv = { ...process.env, npm_config_update_notifier: 'false', npm_config_fund: 'false', npm_config_audit: 'false' };

  const build = process.env.L4LB_PACK_BUILD === '1';
  const packed = await run('npm', ['pack', '--json', '--pack-destination', dir, ...(build ? [] : ['--ignore-scripts'])], {
    cwd: ROOT, env: npmEnv, timeout: NPM_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024,
  });
  // npm prints the prepare script's output before the JSON.
  const info = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as { filename: string; files: { path: string }[] }[];
  const files = new Set(info[0].files.map((f) => f.path));
  for (const f of ['package.json', 'bin/l4lb.js', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js', 'src/admin/assets/app.js']) {
    assert.ok(files.has(f), `the tarball has ${f}`);
  }
  assert.ok(![...files].some((f) => f.startsWith('dist/test/') || f.startsWith('node_modules/')), 'no tests or node_modules in the tarball');

  const app = join(dir, 'app');
  mkdirSync(app);
  writeAppProject(app, `file:../${info[0].filename}`);
  await run('npm', ['ci', '--offline', '--no-audit', '--no-fund'], { cwd: app, env: npmEnv, timeout: NPM_TIMEOUT_MS });

  const pkg = readJson(join(ROOT, 'package.json')) as { version: string };
  const bin = join(app, 'node_modules', '.bin', 'l4lb');
  const version = await run(bin, ['--version'], { cwd: app });
  assert.match(version.stdout, new RegExp(pkg.version.replaceAll('.', '\\.')));
  const checked = await run(bin, ['check', join(app, 'node_modules', 'l4lb', 'examples', 'minimal.yaml')], { cwd: app });
  assert.match(checked.stdout, /minimal\.yaml: OK \(1 listener\(s\), 1 pool\(s\)\)/);

  const backend = await echoServer();
  t.after(() => backend.close());
  const example = await runReadmeExample(app, backend.port);
  assert.equal(example.code, 0, `the README example failed against the installed package:\n${example.stderr}`);
  assert.equal(logLines(example.stderr).filter((l) => l.msg === 'config reloaded').length, 1);
});

function readJson(path: string): unknown {
  return JSON.parse(readFileSync(path, 'utf8'));
}

interface LockEntry {
  dev?: boolean;
  [key: string]: unknown;
}

/** An ESM project that depends on the tarball `spec`, locked to this repository's runtime dependencies. */
function writeAppProject(app: string, spec: string): void {
  const pkg = readJson(join(ROOT, 'package.json')) as { version: string; dependencies: Record<string, string>; engines: Record<string, string> };
  const lock = readJson(join(ROOT, 'package-lock.json')) as { packages: Record<string, LockEntry> };
  const packages: Record<string, unknown> = {
    '': { name: 'app', version: '1.0.0', dependencies: { l4lb: spec } },
    'node_modules/l4lb': { version: pkg.version, resolved: spec, dependencies: pkg.dependencies, bin: { l4lb: 'bin/l4lb.js' }, engines: pkg.engines },
  };
  for (const [path, entry] of Object.entries(lock.packages)) if (path !== '' && !entry.dev) packages[path] = entry;
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module', dependencies: { l4lb: spec } }));
  writeFileSync(join(app, 'package-lock.json'), JSON.stringify({ name: 'app', version: '1.0.0', lockfileVersion: 3, requires: true, packages }));
}
