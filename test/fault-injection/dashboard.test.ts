/**
 * Injected faults cannot go unnoticed on the dashboard: a banner (in a real browser, Debian's
 * chromium through playwright-core) names the listener and its toxics while any is set, and
 * goes away with them.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage } from '../support/browser.js';
import { startStack, TIMEOUT } from '../admin/helpers.js';
import { parseToxic } from '../../src/faults/toxics.js';


test('the dashboard shows a banner naming every injected fault, and hides it once they are removed', TIMEOUT, async (t) => {
  const st = await startStack({
    backends: 1,
    admin: { tickMs: 250 },
    tweak: (cfg) => {
      cfg.listeners[0].faults = [parseToxic({ name: 'slow', type: 'latency', toxicity: 0.25, attributes: { latency: 100 } })];
    },
  });
  t.after(() => st.close());
  const page = await newPage(t);
  await page.goto(st.url);
  const banner = page.locator('#fault-banner');
  await banner.waitFor({ state: 'visible' });
  const text = (await banner.textContent()) ?? '';
  assert.match(text, /Fault injection active/);
  assert.match(text, /default: slow \(latency downstream, 25%\)/);
  st.proxy.faults.get('default')!.replace([]);
  await banner.waitFor({ state: 'hidden' });
});
