// Signing in: a wrong password shows the server's refusal beside the form and signs nobody
// in; the seeded admin signs in, sees the admin's menu, and signs out (the refresh token is
// revoked: the server refuses it afterwards).
import { ADMIN, INTERNAL, expect, screenshot, signIn, test } from './fixtures.js';

test('a wrong password shows the error; the admin signs in and out', async ({ page, request }) => {
  await page.goto('/console/');
  await page.evaluate(() => localStorage.setItem('bestie.console.lang', 'en'));
  await page.reload();
  await screenshot(page, 'sign-in');
  await page.getByLabel('Email').fill(ADMIN.email);
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert')).toContainText('invalid_credentials');
  await expect(page.getByRole('button', { name: 'Sign out' })).toBeHidden();

  await signIn(page);
  const menu = page.getByRole('navigation', { name: 'Menu' });
  await expect(menu.getByRole('link', { name: 'Operators' })).toBeVisible();
  await expect(page.getByText(/\(admin\)/)).toBeVisible();
  const refresh = await page.evaluate(() => JSON.parse(sessionStorage.getItem('bestie.console.session') ?? '{}').refresh_token);

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
  expect(await page.evaluate(() => sessionStorage.getItem('bestie.console.session'))).toBeNull();
  const reused = await request.post(`${INTERNAL}/internal/auth/refresh`, { data: { refresh_token: refresh } });
  expect(reused.status()).toBe(401);
});
