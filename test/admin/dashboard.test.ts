/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core; no browser
 * is downloaded): it shows every backend, follows live connections through the event
 * stream, drains a backend from its button (asking for the token), and reads well at
 * laptop and phone widths. Screenshots go to test-artifacts/ (gitignored).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { request, ROOT } from '../support/net.js';
import { newPage } from '../support/browser.js';
import { call, holdConnections, startStack, TIMEOUT } from './helpers.js';

const ARTIFACTS = join(ROOT, 'test-artifacts');
const TOKEN = 'dashboard-token';

/** The little of the DOM these page functions use (the project compiles without lib "dom"). */
interface Dom {
  querySelector(sel: string): { textContent: string | null; classList: { contains(c: string): boolean } } | null;
  querySelectorAll(sel: string): ArrayLike<{ textContent: string | null }> & Iterable<{ textContent: string | null }>;
  documentElement: { scrollWidth: number; clientWidth: number };
}

/** `globalThis` in the page. Page functions are serialised and run there, so they can
 * only use what they spell out inline: `(globalThis as unknown as Page).document`. */
type Page = { document: Dom; sessionStorage: { getItem(k: string): string | null } };

test('the dashboard shows every backend, live connection counts, and drains a backend from its button', TIMEOUT, async (t) => {
  const st = await startStack({ backends: 3, token: TOKEN, admin: { tickMs: 250 } });
  t.after(() => st.close());
  await mkdir(ARTIFACTS, { recursive: true });

  const page = await newPage(t, { viewport: { width: 1280, height: 800 } });
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    // The first status request is refused until the token is entered: that one is expected.
    if (msg.type() === 'error' && !/401/.test(msg.text())) problems.push(`console: ${msg.text()}`);
  });
  const prompts: string[] = [];
  page.on('dialog', (d) => {
    prompts.push(d.message());
    void d.accept(TOKEN);
  });

  // (1) Every backend is on the page, up.
  await page.goto(st.url);
  for (const name of st.names) {
    const badge = page.locator(`tr.backend[data-backend="${name}"] .state`);
    await badge.waitFor();
    assert.equal(await badge.textContent(), 'up', `${name} is shown up`);
  }
  assert.equal(prompts.length, 1, 'the page asked for the token once');
  assert.match(prompts[0], /token/i);
  assert.equal(await page.evaluate(() => (globalThis as unknown as Page).sessionStorage.getItem('l4lb-admin-token')), TOKEN);

  // (2) The active count follows connections held through the proxy.
  const before = Number(await page.locator('#total-active').textContent());
  assert.equal(before, 0);
  for (let i = 0; i < 12; i++) await request(st.port, `req ${i}`);
  const held = await holdConnections(st.port, 4);
  t.after(() => held.forEach((s) => s.destroy()));
  await page.waitForFunction(() => (globalThis as unknown as Page).document.querySelector('#total-active')?.textContent === '4');
  await page.waitForFunction(() => (globalThis as unknown as Page).document.querySelector('.listener dd.active')?.textContent === '4');
  const perRow = await page.$$eval('tr.backend td.cell-active', (tds) => tds.map((td) => Number(td.textContent)));
  assert.equal(perRow.reduce((a, b) => a + b, 0), 4, 'the rows add up to the held connections');

  // Some background traffic from here on, so the charts have something to draw.
  let traffic = true;
  const background = (async () => {
    for (let i = 0; traffic; i++) {
      await request(st.port, `req ${i} `.repeat(20 + (i % 7) * 30)).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 20 + (i % 5) * 15));
    }
  })();
  const stopTraffic = async () => {
    traffic = false;
    await background;
  };
  t.after(stopTraffic);

  // (3) Drain from the button: the page and the API agree.
  const target = st.names[1];
  const row = page.locator(`tr.backend[data-backend="${target}"]`);
  await row.locator('button[data-action="drain"]').click();
  await page.waitForFunction((name) => {
    const el = (globalThis as unknown as Page).document.querySelector(`tr.backend[data-backend="${name}"] .state`);
    return el?.textContent === 'draining' && el.classList.contains('state-draining');
  }, target);
  assert.equal(await row.locator('button[data-action="drain"]').isDisabled(), true);
  assert.equal(await row.locator('button[data-action="enable"]').isEnabled(), true);
  const api = await call(st.url, '/api/v1/status', { token: TOKEN });
  const b = api.json.pools[0].backends.find((x: { name: string }) => x.name === target);
  assert.equal(b.state, 'draining');
  await page.waitForFunction(() => [...(globalThis as unknown as Page).document.querySelectorAll('#events li')].some((li) => /draining/.test(li.textContent ?? '')));
  // The charts have been drawn from live rates.
  await page.waitForFunction(() => (globalThis as unknown as Page).document.querySelectorAll('#chart-cps polyline').length === 1);
  assert.equal(await page.locator('#live').textContent(), 'live');

  // (4) Screenshots at laptop and phone widths; nothing spills sideways on the phone.
  await page.waitForTimeout(1500); // a few more samples in the charts
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-laptop.png'), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.waitForTimeout(300);
  const overflow = await page.evaluate(() => (globalThis as unknown as Page).document.documentElement.scrollWidth - (globalThis as unknown as Page).document.documentElement.clientWidth);
  assert.ok(overflow <= 0, `no horizontal scrolling at phone width (overflow ${overflow}px)`);
  const buttonVisible = await page.locator(`tr.backend[data-backend="${target}"] button[data-action="enable"]`).isVisible();
  assert.equal(buttonVisible, true, 'the action buttons stay visible on a phone');
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });
  await stopTraffic();

  assert.deepEqual(problems, [], 'no script errors or CSP violations');
});
