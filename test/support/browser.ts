/**
 * Debian's Chromium, headless, for the dashboard tests: never a browser playwright downloads.
 * `newPage(t)` launches it, closes it when the test ends, and gives a page with a 10 s timeout
 * (and the viewport asked for, else playwright's 1280×720).
 */
import type { TestContext } from 'node:test';
import { chromium, type Page } from 'playwright-core';

const CHROMIUM = '/usr/bin/chromium';
const LAUNCH_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'];

export async function newPage(t: TestContext, o: { viewport?: { width: number; height: number } } = {}): Promise<Page> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: LAUNCH_ARGS });
  t.after(() => browser.close());
  const page = await browser.newPage(o.viewport && { viewport: o.viewport });
  page.setDefaultTimeout(10_000);
  return page;
}
