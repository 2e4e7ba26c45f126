// Mitras: search and page through the accounts, create one, deactivate or reactivate it,
// reset its password.
import { call } from '../api.js';
import { field, h, replace, table } from '../dom.js';
import { t } from '../i18n.js';
import { announce, badge, busy, errorLine, heading, onSubmit, pager, setQuery, time } from '../ui.js';

/** @typedef {import('../api.js').Schemas['MitraListing']} Mitra */
const LIMIT = 20;

/** @param {() => void} reload */
function createForm(reload) {
  const email = h('input', { type: 'email', autocomplete: 'off', required: true });
  const name = h('input', { type: 'text', autocomplete: 'off', required: true, maxlength: 100 });
  const password = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const submit = h('button', { type: 'submit', text: t('common.create') });
  const errors = errorLine();
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'new-mitra' },
    h('h2', { id: 'new-mitra', text: t('mitras.new') }),
    h('div', { class: 'row' }, field(t('common.displayName'), name), field(t('common.email'), email), field(t('common.password'), password, t('account.newHint'))),
    errors.el,
    submit,
  );
  onSubmit(form, () => {
    busy(
      submit,
      async () => {
        const created = await call('post', '/internal/mitras', {
          body: { email: email.value.trim(), display_name: name.value.trim(), password: password.value },
        });
        form.reset();
        announce(t('mitras.created', { name: created.display_name }));
        reload();
      },
      errors,
    );
  });
  return form;
}

/** @param {Mitra} mitra @param {() => void} reload */
function actions(mitra, reload) {
  const errors = errorLine();
  const toggle = h('button', {
    type: 'button',
    text: mitra.active ? t('common.deactivate') : t('common.reactivate'),
    'aria-label': `${mitra.active ? t('common.deactivate') : t('common.reactivate')} ${mitra.display_name}`,
  });
  toggle.addEventListener('click', () =>
    busy(
      toggle,
      async () => {
        const path = mitra.active ? '/internal/mitras/{id}/deactivate' : '/internal/mitras/{id}/reactivate';
        await call('post', path, { params: { id: mitra.id } });
        announce(t(mitra.active ? 'mitras.deactivated' : 'mitras.reactivated', { name: mitra.display_name }));
        reload();
      },
      errors,
    ),
  );
  const password = h('input', { type: 'password', autocomplete: 'new-password', minlength: 8, required: true });
  const resetForm = h(
    'form',
    { class: 'inline-form', hidden: true },
    field(t('mitras.newPassword', { name: mitra.display_name }), password),
    h('button', { type: 'submit', text: t('common.save') }),
  );
  const open = h('button', { type: 'button', class: 'secondary', text: t('mitras.resetPassword'), 'aria-expanded': 'false' });
  open.addEventListener('click', () => {
    resetForm.hidden = !resetForm.hidden;
    open.setAttribute('aria-expanded', String(!resetForm.hidden));
    if (!resetForm.hidden) password.focus();
  });
  onSubmit(resetForm, () => {
    busy(
      /** @type {HTMLButtonElement} */ (resetForm.querySelector('button')),
      async () => {
        await call('post', '/internal/mitras/{id}/reset-password', { params: { id: mitra.id }, body: { password: password.value } });
        resetForm.reset();
        resetForm.hidden = true;
        announce(t('mitras.passwordReset', { name: mitra.display_name }));
      },
      errors,
    );
  });
  return h('div', { class: 'row-action' }, toggle, open, resetForm, errors.el);
}

/** @type {import('../app.js').Page} */
export default async function mitrasPage(main, query) {
  heading(main, t('nav.mitras'), t('mitras.intro'));
  const q = query.get('q') ?? '';
  const offset = Number(query.get('offset') ?? 0) || 0;
  const search = h('input', { type: 'search', value: q });
  const searchForm = h(
    'form',
    { class: 'filters card', role: 'search' },
    field(t('mitras.q'), search),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', text: t('common.search') })),
  );
  onSubmit(searchForm, () => {
    setQuery({ q: search.value.trim() });
  });
  const results = h('div');
  const load = async () => {
    const page = await call('get', '/internal/mitras', { query: { q: q || undefined, limit: LIMIT, offset } });
    replace(
      results,
      table(
        t('nav.mitras'),
        [t('common.displayName'), t('common.email'), t('common.status'), t('common.createdAt'), t('common.actions')],
        page.rows.map((m) => [
          m.display_name,
          m.email,
          [
            badge(m.active, t('common.active'), t('common.inactive')),
            m.sign_in_locked_for_s > 0 ? h('span', { class: 'badge warn', text: t('mitras.locked', { s: m.sign_in_locked_for_s }) }) : null,
          ],
          time(m.created_at),
          actions(m, () => busy(null, load)),
        ]),
        t('mitras.empty'),
      ),
      pager({ offset, limit: LIMIT, total: page.total }, (next) => setQuery({ q, offset: next })),
    );
  };
  main.append(createForm(() => busy(null, load)), searchForm, results);
  await load();
}
