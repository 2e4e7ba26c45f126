// Operators (admins only): the control-center accounts, a new one, deactivate/reactivate, and
// the audit log.
import { call, session } from '../api.js';
import { field, h, replace, table } from '../dom.js';
import { t } from '../i18n.js';
import { announce, badge, busy, errorLine, heading, onSubmit, pager, setQuery, time } from '../ui.js';

/** @typedef {import('../api.js').Schemas['OperatorRow']} Operator */
/** @typedef {import('../api.js').Schemas['AuditAction']} AuditAction */

/** @type {AuditAction[]} */
const AUDIT_ACTIONS = [
  'operator.sign_in', 'operator.create', 'operator.deactivate', 'operator.reactivate', 'operator.change_password',
  'mitra.create', 'mitra.deactivate', 'mitra.reactivate', 'mitra.reset_password',
  'config.update', 'failed_pairing.action', 'review_flag.resolve',
];
const LIMIT = 25;

/** @param {unknown} value */
function show(value) {
  if (value === null || value === undefined) return '';
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** @param {() => void} reload */
function createForm(reload) {
  const email = h('input', { type: 'email', autocomplete: 'off', required: true });
  const name = h('input', { type: 'text', autocomplete: 'off', required: true, maxlength: 100 });
  const password = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8 });
  const role = h('select', {}, h('option', { value: 'operator', text: t('role.operator') }), h('option', { value: 'admin', text: t('role.admin') }));
  const submit = h('button', { type: 'submit', text: t('common.create') });
  const errors = errorLine();
  const form = h(
    'form',
    { class: 'card', 'aria-labelledby': 'new-operator' },
    h('h2', { id: 'new-operator', text: t('operators.new') }),
    h('div', { class: 'row' },
      field(t('common.displayName'), name),
      field(t('common.email'), email),
      field(t('common.password'), password, t('account.newHint')),
      field(t('operators.role'), role)),
    errors.el,
    submit,
  );
  onSubmit(form, () => {
    busy(
      submit,
      async () => {
        const created = await call('post', '/internal/operators', {
          body: {
            email: email.value.trim(),
            display_name: name.value.trim(),
            password: password.value,
            role: role.value === 'admin' ? 'admin' : 'operator',
          },
        });
        form.reset();
        announce(t('operators.created', { name: created.display_name }));
        reload();
      },
      errors,
    );
  });
  return form;
}

/** @param {Operator} op @param {() => void} reload */
function toggle(op, reload) {
  if (op.id === session()?.user.id) return '';
  const errors = errorLine();
  const label = op.active ? t('common.deactivate') : t('common.reactivate');
  const button = h('button', { type: 'button', text: label, 'aria-label': `${label} ${op.email}` });
  button.addEventListener('click', () =>
    busy(
      button,
      async () => {
        const path = op.active ? '/internal/operators/{id}/deactivate' : '/internal/operators/{id}/reactivate';
        await call('post', path, { params: { id: op.id } });
        announce(t(op.active ? 'operators.deactivated' : 'operators.reactivated', { name: op.display_name }));
        reload();
      },
      errors,
    ),
  );
  return h('div', { class: 'row-action' }, button, errors.el);
}

/** @type {import('../app.js').Page} */
export default async function operatorsPage(main, query) {
  heading(main, t('nav.operators'), t('operators.intro'));
  const action = /** @type {AuditAction | ''} */ (AUDIT_ACTIONS.find((a) => a === query.get('action')) ?? '');
  const offset = Number(query.get('offset') ?? 0) || 0;
  const list = h('div');
  const loadList = async () => {
    const { rows } = await call('get', '/internal/operators');
    replace(
      list,
      table(
        t('nav.operators'),
        [t('common.displayName'), t('common.email'), t('operators.role'), t('common.status'), t('common.createdAt'), t('common.actions')],
        rows.map((op) => [op.display_name, op.email, t(op.role === 'admin' ? 'role.admin' : 'role.operator'), badge(op.active, t('common.active'), t('common.inactive')), time(op.created_at), toggle(op, reload)]),
      ),
    );
  };
  const actionSelect = h(
    'select',
    {},
    h('option', { value: '', text: t('operators.anyAction') }),
    AUDIT_ACTIONS.map((a) => h('option', { value: a, text: a, selected: a === action })),
  );
  actionSelect.addEventListener('change', () => setQuery({ action: actionSelect.value }));
  const audit = h('div');
  const loadAudit = async () => {
    const page = await call('get', '/internal/audit', { query: { action: action || undefined, limit: LIMIT, offset } });
    replace(
      audit,
      table(
        t('operators.audit'),
        [t('operators.when'), t('operators.actor'), t('operators.auditAction'), t('operators.target'), t('operators.change')],
        page.rows.map((row) => [
          time(row.created_at),
          row.actor?.email ?? row.actor?.id ?? t('common.none'),
          row.action,
          `${row.target_type} ${row.target_id}`,
          [show(row.old_value), row.old_value !== null && row.old_value !== undefined ? ' → ' : '', show(row.new_value)].join(''),
        ]),
        t('operators.emptyAudit'),
      ),
      pager({ offset, limit: LIMIT, total: page.total }, (next) => setQuery({ action, offset: next })),
    );
  };
  // An account created or (de)activated here is in the list and the audit log at once.
  const reload = () => busy(null, async () => {
    await loadList();
    await loadAudit();
  });
  main.append(
    createForm(reload),
    list,
    h('section', { 'aria-labelledby': 'audit-title' },
      h('h2', { id: 'audit-title', text: t('operators.audit') }),
      h('div', { class: 'filters' }, field(t('operators.auditAction'), actionSelect)),
      audit),
  );
  await loadList();
  await loadAudit();
}
