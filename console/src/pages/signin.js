// The sign-in page: email and password; the server's refusal is shown under the form.
import { signIn } from '../api.js';
import { field, h, replace } from '../dom.js';
import { t } from '../i18n.js';
import { announce, busy, errorLine, onSubmit } from '../ui.js';

/** @type {import('../app.js').Page} */
export default function signInPage(main) {
  const email = h('input', { type: 'email', name: 'email', autocomplete: 'username', required: true });
  const password = h('input', { type: 'password', name: 'password', autocomplete: 'current-password', required: true });
  const submit = h('button', { type: 'submit', text: t('signin.submit') });
  const errors = errorLine();
  const form = h(
    'form',
    { class: 'card narrow', 'aria-labelledby': 'signin-title' },
    field(t('common.email'), email),
    field(t('common.password'), password),
    errors.el,
    submit,
  );
  onSubmit(form, () => {
    busy(
      submit,
      async () => {
        await signIn(email.value.trim(), password.value);
        announce(t('signin.signedIn'));
      },
      errors,
    );
  });
  replace(main, h('h1', { id: 'signin-title', text: t('signin.title') }), form);
  email.focus();
}
