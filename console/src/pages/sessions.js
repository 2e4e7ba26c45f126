// Live sessions: every session not completed, refreshed every 5 seconds.
import { call } from '../api.js';
import { h, replace, table } from '../dom.js';
import { t } from '../i18n.js';
import { heading, number, showError, time } from '../ui.js';

/** @type {import('../app.js').Page} */
export default function sessionsPage(main) {
  heading(main, t('nav.sessions'), t('sessions.intro'));
  const box = h('div');
  main.append(box, h('p', { class: 'meta', text: t('common.updatedEvery') }));
  let stopped = false;
  const load = async () => {
    try {
      const { rows } = await call('get', '/internal/sessions/live');
      if (stopped) return;
      replace(
        box,
        table(
          t('nav.sessions'),
          [t('common.status'), t('common.customer'), t('common.mitra'), t('sessions.startedAt'), t('sessions.endsAt'), t('sessions.secondsLeft'), t('sessions.messages')],
          rows.map((s) => [s.status, s.customer.call_name, s.mitra.display_name, time(s.started_at), time(s.ends_at), number(s.seconds_left), number(s.messages)]),
          t('sessions.empty'),
        ),
      );
    } catch (error) {
      if (!stopped) showError(error);
    }
  };
  load();
  const timer = setInterval(load, 5000);
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}
