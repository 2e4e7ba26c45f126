// Settings: a change made in the console reaches the public API at once; a value out of the
// key's range shows the server's validation message beside the field and changes nothing;
// the change is in the key's history.
import { INTERNAL, PUBLIC, adminToken, expect, open, screenshot, signIn, test } from './fixtures.js';

test('a setting changed in the console applies on the public API; an invalid one is refused', async ({ page, request }) => {
  const token = await adminToken(request);
  const keys = (await (await request.get(`${INTERNAL}/internal/config`, { headers: { authorization: `Bearer ${token}` } })).json()).keys;
  const key = keys.find((k) => k.key === 'session_ending_warning_seconds');
  expect(key.public).toBe(true);
  const before = (await (await request.get(`${PUBLIC}/api/shared/config`)).json()).session_ending_warning_seconds;
  const next = before === 45 ? 50 : 45;

  await signIn(page);
  await open(page, 'Settings');
  await screenshot(page, 'settings');
  const form = page.locator('form[data-key="session_ending_warning_seconds"]');
  const input = form.getByLabel(key.label, { exact: true });
  await expect(input).toHaveValue(String(before));

  await input.fill(String(next));
  await form.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status')).toContainText(`${key.label} saved.`);
  await expect
    .poll(async () => (await (await request.get(`${PUBLIC}/api/shared/config`)).json()).session_ending_warning_seconds)
    .toBe(next);

  // Out of range: the server's message (and code) beside the field; the public value stays.
  await input.fill(String(key.max + 1));
  await form.getByRole('button', { name: 'Save' }).click();
  const error = form.getByRole('alert');
  await expect(error).toContainText('invalid_config_value');
  await expect(error).toContainText(String(key.max));
  expect((await (await request.get(`${PUBLIC}/api/shared/config`)).json()).session_ending_warning_seconds).toBe(next);

  // Not even an integer: the server refuses it the same way.
  await input.fill('');
  await form.getByRole('button', { name: 'Save' }).click();
  await expect(error).toContainText('invalid_config_value');

  // The history lists the change, by the admin.
  await form.getByRole('button', { name: 'History' }).click();
  const history = form.getByRole('table', { name: 'Change history of session_ending_warning_seconds' });
  await expect(history.getByRole('row').nth(1)).toContainText(String(next));
  await expect(history.getByRole('row').nth(1)).toContainText('admin@bestie.local');
});
