// Customers: found by phone in the console and blocked there; the customer's token is then
// refused on the public API; unblocked, it is accepted again (a new sign-in would be needed for
// revoked tokens, so only the refusal is asserted after blocking).
import { PUBLIC, account, customerPhone, expect, open, screenshot, signIn, test } from './fixtures.js';

test('block a customer found by phone; the public API refuses their token', async ({ page, request }) => {
  const customer = account('c2');
  const asCustomer = () => request.get(`${PUBLIC}/api/client/pricing`, { headers: { authorization: `Bearer ${customer.token}` } });
  expect((await asCustomer()).status()).toBe(200);

  await signIn(page);
  await open(page, 'Customers');
  await page.getByLabel('Phone, id or name').fill(customerPhone(2));
  await page.getByRole('button', { name: 'Search' }).click();
  const table = page.getByRole('table', { name: 'Customers' });
  await expect(table.getByRole('row')).toHaveCount(2);
  const row = table.getByRole('row').nth(1);
  await expect(row).toContainText(customerPhone(2));
  await expect(row).toContainText('active');
  await screenshot(page, 'customers');

  await row.getByRole('button', { name: `Block ${customer.name}` }).click();
  await expect(page.getByRole('status')).toContainText(`${customer.name} blocked.`);
  await expect(table.getByRole('row').nth(1)).toContainText('blocked');
  const refused = await asCustomer();
  expect([401, 403]).toContain(refused.status());

  // The customer's page shows the state and their (empty) history.
  await table.getByRole('link', { name: `Open ${customer.name}` }).click();
  await expect(page.getByRole('heading', { level: 1, name: `Customer ${customer.name}` })).toBeVisible();
  await expect(page.getByRole('definition').filter({ hasText: 'blocked' })).toBeVisible();
  await page.getByRole('button', { name: `Unblock ${customer.name}` }).click();
  await expect(page.getByRole('status')).toContainText(`${customer.name} unblocked.`);
  await expect(page.getByRole('button', { name: `Block ${customer.name}` })).toBeVisible();
});
