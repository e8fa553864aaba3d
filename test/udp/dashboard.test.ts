/**
 * A UDP listener on the dashboard, in a real browser (Debian's chromium through playwright-core):
 * its card says udp and shows sessions, dropped datagrams and datagrams each way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newPage } from '../support/browser.js';
import { startProxyAdmin } from '../../src/admin/server.js';
import { UdpClient, proxyFrom, udpConfig, udpEcho } from './support.js';


test('the dashboard shows a UDP listener with its sessions, drops and datagrams', { timeout: 60_000 }, async (t) => {
  const echo = await udpEcho();
  t.after(() => echo.close());
  const p = await proxyFrom(udpConfig([echo]));
  t.after(() => p.close());
  const admin = await startProxyAdmin(p.proxy, { host: '127.0.0.1', port: 0, persist: false }, { tickMs: 250 });
  t.after(() => admin.close());
  const clients = await Promise.all([1, 2, 3].map(() => UdpClient.open()));
  t.after(() => Promise.all(clients.map((c) => c.close())));
  for (const c of clients) await c.send(p.port, 'hello');
  await Promise.all(clients.map((c) => c.waitReplies(1)));
  await clients[0].send(p.port, Buffer.alloc(0)); // one drop

  const page = await newPage(t);
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  await page.goto(admin.url);
  const card = page.locator('.card.listener[data-listener="u"]');
  await card.waitFor();
  await page.waitForFunction(() => {
    const g = globalThis as unknown as { document: { querySelector(s: string): { textContent: string | null } | null } };
    return /Dropped\s*1/.test(g.document.querySelector('.card.listener[data-listener="u"]')?.textContent ?? '');
  });
  const text = (await card.textContent()) ?? '';
  assert.match(text, /u · udp 127\.0\.0\.1:\d+/);
  assert.match(text, /Sessions\s*3/);
  assert.match(text, /Sessions total\s*3/);
  assert.match(text, /Dropped\s*1/);
  assert.match(text, /Datagrams in \/ out\s*3 \/ 3/);
  assert.deepEqual(problems, []);
});
