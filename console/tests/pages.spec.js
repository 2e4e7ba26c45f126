// Every page opens without an error (and, with SCREENSHOTS=1, is photographed): the overview's
// live counts, the payments list with its CSV export (downloaded with the token), and the
// own-password form, whose refusal of a wrong current password shows beside it.
import { readFile } from 'node:fs/promises';
import { expect, open, screenshot, signIn, test } from './fixtures.js';

test('overview, payments (CSV export) and my account', async ({ page }) => {
  await signIn(page);
  await open(page, 'Overview');
  for (const label of ['Mitras online', 'Mitras available', 'Searches in progress', 'Active sessions']) {
    await expect(page.getByRole('term').filter({ hasText: label })).toBeVisible();
  }
  await expect(page.getByText(/Last updated/)).toBeVisible();
  await screenshot(page, 'overview');

  await open(page, 'Payments');
  const table = page.getByRole('table', { name: 'Payments' });
  await expect(table).toBeVisible();
  await screenshot(page, 'payments');
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export CSV' }).click()]);
  const csv = await readFile(await download.path(), 'utf8');
  expect(csv.split('\n')[0]).toContain('id');
  // One line per payment the page counts, after the header (no field of these rows has a line break).
  const total = Number((await page.getByRole('navigation', { name: 'Pages' }).textContent())?.match(/of (\d+)/)?.[1]);
  expect(total).toBeGreaterThan(0);
  expect(csv.trim().split('\n')).toHaveLength(total + 1);
  await expect(page.getByRole('status')).toContainText('CSV downloaded.');

  await open(page, 'My account');
  await page.getByLabel('Current password').fill('not-my-password');
  await page.getByLabel('New password').fill('another-password-1');
  await page.getByRole('button', { name: 'Change password' }).click();
  await expect(page.getByRole('alert')).toContainText('wrong_password');
  await screenshot(page, 'account');
});
