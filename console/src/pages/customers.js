// Customers: find one by phone, id or name; open one (their payments and sessions); block or
// unblock them (a blocked customer's tokens are refused on the public API).
import { call } from '../api.js';
import { field, h, replace, table } from '../dom.js';
import { t } from '../i18n.js';
import { announce, badge, busy, errorLine, heading, onSubmit, pager, rupiah, setQuery, time } from '../ui.js';

/** @typedef {import('../api.js').Schemas['CustomerView']} Customer */
const LIMIT = 20;

/** @param {Customer} c */
function nameOf(c) {
  return c.call_name || c.phone;
}

/** @param {Customer} customer @param {() => void} reload */
function blockButton(customer, reload) {
  const errors = errorLine();
  const blocked = Boolean(customer.blocked_at);
  const label = blocked ? t('customers.unblock') : t('customers.block');
  const button = h('button', { type: 'button', text: label, 'aria-label': `${label} ${nameOf(customer)}` });
  button.addEventListener('click', () =>
    busy(
      button,
      async () => {
        await call('post', blocked ? '/internal/customers/{id}/unblock' : '/internal/customers/{id}/block', { params: { id: customer.id } });
        announce(t(blocked ? 'customers.unblockedMsg' : 'customers.blockedMsg', { name: nameOf(customer) }));
        reload();
      },
      errors,
    ),
  );
  return h('div', { class: 'row-action' }, button, errors.el);
}

/** @param {Customer} c */
function statusBadge(c) {
  return badge(!c.blocked_at, t('customers.notBlocked'), t('customers.blocked'));
}

/** @param {HTMLElement} main @param {string} id */
async function detail(main, id) {
  const data = await call('get', '/internal/customers/{id}', { params: { id } });
  const c = data.customer;
  replace(
    main,
    h('p', {}, h('a', { href: '#/customers', text: `← ${t('common.back')}` })),
    h('h1', { text: t('customers.detail', { name: nameOf(c) }) }),
    h('dl', { class: 'facts' },
      h('dt', { text: t('customers.phone') }), h('dd', { text: c.phone }),
      h('dt', { text: t('customers.callName') }), h('dd', { text: c.call_name ?? t('common.none') }),
      h('dt', { text: 'Id' }), h('dd', {}, h('code', { text: c.id })),
      h('dt', { text: t('common.createdAt') }), h('dd', { text: time(c.created_at) }),
      h('dt', { text: t('common.status') }), h('dd', {}, statusBadge(c))),
    blockButton(c, () => busy(null, () => detail(main, id))),
    h('h2', { text: t('customers.payments') }),
    table(
      t('customers.payments'),
      [t('common.createdAt'), t('common.status'), t('common.amount'), t('payments.purpose'), t('payments.duration')],
      data.payments.map((p) => [time(p.created_at), [p.status, p.is_free_trial ? ` (${t('payments.freeTrial')})` : ''].join(''), rupiah(p.amount), p.purpose, String(p.duration_minutes)]),
      t('payments.empty'),
    ),
    h('h2', { text: t('customers.sessions') }),
    table(
      t('customers.sessions'),
      [t('sessions.startedAt'), t('common.status'), t('common.mitra'), t('sessions.endsAt'), t('sessions.messages')],
      data.chats.map((s) => [time(s.started_at), s.status, s.mitra.display_name, time(s.completed_at ?? s.ends_at), String(s.messages)]),
      t('sessions.empty'),
    ),
  );
}

/** @type {import('../app.js').Page} */
export default async function customersPage(main, query) {
  const open = query.get('id');
  if (open) return detail(main, open);
  heading(main, t('nav.customers'), t('customers.intro'));
  const q = query.get('q') ?? '';
  const offset = Number(query.get('offset') ?? 0) || 0;
  const search = h('input', { type: 'search', value: q });
  const form = h(
    'form',
    { class: 'filters card', role: 'search' },
    field(t('customers.q'), search),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', text: t('common.search') })),
  );
  onSubmit(form, () => {
    setQuery({ q: search.value.trim() });
  });
  const results = h('div');
  main.append(form, results);
  const load = async () => {
    const page = await call('get', '/internal/customers', { query: { q: q || undefined, limit: LIMIT, offset } });
    replace(
      results,
      table(
        t('nav.customers'),
        [t('customers.phone'), t('customers.callName'), t('common.createdAt'), t('common.status'), t('common.actions')],
        page.rows.map((c) => [
          c.phone,
          c.call_name ?? t('common.none'),
          time(c.created_at),
          statusBadge(c),
          h('div', { class: 'row-action' },
            h('a', { href: `#/customers?id=${encodeURIComponent(c.id)}`, text: t('customers.open'), 'aria-label': `${t('customers.open')} ${nameOf(c)}` }),
            blockButton(c, () => busy(null, load))),
        ]),
        t('customers.empty'),
      ),
      pager({ offset, limit: LIMIT, total: page.total }, (next) => setQuery({ q, offset: next })),
    );
  };
  await load();
  return undefined;
}
