// Runs every compiled test file (dist/test/**/*.test.js) with Node's test runner.
// Node 20's --test does not expand globs, so the file list is built here.
// Usage: node scripts/run-tests.mjs [substring ...]  (filters files by path substring)
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

function walk(dir, out) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p, out);
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const filters = process.argv.slice(2);
const files = walk('dist/test', [])
  .concat(walk('dist/src', []))
  .filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no test files matched');
  process.exit(1);
}
// Skipped tests are listed at the end; under CI (CI set) a skip fails the run.
const skipDir = mkdtempSync(join(tmpdir(), 'l4lb-skips-'));
const skipFile = join(skipDir, 'skipped.txt');
const args = [
  '--test',
  '--test-reporter=spec', '--test-reporter-destination=stdout',
  `--test-reporter=${new URL('./skip-reporter.mjs', import.meta.url).href}`, `--test-reporter-destination=${skipFile}`,
  '--test-concurrency=2',
  ...files,
];
const child = spawn(process.execPath, args, { stdio: 'inherit' });
child.on('exit', (code, signal) => {
  let skipped = [];
  try {
    skipped = readFileSync(skipFile, 'utf8').split('\n').filter(Boolean);
  } catch {
    // no file: the runner died before any test reported
  }
  rmSync(skipDir, { recursive: true, force: true });
  let status = signal ? 1 : code ?? 1;
  if (skipped.length > 0) {
    const ci = Boolean(process.env.CI);
    console.error(`run-tests: ${skipped.length} test(s) skipped${ci ? ' — CI runs every test, so this run fails' : ''}:`);
    for (const s of skipped) console.error(`  ${s}`);
    if (ci && status === 0) status = 1;
  }
  process.exit(status);
});
