// Mitra request activity: offers and answers per mitra over a range of marketplace days,
// sortable; a drill-down lists one mitra's offers one by one.
import { call } from '../api.js';
import { field, h, replace, table } from '../dom.js';
import { t, tEnum } from '../i18n.js';
import { busy, dateFields, dayRange, heading, number, onSubmit, pager, percent, setQuery, time, today } from '../ui.js';

/** @typedef {import('../api.js').Schemas['ActivityView']} ActivityView */
/** @typedef {NonNullable<NonNullable<import('../api.js').Paths['/internal/mitra-activity']['get']['parameters']['query']>['sort']>} Sort */

/** @typedef {import('../api.js').Schemas['OfferResponse']} OfferResponse */

/** @type {Sort[]} */
const SORTS = ['notified', 'accepted', 'rejected', 'ignored', 'missed', 'acceptance_rate', 'avg_response_seconds', 'display_name'];
/** @type {OfferResponse[]} */
const RESPONSES = ['accepted', 'rejected', 'ignored', 'missed'];
const LIMIT = 20;

/** @param {string} value @param {string[]} values @param {string} fallback */
function oneOf(value, values, fallback) {
  return values.includes(value) ? value : fallback;
}

/**
 * @param {HTMLElement} box
 * @param {{id: string, name: string, from: string, to: string, response: OfferResponse | '', offset: number}} state
 * @param {(changes: Record<string, string | number>) => void} go
 */
async function drillDown(box, state, go) {
  const responseSelect = h(
    'select',
    {},
    h('option', { value: '', text: t('activity.anyResponse') }),
    RESPONSES.map((r) => h('option', { value: r, text: tEnum('activity', r).toLowerCase(), selected: r === state.response })),
  );
  responseSelect.addEventListener('change', () => go({ response: responseSelect.value, offset: 0 }));
  const title = t('activity.log', { name: state.name });
  replace(
    box,
    h('h2', { text: title }),
    h('div', { class: 'filters' }, field(t('activity.response'), responseSelect)),
  );
  const page = await call('get', '/internal/mitra-activity/log', {
    query: { mitra_id: state.id, ...dayRange(state.from, state.to), response: state.response || undefined, limit: LIMIT, offset: state.offset },
  });
  box.append(
    table(
      title,
      [t('activity.notifiedAt'), t('activity.requestType'), t('activity.response'), t('activity.respondedAt'), t('activity.responseSeconds'), t('activity.activeSessions'), t('activity.pushed')],
      page.rows.map((row) => [
        time(row.notified_at),
        row.request_type,
        row.response
          ? tEnum('activity', row.response).toLowerCase()
          : t(row.request_status === 'pending' ? 'activity.pending' : 'activity.unanswered'),
        time(row.responded_at),
        row.response_seconds === null || row.response_seconds === undefined ? t('common.none') : number(row.response_seconds),
        number(row.active_session_count),
        row.pushed ? t('common.yes') : t('common.no'),
      ]),
      t('activity.empty'),
    ),
    pager({ offset: state.offset, limit: LIMIT, total: page.total }, (offset) => go({ offset })),
  );
}

/** @type {import('../app.js').Page} */
export default async function activityPage(main, query) {
  heading(main, t('nav.activity'), t('activity.intro'));
  const from = query.get('from') ?? today(-6);
  const to = query.get('to') ?? today();
  const sort = /** @type {Sort} */ (oneOf(query.get('sort') ?? '', SORTS, 'notified'));
  const order = /** @type {'asc' | 'desc'} */ (oneOf(query.get('order') ?? '', ['asc', 'desc'], 'desc'));
  const state = { from, to, sort, order };

  const fromInput = h('input', { type: 'date', value: from });
  const toInput = h('input', { type: 'date', value: to });
  const sortSelect = h('select', {}, SORTS.map((s) => h('option', { value: s, text: tEnum('activity', s), selected: s === sort })));
  const orderSelect = h(
    'select',
    {},
    h('option', { value: 'desc', text: t('activity.desc'), selected: order === 'desc' }),
    h('option', { value: 'asc', text: t('activity.asc'), selected: order === 'asc' }),
  );
  const filters = h(
    'form',
    { class: 'filters card', role: 'search' },
    ...dateFields(fromInput, toInput),
    field(t('activity.sort'), sortSelect),
    field(t('activity.order'), orderSelect),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', text: t('common.apply') })),
  );
  onSubmit(filters, () => {
    setQuery({ from: fromInput.value, to: toInput.value, sort: sortSelect.value, order: orderSelect.value });
  });
  const results = h('div');
  const detail = h('section', { class: 'detail', 'aria-live': 'polite' });
  main.append(filters, results, detail);

  const { rows } = await call('get', '/internal/mitra-activity', { query: { ...dayRange(from, to), sort, order } });
  replace(
    results,
    table(
      t('nav.activity'),
      [t('common.mitra'), ...SORTS.filter((s) => s !== 'display_name').map((s) => tEnum('activity', s)), t('common.actions')],
      rows.map((row) => [
        row.mitra.display_name,
        number(row.notified),
        number(row.accepted),
        number(row.rejected),
        number(row.ignored),
        number(row.missed),
        percent(row.acceptance_rate),
        row.avg_response_seconds === null || row.avg_response_seconds === undefined ? t('common.none') : number(Math.round(row.avg_response_seconds * 10) / 10),
        h('button', {
          type: 'button',
          class: 'secondary',
          text: t('activity.details'),
          'aria-label': t('activity.detailsOf', { name: row.mitra.display_name }),
          onclick: () => setQuery({ ...state, mitra: row.mitra.id, name: row.mitra.display_name }),
        }),
      ]),
      t('activity.empty'),
    ),
  );
  const mitra = query.get('mitra');
  if (mitra) {
    const drill = {
      id: mitra,
      name: query.get('name') ?? mitra,
      from,
      to,
      response: /** @type {OfferResponse | ''} */ (oneOf(query.get('response') ?? '', RESPONSES, '')),
      offset: Number(query.get('offset') ?? 0) || 0,
    };
    await busy(null, () =>
      drillDown(detail, drill, (changes) =>
        setQuery({ ...state, mitra: drill.id, name: drill.name, response: drill.response, offset: drill.offset, ...changes }),
      ),
    );
  }
}
