// Failed pairings: the search window is set short in the console; a seeded customer pays and
// starts a search with no mitra online; when the window closes the failure appears in the
// console's ledger (filtered by its cause and today's date), where it is actioned, once.
import { expect, open, publicOk, screenshot, setConfig, signIn, startSearch, test, today } from './fixtures.js';

test('a real blast timeout lands in Failed Pairings and is actioned there', async ({ page, request }) => {
  test.setTimeout(120_000);
  await signIn(page);

  // The search window, set through the console to its least value.
  await open(page, 'Settings');
  const form = page.locator('form[data-key="pairing_blast_timeout_seconds"]');
  const input = form.locator('input');
  await input.fill('10');
  await form.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status')).toContainText('saved');
  await expect.poll(async () => (await publicOk(request, 'c0', 'GET', '/api/shared/config')).pairing_blast_timeout_seconds).toBe(10);

  const paymentId = await startSearch(request, 'c0');
  // Nobody is online: the window closes after 10 s and the payment fails.
  await expect
    .poll(async () => (await publicOk(request, 'c0', 'GET', `/api/client/payment-sessions/${paymentId}`)).status, { timeout: 40_000, intervals: [1000] })
    .toBe('failed_pairing');

  await open(page, 'Failed pairings');
  await page.getByLabel('no mitra available').check();
  await page.getByLabel('From date').fill(today());
  await page.getByLabel('To date (inclusive)').fill(today());
  await page.getByRole('button', { name: 'Apply' }).click();
  const table = page.getByRole('table', { name: 'Failed pairings' });
  const row = table.getByRole('row').filter({ hasText: 'c0' }).first();
  await expect(row).toContainText('no mitra available');
  await expect(row).toContainText('failed_pairing');
  await screenshot(page, 'failed-pairings');

  await row.getByRole('combobox').selectOption('refunded');
  await row.getByRole('button', { name: 'Record action' }).click();
  await expect(page.getByRole('status')).toContainText('Action recorded: refunded.');
  await expect(table.getByRole('row').filter({ hasText: 'c0' }).first()).toContainText('refunded (');
  await expect(table.getByRole('row').filter({ hasText: 'c0' }).first().getByRole('button', { name: 'Record action' })).toHaveCount(0);

  // A cause filter that excludes it hides it.
  await page.getByLabel('no mitra available').uncheck();
  await page.getByLabel('customer cancelled').check();
  await page.getByRole('button', { name: 'Apply' }).click();
  await expect(page.getByRole('table', { name: 'Failed pairings' })).toContainText('No rows.');
});
