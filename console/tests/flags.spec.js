// Review flags: with early ends allowed and the daily cap at 0 (set in the console), a seeded
// mitra accepts a real customer's search and ends the chat early through the public API; the
// session shows on the live board, the early end and the mitra's flag in the console, and the
// flag is resolved there (once: the server refuses a second time).
import { INTERNAL, account, adminToken, expect, mitraOnline, open, publicOk, screenshot, signIn, startSearch, test } from './fixtures.js';

test('an early end over the cap raises a flag that is resolved in the console', async ({ page, browser, request }) => {
  test.setTimeout(120_000);
  await signIn(page);
  await open(page, 'Settings');
  const enabled = page.locator('form[data-key="early_end_mitra_enabled"]');
  await enabled.locator('input[type=checkbox]').check();
  await enabled.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status')).toContainText('saved');
  const cap = page.locator('form[data-key="early_end_mitra_daily_cap"]');
  await cap.locator('input').fill('0');
  await cap.getByRole('button', { name: 'Save' }).click();
  await expect(page.getByRole('status')).toContainText('saved');

  const offline = await mitraOnline(browser, request, 'm1');
  let sessionId;
  try {
    await startSearch(request, 'c1');
    let offer;
    await expect.poll(async () => {
      offer = (await publicOk(request, 'm1', 'GET', '/api/mitra/chat-requests/open')).requests[0];
      return Boolean(offer);
    }).toBe(true);
    const accepted = await publicOk(request, 'm1', 'POST', `/api/mitra/chat-requests/${offer.request_id}/accept`);
    sessionId = accepted.chat_session.id;

    await open(page, 'Live sessions');
    const live = page.getByRole('table', { name: 'Live sessions' });
    await expect(live.getByRole('row').filter({ hasText: account('m1').name })).toContainText('active');
    await screenshot(page, 'live-sessions');

    const ended = await publicOk(request, 'm1', 'POST', `/api/mitra/chat-requests/sessions/${sessionId}/end`, {
      reason_code: 'console_check',
      reason_text: 'ended early by the console test',
    });
    expect(ended.status).toBe('closing');
  } finally {
    await offline();
  }

  await open(page, 'Early ends & review');
  const flags = page.getByRole('table', { name: 'Review flags' });
  const flag = flags.getByRole('row').filter({ hasText: account('m1').name });
  await expect(flag).toContainText('open');
  await expect(page.getByRole('table', { name: 'Early ends' })).toContainText('console_check');
  await screenshot(page, 'early-ends');
  const flagId = (await (await request.get(`${INTERNAL}/internal/review-flags`, {
    headers: { authorization: `Bearer ${await adminToken(request)}` },
  }).then((r) => r.json())).rows.find((r) => r.mitra.id === account('m1').id).id);

  await flag.getByRole('button', { name: /Resolve/ }).click();
  await expect(page.getByRole('status')).toContainText('Flag resolved.');
  await expect(flags).toContainText('No flags.');
  await page.getByLabel('Show resolved flags').check();
  await expect(page.getByRole('table', { name: 'Review flags' }).getByRole('row').filter({ hasText: account('m1').name })).toContainText('Reviewed');

  const again = await request.post(`${INTERNAL}/internal/review-flags/${flagId}/resolve`, {
    headers: { authorization: `Bearer ${await adminToken(request)}` },
  });
  expect(again.status()).toBe(409);
  expect((await again.json()).error.code).toBe('review_flag_already_resolved');
});
