// What several pages share: the status region, error display, formats, dates, pagination.
import { ApiError } from './api.js';
import { field, h, replace, uid } from './dom.js';
import { lang, t } from './i18n.js';

/**
 * The marketplace's time zone (the server's `database.time_zone`): the days the filters mean
 * and the times shown. Asia/Jakarta until the overview has said otherwise.
 */
export let ZONE = 'Asia/Jakarta';

/** @param {string} zone an IANA name, as `GET /internal/overview` gives it */
export function setZone(zone) {
  ZONE = zone;
}

/** @param {unknown} error */
export function describe(error) {
  if (error instanceof ApiError) return t('common.errorWithCode', { message: error.message, code: error.code });
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Announces a message in the page's `aria-live` region. @param {string} text */
export function announce(text) {
  const status = document.getElementById('status');
  if (status) {
    status.classList.remove('error');
    status.textContent = text;
  }
}

/** Shows an error in the `aria-live` region. @param {unknown} error */
export function showError(error) {
  const status = document.getElementById('status');
  if (status) {
    status.classList.add('error');
    status.textContent = describe(error);
  }
}

/**
 * An error line beside a form: `role="alert"`, so it is read out when it appears.
 * @returns {{el: HTMLParagraphElement, show: (error: unknown) => void, clear: () => void}}
 */
export function errorLine() {
  const el = h('p', { class: 'form-error', role: 'alert', hidden: true });
  return {
    el,
    show(error) {
      el.textContent = describe(error);
      el.hidden = false;
    },
    clear() {
      el.textContent = '';
      el.hidden = true;
    },
  };
}

/**
 * Runs an action while its button is disabled; shows its error beside it or in the status.
 * @template T
 * @param {HTMLButtonElement | null} button
 * @param {() => Promise<T>} action
 * @param {{show: (error: unknown) => void, clear: () => void}} [errors]
 * @returns {Promise<T | undefined>}
 */
export async function busy(button, action, errors) {
  if (button) button.disabled = true;
  errors?.clear();
  try {
    return await action();
  } catch (error) {
    if (errors) errors.show(error);
    else showError(error);
    return undefined;
  } finally {
    if (button) button.disabled = false;
  }
}

function locale() {
  return lang() === 'id' ? 'id-ID' : 'en-GB';
}

/** A time in the marketplace's zone. @param {string | null | undefined} iso */
export function time(iso) {
  if (!iso) return '—';
  return new Intl.DateTimeFormat(locale(), { dateStyle: 'medium', timeStyle: 'medium', timeZone: ZONE }).format(
    new Date(iso),
  );
}

/** Rupiah. @param {number} amount */
export function rupiah(amount) {
  return new Intl.NumberFormat(locale(), { style: 'currency', currency: 'IDR', maximumFractionDigits: 0 }).format(
    amount,
  );
}

/** @param {number} n */
export function number(n) {
  return new Intl.NumberFormat(locale()).format(n);
}

/** A fraction as a percentage. @param {number} fraction */
export function percent(fraction) {
  return new Intl.NumberFormat(locale(), { style: 'percent', maximumFractionDigits: 1 }).format(fraction);
}

/** Today (`YYYY-MM-DD`) in the marketplace's zone, moved by `days`. @param {number} [days] */
export function today(days = 0) {
  const parts = new Intl.DateTimeFormat('en-CA', { timeZone: ZONE, year: 'numeric', month: '2-digit', day: '2-digit' })
    .format(new Date());
  return addDays(parts, days);
}

/** @param {string} day `YYYY-MM-DD` @param {number} days */
export function addDays(day, days) {
  const date = new Date(`${day}T00:00:00Z`);
  date.setUTCDate(date.getUTCDate() + days);
  return date.toISOString().slice(0, 10);
}

/**
 * The API's `[date_from, date_to)` for an inclusive range of marketplace days picked in the
 * form (the server reads a bare date as midnight in the marketplace's zone).
 * @param {string} from
 * @param {string} to inclusive
 */
export function dayRange(from, to) {
  return { date_from: from || undefined, date_to: to ? addDays(to, 1) : undefined };
}

/**
 * The two day fields of a filter and the note that they are marketplace days.
 * @param {HTMLInputElement} from
 * @param {HTMLInputElement} to
 */
export function dateFields(from, to) {
  const note = h('p', { class: 'hint wide', id: uid('days'), text: t('common.datesHint', { zone: ZONE }) });
  from.setAttribute('aria-describedby', note.id);
  to.setAttribute('aria-describedby', note.id);
  return [field(t('common.dateFrom'), from), field(t('common.dateTo'), to), note];
}

/**
 * Previous/next buttons and "41–60 of 75".
 * @param {{offset: number, limit: number, total: number}} page
 * @param {(offset: number) => void} go
 */
export function pager({ offset, limit, total }, go) {
  const first = total === 0 ? 0 : offset + 1;
  const last = Math.min(offset + limit, total);
  return h(
    'nav',
    { class: 'pager', 'aria-label': t('common.pages') },
    h('button', {
      type: 'button',
      text: t('common.previous'),
      disabled: offset === 0,
      onclick: () => go(Math.max(0, offset - limit)),
    }),
    h('span', { text: t('common.range', { first, last, total }) }),
    h('button', {
      type: 'button',
      text: t('common.next'),
      disabled: offset + limit >= total,
      onclick: () => go(offset + limit),
    }),
  );
}

/**
 * The page's heading and an area for its content.
 * @param {HTMLElement} main
 * @param {string} title
 * @param {string} [intro]
 */
export function heading(main, title, intro) {
  replace(main, h('h1', { text: title }), intro ? h('p', { class: 'intro', text: intro }) : null);
}

/** A yes/no badge. @param {boolean} on @param {string} yes @param {string} no */
export function badge(on, yes, no) {
  return h('span', { class: on ? 'badge on' : 'badge off', text: on ? yes : no });
}

/**
 * Reads the hash's query back (`#/route?x=1`) and writes a new one without reloading twice.
 * @param {Record<string, string | string[] | number | undefined>} values
 */
export function setQuery(values) {
  const [route] = location.hash.replace(/^#\/?/, '').split('?', 1);
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(values)) {
    if (value === undefined || value === '') continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, String(item));
  }
  const qs = search.toString();
  location.hash = `#/${route || 'overview'}${qs ? `?${qs}` : ''}`;
}

/**
 * Runs `action` when `form` is submitted, instead of the browser's navigation.
 * @param {HTMLFormElement} form @param {() => void} action
 */
export function onSubmit(form, action) {
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    action();
  });
}
