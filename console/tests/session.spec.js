// The console's tokens: an expired or refused access token is refreshed once, transparently;
// when the refresh is refused too, the console forgets the session and shows the sign-in page.
import { expect, open, signIn, test } from './fixtures.js';

test('a refused access token is refreshed once; a refused refresh signs out', async ({ page }) => {
  await signIn(page);
  const stored = () => page.evaluate(() => JSON.parse(sessionStorage.getItem('bestie.console.session') ?? 'null'));
  const before = await stored();
  await page.evaluate(() => {
    const s = JSON.parse(sessionStorage.getItem('bestie.console.session') ?? '{}');
    sessionStorage.setItem('bestie.console.session', JSON.stringify({ ...s, access_token: 'not-a-token' }));
  });
  await open(page, 'Mitras');
  await expect(page.getByRole('table', { name: 'Mitras' })).toBeVisible();
  const after = await stored();
  expect(after.access_token).not.toBe('not-a-token');
  expect(after.refresh_token).not.toBe(before.refresh_token);

  await page.evaluate(() => {
    const s = JSON.parse(sessionStorage.getItem('bestie.console.session') ?? '{}');
    sessionStorage.setItem('bestie.console.session', JSON.stringify({ ...s, access_token: 'not-a-token', refresh_token: 'not-a-refresh-token' }));
  });
  await page.getByRole('navigation', { name: 'Menu' }).getByRole('link', { name: 'Live sessions' }).click();
  await expect(page.getByRole('button', { name: 'Sign in' })).toBeVisible();
  expect(await stored()).toBeNull();
});
