// Language: Indonesian by default; the header's switch shows English (labels of the pages and
// of the settings' keys), and the choice is remembered across a reload.
import { ADMIN, INTERNAL, adminToken, expect, test } from './fixtures.js';

test('Indonesian by default, English after the switch, remembered', async ({ page, request }) => {
  const token = await adminToken(request);
  const keys = (await (await request.get(`${INTERNAL}/internal/config`, { headers: { authorization: `Bearer ${token}` } })).json()).keys;
  const key = keys.find((k) => k.key === 'max_customers_per_mitra');

  await page.goto('/console/');
  await expect(page.getByRole('heading', { name: 'Masuk ke pusat kendali' })).toBeVisible();
  await expect(page.locator('html')).toHaveAttribute('lang', 'id');
  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Kata sandi').fill(ADMIN.password);
  await page.getByRole('button', { name: 'Masuk' }).click();
  const menu = page.getByRole('navigation', { name: 'Menu' });
  await menu.getByRole('link', { name: 'Pengaturan' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Pengaturan' })).toBeVisible();
  // The key's Indonesian label when the server has one.
  await expect(page.getByRole('heading', { level: 2, name: key.label_id ?? key.label, exact: true })).toBeVisible();

  await page.getByRole('button', { name: 'English' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Settings' })).toBeVisible();
  await expect(menu.getByRole('link', { name: 'Failed pairings' })).toBeVisible();
  await expect(page.getByRole('heading', { level: 2, name: key.label, exact: true })).toBeVisible();
  await expect(page.getByRole('button', { name: 'Save' }).first()).toBeVisible();
  await expect(page.locator('html')).toHaveAttribute('lang', 'en');

  await page.reload();
  await expect(page.getByRole('heading', { level: 1, name: 'Settings' })).toBeVisible();
  await page.getByRole('button', { name: 'Bahasa Indonesia' }).click();
  await expect(page.getByRole('heading', { level: 1, name: 'Pengaturan' })).toBeVisible();
});
