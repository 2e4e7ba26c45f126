// Failed pairings: the ledger of payments that led to no chat, filtered by cause and by
// marketplace days, a page at a time; one action per row (refunded, credited, no action). A
// payment that was served after all (`consumed`) is offered only "no action".
import { call } from '../api.js';
import { h, replace, table, uid } from '../dom.js';
import { t, tEnum } from '../i18n.js';
import { announce, busy, dateFields, dayRange, errorLine, heading, onSubmit, pager, rupiah, setQuery, time } from '../ui.js';

/** @typedef {import('../api.js').Schemas['FailureView']} FailureView */
/** @typedef {import('../api.js').Schemas['FailureCause']} FailureCause */
/** @typedef {import('../api.js').Schemas['OperatorAction']} OperatorAction */

/** @type {FailureCause[]} */
const CAUSES = [
  'no_mitra_available',
  'all_mitras_rejected',
  'targeted_mitra_offline',
  'targeted_mitra_rejected',
  'targeted_mitra_timeout',
  'payment_session_expired',
  'customer_cancelled',
];
/** @type {OperatorAction[]} */
const ACTIONS = ['refunded', 'credited', 'no_action'];
const LIMIT = 20;

/** @param {FailureView} row */
function served(row) {
  return row.served_after_all || row.payment_status === 'consumed';
}

/**
 * The action cell: the recorded action, or a choice and a button.
 * @param {FailureView} row
 * @param {() => void} reload
 */
function actionCell(row, reload) {
  if (row.operator_action) {
    return h('span', {
      class: 'badge on',
      text: t('failures.actionedBy', { action: tEnum('action', row.operator_action), time: time(row.actioned_at) }),
    });
  }
  const allowed = served(row) ? ACTIONS.filter((a) => a === 'no_action') : ACTIONS;
  const id = uid('action');
  const select = h(
    'select',
    { id, 'aria-label': t('failures.recordFor', { id: row.id.slice(0, 8) }) },
    h('option', { value: '', text: t('failures.choose') }),
    allowed.map((action) => h('option', { value: action, text: tEnum('action', action) })),
  );
  const errors = errorLine();
  const button = h('button', { type: 'button', text: t('failures.record') });
  button.addEventListener('click', () => {
    const action = /** @type {OperatorAction | ''} */ (select.value);
    if (!action) return select.focus();
    busy(
      button,
      async () => {
        await call('post', '/internal/failed-pairings/{id}/action', { params: { id: row.id }, body: { action } });
        announce(t('failures.recorded', { action: tEnum('action', action) }));
        reload();
      },
      errors,
    );
  });
  return h('div', { class: 'row-action' }, select, button, served(row) ? h('p', { class: 'hint', text: t('failures.servedNote') }) : null, errors.el);
}

/** @type {import('../app.js').Page} */
export default async function failuresPage(main, query) {
  heading(main, t('nav.failures'), t('failures.intro'));
  const chosen = new Set(query.getAll('cause'));
  const from = query.get('from') ?? '';
  const to = query.get('to') ?? '';
  const offset = Number(query.get('offset') ?? 0) || 0;

  const boxes = CAUSES.map((cause) =>
    h('input', { type: 'checkbox', name: 'cause', value: cause, id: uid('cause'), checked: chosen.has(cause) }),
  );
  const fromInput = h('input', { type: 'date', name: 'from', value: from });
  const toInput = h('input', { type: 'date', name: 'to', value: to });
  const filters = h(
    'form',
    { class: 'filters card', role: 'search' },
    h(
      'fieldset',
      {},
      h('legend', { text: t('failures.causes') }),
      boxes.map((box) => h('label', { for: box.id, class: 'inline' }, box, ' ', tEnum('cause', box.value))),
    ),
    ...dateFields(fromInput, toInput),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', text: t('common.apply') })),
  );
  onSubmit(filters, () => {
    setQuery({
      cause: boxes.filter((b) => b.checked).map((b) => b.value),
      from: fromInput.value,
      to: toInput.value,
    });
  });
  const results = h('div', { class: 'results' });
  main.append(filters, results);

  const load = async () => {
    const page = await call('get', '/internal/failed-pairings', {
      query: {
        'cause_tags[]': /** @type {FailureCause[]} */ ([...chosen]),
        ...dayRange(from, to),
        limit: LIMIT,
        offset,
      },
    });
    replace(
      results,
      table(
        t('nav.failures'),
        [t('common.createdAt'), t('common.customer'), t('failures.cause'), t('common.amount'), t('failures.payment'), t('failures.action')],
        page.rows.map((row) => [
          time(row.created_at),
          row.customer.call_name ?? row.customer.id,
          tEnum('cause', row.cause_tag),
          rupiah(row.amount),
          [row.payment_status, served(row) ? h('span', { class: 'badge warn', text: t('failures.servedAfterAll') }) : null],
          actionCell(row, () => busy(null, load)),
        ]),
        t('failures.empty'),
      ),
      pager({ offset, limit: LIMIT, total: page.total }, (next) =>
        setQuery({ cause: [...chosen], from, to, offset: next }),
      ),
    );
  };
  await load();
}
