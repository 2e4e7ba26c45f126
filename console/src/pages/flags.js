// Early ends and review flags: the mitras over the daily early-end cap (resolve each once
// looked at), and the log of early ends with their reasons.
import { call } from '../api.js';
import { h, replace, table, uid } from '../dom.js';
import { t } from '../i18n.js';
import { announce, badge, busy, dateFields, dayRange, errorLine, heading, onSubmit, setQuery, time, today } from '../ui.js';

/** @typedef {import('../api.js').Schemas['ReviewFlagView']} Flag */

/** @param {Flag} flag @param {() => void} reload */
function resolveCell(flag, reload) {
  if (flag.reviewed_at) return time(flag.reviewed_at);
  const errors = errorLine();
  const button = h('button', {
    type: 'button',
    text: t('flags.resolve'),
    'aria-label': `${t('flags.resolve')}: ${flag.mitra.display_name} ${flag.day}`,
  });
  button.addEventListener('click', () =>
    busy(
      button,
      async () => {
        await call('post', '/internal/review-flags/{id}/resolve', { params: { id: flag.id } });
        announce(t('flags.resolved'));
        reload();
      },
      errors,
    ),
  );
  return h('div', { class: 'row-action' }, button, errors.el);
}

/** @type {import('../app.js').Page} */
export default async function flagsPage(main, query) {
  heading(main, t('nav.flags'), t('flags.intro'));
  const includeResolved = query.get('resolved') === '1';
  const from = query.get('from') ?? today(-6);
  const to = query.get('to') ?? today();

  const resolvedBox = h('input', { type: 'checkbox', id: uid('resolved'), checked: includeResolved });
  resolvedBox.addEventListener('change', () => setQuery({ resolved: resolvedBox.checked ? '1' : '', from, to }));
  const flagsBox = h('div');
  const loadFlags = async () => {
    const { rows } = await call('get', '/internal/review-flags', { query: { include_resolved: includeResolved, limit: 100 } });
    replace(
      flagsBox,
      table(
        t('flags.flags'),
        [t('common.mitra'), t('flags.day'), t('flags.count'), t('flags.reason'), t('common.status'), t('flags.reviewed')],
        rows.map((flag) => [
          flag.mitra.display_name,
          flag.day,
          String(flag.count),
          flag.reason,
          badge(!flag.reviewed_at, t('flags.open'), t('flags.reviewed')),
          resolveCell(flag, () => busy(null, loadFlags)),
        ]),
        t('flags.emptyFlags'),
      ),
    );
  };

  const fromInput = h('input', { type: 'date', value: from });
  const toInput = h('input', { type: 'date', value: to });
  const endsFilters = h(
    'form',
    { class: 'filters', role: 'search' },
    ...dateFields(fromInput, toInput),
    h('div', { class: 'buttons' }, h('button', { type: 'submit', text: t('common.apply') })),
  );
  onSubmit(endsFilters, () => {
    setQuery({ resolved: includeResolved ? '1' : '', from: fromInput.value, to: toInput.value });
  });
  const endsBox = h('div');
  main.append(
    h('section', { 'aria-labelledby': 'flags-title' },
      h('h2', { id: 'flags-title', text: t('flags.flags') }),
      h('label', { for: resolvedBox.id, class: 'inline' }, resolvedBox, ' ', t('flags.includeResolved')),
      flagsBox,
    ),
    h('section', { 'aria-labelledby': 'ends-title' }, h('h2', { id: 'ends-title', text: t('flags.earlyEnds') }), endsFilters, endsBox),
  );
  await loadFlags();
  const { rows } = await call('get', '/internal/early-ends', { query: { ...dayRange(from, to), limit: 200 } });
  replace(
    endsBox,
    table(
      t('flags.earlyEnds'),
      [t('flags.endedAt'), t('flags.initiatedBy'), t('common.mitra'), t('common.customer'), t('flags.reasonCode'), t('flags.reason')],
      rows.map((e) => [time(e.ended_at), e.initiated_by, e.mitra.display_name, e.customer.call_name, e.reason_code ?? t('common.none'), e.reason ?? t('common.none')]),
      t('flags.emptyEnds'),
    ),
  );
}
