/**
 * @module test/library/readme-example — the README's library example runs as written, with
 * `import ... from 'l4lb'` resolving to this package (as after `npm install l4lb`).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { echoServer, ROOT } from '../support/net.js';
import { logLines, runReadmeExample } from '../support/readme-example.js';

test("the README's library example runs as written: reload from a file naming the bound port keeps the listener", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'l4lb-readme-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(ROOT, join(dir, 'node_modules', 'l4lb'), 'dir');
  const backend = await echoServer();
  t.after(() => backend.close());

  const run = await runReadmeExample(dir, backend.port);
  assert.equal(run.code, 0, `the example failed:\n${run.stderr}`);
  const reloaded = logLines(run.stderr).filter((l) => l.msg === 'config reloaded');
  assert.equal(reloaded.length, 1, run.stderr);
  assert.deepEqual(reloaded[0].listeners, [`127.0.0.1:${run.port}`]);
  assert.equal(reloaded[0].opened, 0, 'the listener on the bound port was kept, not bound again');
  assert.equal(reloaded[0].retired, 0);
});
