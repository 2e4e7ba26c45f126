// What every browser test shares: the service's addresses and accounts (from
// scripts/console-check), signing in through the console, the public API as a customer or a
// mitra, a mitra's live socket, and screenshots for docs/console/.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test as base, expect } from '@playwright/test';

/** @param {string} name */
function env(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with scripts/console-check`);
  return value;
}

export const PUBLIC = env('CONSOLE_PUBLIC');
export const INTERNAL = env('CONSOLE_INTERNAL');
export const ADMIN = { email: env('CONSOLE_ADMIN_EMAIL'), password: env('CONSOLE_ADMIN_PASSWORD') };
/** @type {{customers: {id: string, name: string, token: string}[], mitras: {id: string, name: string, token: string}[]}} */
export const TOKENS = JSON.parse(readFileSync(env('CONSOLE_TOKENS'), 'utf8'));

/** @param {string} name a customer (`c0`) or a mitra (`m0`) of the seed */
export function account(name) {
  const all = [...TOKENS.customers, ...TOKENS.mitras];
  const found = all.find((a) => a.name === name);
  if (!found) throw new Error(`no seeded account ${name}`);
  return found;
}

/** The load-test customer `n`'s phone (domain::seed::load_customer_phone). @param {number} n */
export function customerPhone(n) {
  return `+62899${String(n).padStart(9, '0')}`;
}

/** The Content-Security-Policy api/src/console.rs sends with every console file. */
const CSP =
  "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/**
 * Checks that the binary serves the console at /console/ with its Content-Security-Policy
 * (the tests drive what `bestie` serves, never a copy).
 * @param {import('@playwright/test').BrowserContext} _context
 * @param {import('@playwright/test').APIRequestContext} request
 */
export async function serveConsole(_context, request) {
  const response = await request.get(`${INTERNAL}/console/`);
  expect(response.status(), 'bestie serves /console/').toBe(200);
  expect(response.headers()['content-security-policy']).toBe(CSP);
}

/**
 * Fails the test on a script error or a CSP violation in the page.
 * @param {import('@playwright/test').Page} page
 * @returns {() => void} the check, run at the end
 */
export function watch(page) {
  const problems = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && /Content Security Policy|Refused to/i.test(message.text())) problems.push(message.text());
  });
  return () => expect(problems, 'no script errors or CSP violations').toEqual([]);
}

export const test = base.extend({
  page: async ({ page, request }, use) => {
    await serveConsole(page.context(), request);
    const check = watch(page);
    await use(page);
    check();
  },
});
export { expect };

/**
 * Opens the console and signs in through its form.
 * @param {import('@playwright/test').Page} page
 * @param {{email: string, password: string}} [who]
 */
export async function signIn(page, who = ADMIN) {
  await page.goto('/console/');
  await page.evaluate(() => localStorage.setItem('bestie.console.lang', 'en'));
  await page.reload();
  await page.getByLabel('Email').fill(who.email);
  await page.getByLabel('Password').fill(who.password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('button', { name: 'Sign out' })).toBeVisible();
}

/** Goes to a page of the console by its menu entry. @param {import('@playwright/test').Page} page @param {string} name */
export async function open(page, name) {
  await page.getByRole('navigation', { name: 'Menu' }).getByRole('link', { name, exact: true }).click();
  await expect(page.getByRole('heading', { level: 1, name })).toBeVisible();
}

/** An admin's access token, for setting up through the API what a test does not show. */
export async function adminToken(request) {
  const response = await request.post(`${INTERNAL}/internal/auth/login`, { data: ADMIN });
  expect(response.ok()).toBeTruthy();
  return (await response.json()).access_token;
}

/** Sets a configuration key through the API (admin). */
export async function setConfig(request, key, value) {
  const token = await adminToken(request);
  const response = await request.put(`${INTERNAL}/internal/config/${key}`, { data: { value }, headers: { authorization: `Bearer ${token}` } });
  expect(response.status(), await response.text()).toBe(200);
}

/**
 * Calls the public API as a seeded customer or mitra.
 * @param {import('@playwright/test').APIRequestContext} request
 * @param {string} who `c0`, `m1`, ...
 * @param {'GET'|'POST'|'PUT'} method
 * @param {string} path
 * @param {unknown} [data]
 */
export async function publicCall(request, who, method, path, data) {
  return request.fetch(`${PUBLIC}${path}`, {
    method,
    headers: { authorization: `Bearer ${account(who).token}` },
    data: data === undefined ? undefined : data,
  });
}

/** The same, expecting 2xx, returning the JSON body. */
export async function publicOk(request, who, method, path, data) {
  const response = await publicCall(request, who, method, path, data);
  const text = await response.text();
  expect(response.ok(), `${method} ${path}: ${response.status()} ${text}`).toBeTruthy();
  return text ? JSON.parse(text) : undefined;
}

/**
 * Puts a seeded mitra online: a live socket (held by a blank page of its own, outside the
 * console's CSP) and the switch on. Returns a function that closes the socket.
 * @param {import('@playwright/test').Browser} browser
 * @param {import('@playwright/test').APIRequestContext} request
 * @param {string} who
 */
export async function mitraOnline(browser, request, who) {
  const context = await browser.newContext();
  const holder = await context.newPage();
  const wsUrl = `${PUBLIC.replace(/^http/, 'ws')}/ws?token=${encodeURIComponent(account(who).token)}`;
  await holder.evaluate(
    (target) =>
      new Promise((resolve, reject) => {
        const socket = new WebSocket(target);
        // @ts-ignore kept alive by the page
        window.__socket = socket;
        socket.onopen = () => resolve(undefined);
        socket.onerror = () => reject(new Error('socket failed'));
      }),
    wsUrl,
  );
  await publicOk(request, who, 'POST', '/api/mitra/status', { online: true });
  await expect.poll(async () => (await publicOk(request, who, 'GET', '/api/mitra/status')).online).toBe(true);
  return async () => {
    await publicCall(request, who, 'POST', '/api/mitra/status', { online: false });
    await context.close();
  };
}

/**
 * A customer's paid search: a payment session for the 15-minute tier, confirmed, and a general
 * blast. Returns the payment session's id.
 */
export async function startSearch(request, who) {
  const payment = await publicOk(request, who, 'POST', '/api/client/payment-sessions', { duration_minutes: 15 });
  await publicOk(request, who, 'POST', `/api/client/payment-sessions/${payment.id}/confirm`);
  await publicOk(request, who, 'POST', '/api/client/chat-requests', { payment_session_id: payment.id });
  return payment.id;
}

/** Writes docs/console/<name>.png when SCREENSHOTS=1 (scripts/console-check). */
export async function screenshot(page, name) {
  const dir = process.env.CONSOLE_SCREENSHOTS;
  if (!dir) return;
  await page.waitForLoadState('networkidle');
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: false });
}

/** Today in the marketplace's zone (`YYYY-MM-DD`), as the date inputs take it. */
export function today() {
  return new Intl.DateTimeFormat('en-CA', { timeZone: 'Asia/Jakarta', year: 'numeric', month: '2-digit', day: '2-digit' }).format(new Date());
}
