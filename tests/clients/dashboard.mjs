// Drives the dashboard at / in Debian's headless Chromium (playwright-core, no browser
// download). Usage: node dashboard.mjs <base url> <token> <from> <to> <screenshot.png>
// Prints JSON lines: {"drawn": …} with every number the page shows, {"ready": true};
// then, for each line "wait-orders" read on stdin, {"moved": ms, "orders": n} once the
// ORDERS card changes (or {"moved": null} after 5 s). Ends on stdin's end.
import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';

const [base, token, from, to, shot] = process.argv.slice(2);
const print = (value) => process.stdout.write(`${JSON.stringify(value)}\n`);
const fs = await import('node:fs');
const browser = await chromium.launch({
  executablePath: ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => fs.existsSync(p)),
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1'],
});
const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
const started = Date.now();
await page.goto(`${base}/#token=${encodeURIComponent(token)}&from=${from}&to=${to}`);
await page.waitForFunction(() => document.body.dataset.drawn === 'yes', null, { timeout: 30000 });
const navigationToDrawn = Date.now() - started;
// Live subscriptions are connected once the indicator says so.
await page.waitForFunction(() => document.getElementById('live').dataset.state === 'on', null, { timeout: 10000 });
const drawn = await page.evaluate(() => {
  const cells = (row) => Object.fromEntries(Array.from(row.querySelectorAll('td[data-metric]'))
    .map((td) => [td.dataset.metric, td.dataset.value === '' ? null : Number(td.dataset.value)]));
  const table = (id) => Array.from(document.querySelectorAll(`#${id} tr[data-row]`))
    .map((tr) => ({ key: tr.dataset.key, row: tr.dataset.row, values: cells(tr) }));
  return {
    kpis: Object.fromEntries(Array.from(document.querySelectorAll('#kpis .kpi'))
      .map((c) => [c.dataset.metric, c.dataset.value === '' ? null : Number(c.dataset.value)])),
    changes: Object.fromEntries(Array.from(document.querySelectorAll('#kpis .kpi'))
      .map((c) => [c.dataset.metric, (c.querySelector('[data-change]').dataset.change || null)])),
    PROVINCE: table('province-rows'),
    CHANNEL: table('channel-rows'),
    CREATOR: table('creator-rows'),
    PRODUCT: table('product-rows'),
    creatorColumns: Array.from(document.querySelectorAll('#creator-rows th')).map((th) => th.textContent),
    abnormal: Object.fromEntries(Array.from(document.querySelectorAll('#abnormal a'))
      .map((a) => [a.dataset.kind, Number(a.dataset.count)])),
    orders: Array.from(document.querySelectorAll('#orders tbody tr')).map((tr) => ({
      id: tr.dataset.id,
      orderNo: tr.querySelector('[data-field=orderNo]').textContent,
      receiverPhone: tr.querySelector('[data-field=receiverPhone]').textContent,
      paidAmount: Number(tr.querySelector('[data-field=paidAmount]').dataset.value),
      commission: tr.querySelector('[data-field=commissionAmount]') ? tr.querySelector('[data-field=commissionAmount]').textContent : null,
    })),
    orderColumns: Array.from(document.querySelectorAll('#orders thead th')).map((th) => th.textContent),
    queries: document.querySelectorAll('details.query').length,
    drawnAt: window.__dashboard.drawnAt,
  };
});
drawn.navigationToDrawn = navigationToDrawn;
if (shot) await page.screenshot({ path: shot, fullPage: true });
print({ drawn });
print({ ready: true });
const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (line.trim() !== 'wait-orders') continue;
  const before = await page.evaluate(() => document.querySelector('#kpis .kpi[data-metric=ORDERS]').dataset.value);
  const t0 = Date.now();
  let moved = null;
  let orders = null;
  while (Date.now() - t0 < 5000) {
    orders = await page.evaluate(() => document.querySelector('#kpis .kpi[data-metric=ORDERS]').dataset.value);
    if (orders !== before) { moved = Date.now() - t0; break; }
    await new Promise((r) => setTimeout(r, 20));
  }
  print({ moved, orders: orders === null ? null : Number(orders) });
}
await browser.close();
