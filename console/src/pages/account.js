// My account: change one's own password; every sign-in of the account ends, so the console
// signs in again.
import { call, forget } from '../api.js';
import { field, h } from '../dom.js';
import { t } from '../i18n.js';
import { announce, busy, errorLine, heading, onSubmit } from '../ui.js';

/** @type {import('../app.js').Page} */
export default function accountPage(main) {
  heading(main, t('nav.account'), t('account.intro'));
  const current = h('input', { type: 'password', autocomplete: 'current-password', required: true });
  const next = h('input', { type: 'password', autocomplete: 'new-password', required: true, minlength: 8, maxlength: 256 });
  const submit = h('button', { type: 'submit', text: t('account.change') });
  const errors = errorLine();
  const form = h(
    'form',
    { class: 'card narrow', 'aria-label': t('account.change') },
    field(t('account.current'), current),
    field(t('account.new'), next, t('account.newHint')),
    errors.el,
    submit,
  );
  onSubmit(form, () => {
    busy(
      submit,
      async () => {
        await call('post', '/internal/auth/password', { body: { current_password: current.value, new_password: next.value } });
        forget();
        announce(t('account.changed'));
      },
      errors,
    );
  });
  main.append(form);
}
