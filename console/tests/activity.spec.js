// Mitra activity: a seeded mitra online is offered a real customer's search and declines it;
// the report (filtered to today, sorted by name) counts the offer and the rejection, and the
// drill-down lists that offer with its answer.
import { account, expect, mitraOnline, open, publicOk, screenshot, signIn, startSearch, test, today } from './fixtures.js';

test('the activity report counts a real offer; its drill-down lists it', async ({ page, browser, request }) => {
  const offline = await mitraOnline(browser, request, 'm0');
  try {
    await startSearch(request, 'c0');
    let offer;
    await expect.poll(async () => {
      offer = (await publicOk(request, 'm0', 'GET', '/api/mitra/chat-requests/open')).requests[0];
      return Boolean(offer);
    }).toBe(true);
    await publicOk(request, 'm0', 'POST', `/api/mitra/chat-requests/${offer.request_id}/decline`);
  } finally {
    await offline();
  }

  await signIn(page);
  await open(page, 'Mitra activity');
  await page.getByLabel('From date').fill(today());
  await page.getByLabel('To date (inclusive)').fill(today());
  await page.getByLabel('Sort by').selectOption('display_name');
  await page.getByLabel('Order').selectOption('asc');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page).toHaveURL(/sort=display_name/);
  const report = page.getByRole('table', { name: 'Mitra activity' });
  const row = report.getByRole('row').filter({ hasText: account('m0').name });
  // Columns: mitra, notified, accepted, rejected, ...
  await expect(row.getByRole('cell').nth(1)).toHaveText('1');
  await expect(row.getByRole('cell').nth(3)).toHaveText('1');
  await screenshot(page, 'mitra-activity');

  await row.getByRole('button', { name: `Details of ${account('m0').name}` }).click();
  const log = page.getByRole('table', { name: `Offer log of ${account('m0').name}` });
  await expect(log.getByRole('row')).toHaveCount(2);
  await expect(log.getByRole('row').nth(1)).toContainText('rejected');
  await expect(log.getByRole('row').nth(1)).toContainText('general');

  // The response filter: no offer of this mitra was accepted.
  await page.getByLabel('Response').selectOption('accepted');
  await expect(page.getByRole('table', { name: `Offer log of ${account('m0').name}` })).toContainText('No offers in this range.');
  // A range before today has no row for the mitra.
  await page.getByLabel('From date').fill('2020-01-01');
  await page.getByLabel('To date (inclusive)').fill('2020-01-02');
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page.getByRole('table', { name: 'Mitra activity' })).toContainText('No offers in this range.');
});
