// A failure whose payment was served after all: a returning chat to an offline mitra fails at
// once (a ledger row), the customer falls back to a general blast that another mitra
// accepts, so the payment is consumed. The console marks the row "served after all" and
// offers only "no action"; the server refuses a refund of it too (`payment_served`).
import { INTERNAL, account, adminToken, expect, mitraOnline, open, publicCall, publicOk, screenshot, signIn, startSearch, test } from './fixtures.js';

/** Waits for the mitra's first open offer and accepts it. */
async function acceptOffer(request, mitra) {
  let offer;
  await expect.poll(async () => {
    offer = (await publicOk(request, mitra, 'GET', '/api/mitra/chat-requests/open')).requests[0];
    return Boolean(offer);
  }).toBe(true);
  return publicOk(request, mitra, 'POST', `/api/mitra/chat-requests/${offer.request_id}/accept`);
}

test('a payment served after all is offered only "no action"', async ({ page, browser, request }) => {
  test.setTimeout(120_000);
  // c0 and m1 have a chat, so c0 may ask m1 again ("Curhat lagi").
  let offline = await mitraOnline(browser, request, 'm1');
  try {
    await startSearch(request, 'c0');
    await acceptOffer(request, 'm1');
  } finally {
    await offline();
  }

  // m1 is offline now: the returning chat fails at once.
  const payment = await publicOk(request, 'c0', 'POST', '/api/client/payment-sessions', { duration_minutes: 15, targeted_mitra_id: account('m1').id });
  await publicOk(request, 'c0', 'POST', `/api/client/payment-sessions/${payment.id}/confirm`);
  const returning = await publicCall(request, 'c0', 'POST', '/api/client/chat-requests/returning', { payment_session_id: payment.id, mitra_id: account('m1').id });
  expect(returning.status()).toBe(409);
  expect((await returning.json()).error.code).toBe('targeted_mitra_offline');

  // The fallback blast is accepted by m0: the payment is consumed.
  offline = await mitraOnline(browser, request, 'm0');
  try {
    await publicOk(request, 'c0', 'POST', `/api/client/chat-requests/${payment.id}/fallback-to-blast`);
    await acceptOffer(request, 'm0');
  } finally {
    await offline();
  }
  await expect.poll(async () => (await publicOk(request, 'c0', 'GET', `/api/client/payment-sessions/${payment.id}`)).status).toBe('consumed');

  await signIn(page);
  await open(page, 'Failed pairings');
  await page.getByLabel('targeted mitra offline').check();
  await page.getByRole('button', { name: 'Apply' }).click();
  const row = page.getByRole('table', { name: 'Failed pairings' }).getByRole('row').filter({ hasText: 'c0' });
  await expect(row).toHaveCount(1);
  await expect(row).toContainText('consumed');
  await expect(row).toContainText('served after all');
  const choice = row.getByRole('combobox');
  await expect(choice.locator('option')).toHaveText(['Choose an action…', 'no action']);
  await screenshot(page, 'failed-pairings-served');

  // The server refuses a refund whatever the console offers.
  const token = await adminToken(request);
  const ledger = await (await request.get(`${INTERNAL}/internal/failed-pairings?cause_tags[]=targeted_mitra_offline`, { headers: { authorization: `Bearer ${token}` } })).json();
  const refund = await request.post(`${INTERNAL}/internal/failed-pairings/${ledger.rows[0].id}/action`, { data: { action: 'refunded' }, headers: { authorization: `Bearer ${token}` } });
  expect(refund.status()).toBe(409);
  expect((await refund.json()).error.code).toBe('payment_served');

  await choice.selectOption('no_action');
  await row.getByRole('button', { name: 'Record action' }).click();
  await expect(page.getByRole('status')).toContainText('Action recorded: no action.');
  await expect(page.getByRole('table', { name: 'Failed pairings' }).getByRole('row').filter({ hasText: 'c0' })).toContainText('no action (');
});
