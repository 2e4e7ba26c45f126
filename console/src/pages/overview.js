// Overview: the live counts (mitras online and available, searches in progress, active
// sessions), read every 5 seconds.
import { call } from '../api.js';
import { h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { describe, heading, number, time } from '../ui.js';

/** @typedef {import('../api.js').Schemas['Overview']} Overview */

/** The counts shown, in order, with their labels. @type {[keyof Overview, import('../i18n.js').Key][]} */
const COUNTS = [
  ['mitras_online', 'overview.mitrasOnline'],
  ['mitras_available', 'overview.mitrasAvailable'],
  ['searches', 'overview.searches'],
  ['active_sessions', 'overview.sessions'],
  ['open_failures', 'overview.openFailures'],
  ['open_review_flags', 'overview.openFlags'],
];

/** @type {import('../app.js').Page} */
export default function overviewPage(main) {
  heading(main, t('nav.overview'), t('overview.intro'));
  const counts = h('dl', { class: 'counts' });
  const stamp = h('p', { class: 'meta', text: t('common.updatedEvery') });
  main.append(counts, stamp);
  let stopped = false;
  const load = async () => {
    try {
      const overview = await call('get', '/internal/overview');
      if (stopped) return;
      replace(
        counts,
        COUNTS.map(([k, label]) =>
          h('div', { class: 'count' }, h('dt', { text: t(label) }), h('dd', { text: number(Number(overview[k])) })),
        ),
      );
      stamp.textContent = `${t('common.updatedEvery')} ${t('common.lastUpdated', { time: time(new Date().toISOString()) })}`;
    } catch (error) {
      if (stopped) return;
      replace(counts, h('p', { class: 'notice', text: describe(error) }));
    }
  };
  load();
  const timer = setInterval(load, 5000);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
