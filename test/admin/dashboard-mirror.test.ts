/**
 * The dashboard shows a pool's mirror (docs/mirroring.md) in a real browser: where it goes, at
 * which percent, how many connections were mirrored, and the drops by reason.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage } from '../support/browser.js';
import { refusedPort, request } from '../support/net.js';
import { startStack, TIMEOUT } from './helpers.js';


test('the dashboard shows a pool’s mirror: target, percent, connections mirrored and drops by reason', TIMEOUT, async (t) => {
  const dead = await refusedPort();
  const st = await startStack({
    backends: 1,
    tweak(cfg) {
      const main = cfg.pools[0];
      main.mirror = { pool: 'shadow', percent: 100, bufferSize: 1024 * 1024 };
      cfg.pools.push({ ...main, name: 'shadow', mirror: undefined, backends: [{ ...main.backends[0], name: 'dead', port: dead }] });
    },
  });
  t.after(() => st.close());
  for (let i = 0; i < 3; i++) assert.equal(await request(st.port, `req ${i}`), `req ${i}`);

  const page = await newPage(t);
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  await page.goto(st.url);
  const line = page.locator(`.pool[data-pool="${st.proxy.config.pools[0].name}"] .pool-mirror`);
  await line.waitFor();
  await page.waitForFunction(() => /3 mirrored/.test((globalThis as unknown as { document: { querySelector(s: string): { textContent: string | null } | null } }).document.querySelector('.pool-mirror')?.textContent ?? ''));
  const text = (await line.textContent()) ?? '';
  assert.match(text, /^mirror → shadow 100% · 3 mirrored \(0 open\) · 0 B copied · 3 dropped \(connect_failed 3\)$/);
  assert.equal(await page.locator('.pool[data-pool="shadow"] .pool-mirror').textContent(), '', 'no mirror on the shadow pool');
  assert.deepEqual(problems, []);
});
