// Mitras: an account created in the console signs in on the public API; deactivated in the
// console, its status changes and the server refuses its sign-in; reactivated, it may again.
import { PUBLIC, expect, open, screenshot, signIn, test } from './fixtures.js';

test('create a mitra, deactivate it, reactivate it', async ({ page, request }) => {
  const email = `console-${Date.now()}@bestie.test`;
  const password = 'console-mitra-pw';
  const login = () => request.post(`${PUBLIC}/api/auth/mitra/login`, { data: { email, password } });

  await signIn(page);
  await open(page, 'Mitras');
  const create = page.getByRole('form', { name: 'New mitra' });
  await create.getByLabel('Display name').fill('Bestie Konsol');
  await create.getByLabel('Email').fill(email);
  await create.getByLabel('Password').fill(password);
  await create.getByRole('button', { name: 'Create' }).click();
  await expect(page.getByRole('status')).toContainText('Mitra Bestie Konsol created.');
  expect((await login()).status()).toBe(200);

  await page.getByLabel('Search name or email').fill(email);
  await page.getByRole('button', { name: 'Search' }).click();
  const table = page.getByRole('table', { name: 'Mitras' });
  await expect(table.getByRole('row')).toHaveCount(2);
  const row = table.getByRole('row').filter({ hasText: email });
  await expect(row).toContainText('active');
  await screenshot(page, 'mitras');

  await row.getByRole('button', { name: 'Deactivate Bestie Konsol' }).click();
  await expect(page.getByRole('status')).toContainText('Bestie Konsol deactivated.');
  await expect(row).toContainText('inactive');
  const refused = await login();
  expect(refused.status()).toBe(403);
  expect((await refused.json()).error.code).toBe('account_deactivated');

  await row.getByRole('button', { name: 'Reactivate Bestie Konsol' }).click();
  await expect(row.getByRole('button', { name: 'Deactivate Bestie Konsol' })).toBeVisible();
  expect((await login()).status()).toBe(200);
});
