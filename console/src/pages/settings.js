// Settings: every run-time key with its label, explanation, a typed input, its range, and its
// change history. Only admins may save (the server answers others 403 `admin_required`).
import { call, isAdmin } from '../api.js';
import { h, replace, table, uid } from '../dom.js';
import { lang, t } from '../i18n.js';
import { announce, busy, errorLine, heading, onSubmit, time } from '../ui.js';

/** @typedef {import('../api.js').Schemas['KeyView']} KeyView */

/** @param {unknown} value */
function show(value) {
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** @param {KeyView} key */
function labelOf(key) {
  return (lang() === 'id' && key.label_id) || key.label;
}

/** @param {KeyView} key */
function explanationOf(key) {
  return (lang() === 'id' && key.explanation_id) || key.explanation;
}

/**
 * The input for a key's type, and how to read its value back.
 * @param {KeyView} key
 * @param {string} id
 * @returns {{input: HTMLInputElement | HTMLSelectElement | HTMLTextAreaElement, read: () => unknown}}
 */
function inputFor(key, id) {
  switch (key.type) {
    case 'integer': {
      const input = h('input', {
        id,
        type: 'number',
        step: 1,
        min: key.min ?? undefined,
        max: key.max ?? undefined,
        value: String(key.value),
        inputmode: 'numeric',
      });
      // Sent as typed (a number when it is one), so the server's validation speaks.
      return { input, read: () => (input.value.trim() === '' ? null : Number(input.value)) };
    }
    case 'boolean': {
      const input = h('input', { id, type: 'checkbox', checked: key.value === true });
      return { input, read: () => input.checked };
    }
    case 'enum': {
      const input = h(
        'select',
        { id },
        (key.values ?? []).map((value) => h('option', { value, text: value, selected: value === key.value })),
      );
      return { input, read: () => input.value };
    }
    default: {
      const input = h('textarea', { id, rows: 6, spellcheck: 'false', class: 'code' });
      input.value = JSON.stringify(key.value, null, 2);
      return {
        input,
        read: () => {
          try {
            return JSON.parse(input.value);
          } catch (error) {
            throw new Error(t('settings.invalidJson', { message: error instanceof Error ? error.message : '' }));
          }
        },
      };
    }
  }
}

/**
 * The change history of one key, loaded when opened.
 * @param {string} key
 */
async function history(key) {
  const { changes } = await call('get', '/internal/config/changes', { query: { key, limit: 20 } });
  return table(
    t('settings.historyOf', { key }),
    [t('settings.changedAt'), t('settings.changedBy'), t('settings.oldValue'), t('settings.newValue')],
    changes.map((c) => [time(c.changed_at), c.changed_by?.email ?? t('common.none'), show(c.old_value), show(c.new_value)]),
    t('settings.noChanges'),
  );
}

/** @param {KeyView} key @param {boolean} admin */
function keyForm(key, admin) {
  const inputId = uid(`cfg-${key.key}`);
  const titleId = `${inputId}-title`;
  const { input, read } = inputFor(key, inputId);
  input.disabled = !admin;
  input.setAttribute('aria-describedby', `${inputId}-about`);
  const errors = errorLine();
  const save = h('button', { type: 'submit', text: t('common.save'), disabled: !admin });
  const meta = h('p', { class: 'meta' });
  const drawMeta = () =>
    replace(
      meta,
      h('code', { text: key.key }),
      ' · ',
      t('settings.default', { value: show(key.default) }),
      key.min !== null && key.min !== undefined ? ` · ${t('settings.range', { min: key.min, max: key.max ?? '' })}` : null,
      key.public ? ` · ${t('settings.public')}` : null,
      key.updated_at ? ` · ${t('settings.updated', { time: time(key.updated_at) })}` : null,
    );
  drawMeta();
  const historyBox = h('div', { class: 'history', hidden: true });
  const historyButton = h('button', { type: 'button', class: 'secondary', text: t('settings.history'), 'aria-expanded': 'false' });
  historyButton.addEventListener('click', async () => {
    const open = historyBox.hidden;
    historyButton.setAttribute('aria-expanded', String(open));
    historyBox.hidden = !open;
    if (open) await busy(historyButton, async () => replace(historyBox, await history(key.key)));
  });
  // The heading is the input's label (a checkbox is named by it, and says "On" beside it).
  const boolean = key.type === 'boolean';
  if (boolean) input.setAttribute('aria-labelledby', titleId);
  const form = h(
    'form',
    // novalidate: the server's refusal (with its range) is what the operator sees.
    { class: 'card setting', 'aria-labelledby': titleId, 'data-key': key.key, novalidate: true },
    h('h2', { id: titleId }, boolean ? labelOf(key) : h('label', { for: inputId, text: labelOf(key) })),
    h('p', { id: `${inputId}-about`, text: explanationOf(key) }),
    h('div', { class: 'field' }, boolean ? h('label', { for: inputId, class: 'inline' }, input, ' ', t('settings.on')) : input),
    meta,
    errors.el,
    h('div', { class: 'buttons' }, save, historyButton),
    historyBox,
  );
  onSubmit(form, () => {
    busy(
      save,
      async () => {
        const updated = await call('put', '/internal/config/{key}', { params: { key: key.key }, body: { value: read() } });
        Object.assign(key, updated);
        drawMeta();
        announce(t('settings.savedKey', { key: labelOf(key) }));
        if (!historyBox.hidden) replace(historyBox, await history(key.key));
      },
      errors,
    );
  });
  return form;
}

/** @type {import('../app.js').Page} */
export default async function settingsPage(main) {
  heading(main, t('nav.settings'), t('settings.intro'));
  const admin = isAdmin();
  if (!admin) main.append(h('p', { class: 'notice', text: t('settings.readOnly') }));
  const { keys } = await call('get', '/internal/config');
  main.append(...keys.map((key) => keyForm(key, admin)));
}
