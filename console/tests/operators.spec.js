// Roles: an admin creates an operator in the Operators page; signed in as that operator (a
// new browser context), the console hides Operators and the audit log and disables the
// settings, and the server itself answers 403 `admin_required` when the operator tries.
import { INTERNAL, expect, open, screenshot, serveConsole, signIn, test, watch } from './fixtures.js';

test('an operator cannot edit settings or see operators; the server refuses them too', async ({ page, browser, request }) => {
  const operator = { email: `operator-${Date.now()}@bestie.test`, password: 'operator-password' };
  await signIn(page);
  await open(page, 'Operators');
  const create = page.getByRole('form', { name: 'New account' });
  await create.getByLabel('Display name').fill('Operator Satu');
  await create.getByLabel('Email').fill(operator.email);
  await create.getByLabel('Password').fill(operator.password);
  await create.getByLabel('Role').selectOption('operator');
  await create.getByRole('button', { name: 'Create' }).click();
  await expect(page.getByRole('status')).toContainText('Account Operator Satu created.');
  const row = page.getByRole('table', { name: 'Operators' }).getByRole('row').filter({ hasText: operator.email });
  await expect(row).toContainText('operator');
  await expect(row).toContainText('active');
  // The audit log has the creation.
  await expect(page.getByRole('table', { name: 'Audit log' })).toContainText('operator.create');
  await screenshot(page, 'operators');

  const context = await browser.newContext();
  await serveConsole(context, request);
  const other = await context.newPage();
  const check = watch(other);
  await signIn(other, operator);
  await expect(other.getByText('(operator)')).toBeVisible();
  const menu = other.getByRole('navigation', { name: 'Menu' });
  await expect(menu.getByRole('link', { name: 'Settings' })).toBeVisible();
  await expect(menu.getByRole('link', { name: 'Operators' })).toHaveCount(0);

  await open(other, 'Settings');
  await expect(other.getByText('Only admins can change settings')).toBeVisible();
  const form = other.locator('form[data-key="max_customers_per_mitra"]');
  await expect(form.locator('input')).toBeDisabled();
  await expect(form.getByRole('button', { name: 'Save' })).toBeDisabled();

  await other.goto('/console/#/operators');
  await expect(other.getByText('This page is for admins only.')).toBeVisible();

  // The server refuses the operator whatever the console shows.
  const answers = await other.evaluate(async () => {
    const { access_token: token } = JSON.parse(sessionStorage.getItem('bestie.console.session') ?? '{}');
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const put = await fetch('/internal/config/max_customers_per_mitra', { method: 'PUT', headers, body: JSON.stringify({ value: 2 }) });
    const operators = await fetch('/internal/operators', { headers });
    const audit = await fetch('/internal/audit', { headers });
    return Promise.all([put, operators, audit].map(async (r) => ({ status: r.status, code: (await r.json()).error?.code })));
  });
  for (const answer of answers) expect(answer).toEqual({ status: 403, code: 'admin_required' });
  // The operator may still do the day's work: read the ledger.
  await open(other, 'Failed pairings');
  check();
  await context.close();

  // The value did not change.
  const login = await request.post(`${INTERNAL}/internal/auth/login`, { data: { email: 'admin@bestie.local', password: 'change-me-admin' } });
  const token = (await login.json()).access_token;
  const keys = (await (await request.get(`${INTERNAL}/internal/config`, { headers: { authorization: `Bearer ${token}` } })).json()).keys;
  expect(keys.find((k) => k.key === 'max_customers_per_mitra').value).not.toBe(2);
});
