// The console's shell: header, navigation, language switch, status region and the hash router.
import { call, isAdmin, session, signOut } from './api.js';
import { h, replace } from './dom.js';
import { lang, setLang, t } from './i18n.js';
import { setZone, showError } from './ui.js';

/**
 * A page: renders into `main`; returns an optional cleanup (timers) run when the page is left.
 * @typedef {(main: HTMLElement, query: URLSearchParams) => (void | (() => void) | Promise<void | (() => void)>)} Page
 * @typedef {{hash: string, label: import('./i18n.js').Key, load: () => Promise<{default: Page}>, adminOnly?: boolean}} Route
 */

/** @type {Route[]} */
const ROUTES = [
  { hash: 'overview', label: 'nav.overview', load: () => import('./pages/overview.js') },
  { hash: 'settings', label: 'nav.settings', load: () => import('./pages/settings.js') },
  { hash: 'failed-pairings', label: 'nav.failures', load: () => import('./pages/failures.js') },
  { hash: 'activity', label: 'nav.activity', load: () => import('./pages/activity.js') },
  { hash: 'mitras', label: 'nav.mitras', load: () => import('./pages/mitras.js') },
  { hash: 'sessions', label: 'nav.sessions', load: () => import('./pages/sessions.js') },
  { hash: 'early-ends', label: 'nav.flags', load: () => import('./pages/flags.js') },
  { hash: 'customers', label: 'nav.customers', load: () => import('./pages/customers.js') },
  { hash: 'payments', label: 'nav.payments', load: () => import('./pages/payments.js') },
  { hash: 'operators', label: 'nav.operators', load: () => import('./pages/operators.js'), adminOnly: true },
  { hash: 'account', label: 'nav.account', load: () => import('./pages/account.js') },
];

/** @param {string} id */
function byId(id) {
  const el = document.getElementById(id);
  if (!el) throw new Error(`#${id} missing from index.html`);
  return el;
}

const main = byId('main');
const nav = byId('nav');

/** @type {(() => void) | void} */
let leave;
let renderCount = 0;

/** The route and its query from the hash: `#/failed-pairings?offset=50`. */
function current() {
  const raw = location.hash.replace(/^#\/?/, '');
  const [name, search] = raw.split('?', 2);
  return { name: name || 'overview', query: new URLSearchParams(search ?? '') };
}

function renderChrome() {
  document.documentElement.lang = lang();
  document.title = t('app.title');
  byId('skip-link').textContent = t('app.skip');
  nav.setAttribute('aria-label', t('app.menu'));
  const signedIn = session();
  const langButton = byId('lang');
  langButton.textContent = t('app.switchLanguage');
  langButton.setAttribute('lang', lang() === 'id' ? 'en' : 'id');
  const out = /** @type {HTMLButtonElement} */ (byId('sign-out'));
  out.textContent = t('app.signOut');
  out.hidden = !signedIn;
  byId('who').textContent = signedIn
    ? `${signedIn.user.display_name} (${t(signedIn.user.role === 'admin' ? 'role.admin' : 'role.operator')})`
    : '';
  const { name } = current();
  replace(
    nav,
    signedIn
      ? h(
          'ul',
          {},
          ROUTES.filter((route) => !route.adminOnly || isAdmin()).map((route) =>
            h(
              'li',
              {},
              h('a', {
                href: `#/${route.hash}`,
                text: t(route.label),
                'aria-current': route.hash === name ? 'page' : null,
              }),
            ),
          ),
        )
      : null,
  );
}

/**
 * A fresh element for one page, in place of the last: a page still loading when the operator
 * moves on writes into its own element, which is no longer shown.
 */
function view() {
  const element = h('div');
  main.replaceChildren(element);
  return element;
}

/** Whether the marketplace's time zone was read from the server. */
let zoneKnown = false;

async function render() {
  renderCount += 1;
  const mine = renderCount;
  if (typeof leave === 'function') leave();
  leave = undefined;
  renderChrome();
  byId('status').textContent = '';
  const { name, query } = current();
  if (!session()) {
    const page = await import('./pages/signin.js');
    if (mine !== renderCount) return;
    leave = await page.default(view(), query);
    return;
  }
  if (!zoneKnown) {
    try {
      setZone((await call('get', '/internal/overview')).time_zone);
      zoneKnown = true;
    } catch {
      // The page shows its own error; dates stay in the default zone until the next page.
    }
    if (mine !== renderCount) return;
  }
  const route = ROUTES.find((r) => r.hash === name) ?? ROUTES[0];
  if (route.adminOnly && !isAdmin()) {
    replace(main, h('h1', { text: t(route.label) }), h('p', { class: 'notice', text: t('app.adminOnly') }));
    return;
  }
  main.replaceChildren(h('p', { text: t('common.loading') }));
  try {
    const page = await route.load();
    if (mine !== renderCount) return;
    leave = await page.default(view(), query);
  } catch (error) {
    if (mine === renderCount) showError(error);
  }
}

byId('lang').addEventListener('click', () => {
  setLang(lang() === 'id' ? 'en' : 'id');
  render();
});
byId('sign-out').addEventListener('click', async () => {
  try {
    await signOut();
  } finally {
    location.hash = '#/';
  }
});
window.addEventListener('hashchange', () => render());
// Signed in, out, or the session was refused: draw again (the sign-in page when it is gone).
let signedIn = Boolean(session());
window.addEventListener('console:session', () => {
  const now = Boolean(session());
  if (now !== signedIn) {
    signedIn = now;
    render();
  } else {
    renderChrome();
  }
});
render();
