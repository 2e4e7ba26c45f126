// Payments: the payment sessions by status, customer and marketplace days, a page at a time,
// and a CSV export of the same filters (fetched with the token, saved as a file).
import { call, download, withQuery } from '../api.js';
import { field, h, replace, table } from '../dom.js';
import { t } from '../i18n.js';
import { announce, busy, dateFields, dayRange, errorLine, heading, onSubmit, pager, rupiah, setQuery, time } from '../ui.js';

/** @typedef {import('../api.js').Schemas['PaymentStatus']} PaymentStatus */

/** @type {PaymentStatus[]} */
const STATUSES = ['pending', 'confirmed', 'consumed', 'failed_pairing', 'abandoned', 'expired'];
const LIMIT = 25;

/** @type {import('../app.js').Page} */
export default async function paymentsPage(main, query) {
  heading(main, t('nav.payments'), t('payments.intro'));
  const status = STATUSES.find((s) => s === query.get('status')) ?? '';
  const customer = query.get('customer') ?? '';
  const from = query.get('from') ?? '';
  const to = query.get('to') ?? '';
  const offset = Number(query.get('offset') ?? 0) || 0;
  const filters = { status: status || undefined, customer_id: customer || undefined, ...dayRange(from, to) };

  const statusSelect = h('select', {}, h('option', { value: '', text: t('payments.anyStatus') }), STATUSES.map((s) => h('option', { value: s, text: s, selected: s === status })));
  const customerInput = h('input', { type: 'text', value: customer, autocomplete: 'off' });
  const fromInput = h('input', { type: 'date', value: from });
  const toInput = h('input', { type: 'date', value: to });
  const exportButton = h('button', { type: 'button', class: 'secondary', text: t('payments.export') });
  const exportErrors = errorLine();
  exportButton.addEventListener('click', () =>
    busy(
      exportButton,
      async () => {
        await download(withQuery('/internal/payments/export', filters), `payments-${from || 'all'}-${to || 'all'}.csv`);
        announce(t('payments.exported'));
      },
      exportErrors,
    ),
  );
  const form = h(
    'form',
    { class: 'filters card', role: 'search' },
    field(t('payments.status'), statusSelect),
    field(t('payments.customerId'), customerInput),
    ...dateFields(fromInput, toInput),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', text: t('common.apply') }), exportButton),
    exportErrors.el,
  );
  onSubmit(form, () => {
    setQuery({ status: statusSelect.value, customer: customerInput.value.trim(), from: fromInput.value, to: toInput.value });
  });
  const results = h('div');
  main.append(form, results);
  const page = await call('get', '/internal/payments', { query: { ...filters, limit: LIMIT, offset } });
  replace(
    results,
    table(
      t('nav.payments'),
      [t('common.createdAt'), t('common.customer'), t('common.status'), t('common.amount'), t('payments.purpose'), t('payments.duration'), t('payments.charge')],
      page.rows.map((p) => [
        time(p.created_at),
        h('a', { href: `#/customers?id=${encodeURIComponent(p.customer.id)}`, text: p.customer.call_name }),
        [p.status, p.is_free_trial ? ` (${t('payments.freeTrial')})` : ''].join(''),
        rupiah(p.amount),
        p.purpose,
        String(p.duration_minutes),
        [p.charge ? `${p.charge.status} ${p.charge.provider}` : t('common.none'), p.failed_charges > 0 ? ` (${t('payments.failedCharges', { n: p.failed_charges })})` : ''].join(''),
      ]),
      t('payments.empty'),
    ),
    pager({ offset, limit: LIMIT, total: page.total }, (next) => setQuery({ status, customer, from, to, offset: next })),
  );
}
