// The typed client of the internal listener. Every call names its route by the OpenAPI path
// and method, so the request (path parameters, query, body) and the answer are typed from
// api-types.d.ts, which scripts/console-check regenerates from /internal/openapi.json: when a
// route or a shape changes, `tsc` fails here or in the page that uses it.

/** @typedef {import('./api-types').paths} Paths */
/** @typedef {import('./api-types').components['schemas']} Schemas */
/** @typedef {'get' | 'post' | 'put' | 'patch' | 'delete'} Method */

/**
 * The JSON answer of an operation's 200 or 201 (void for 204).
 * @template O
 * @typedef {O extends {responses: {200: {content: {'application/json': infer J}}}} ? J
 *   : O extends {responses: {201: {content: {'application/json': infer J}}}} ? J : void} Ok
 */
/**
 * @template O
 * @typedef {O extends {requestBody: {content: {'application/json': infer B}}} ? B
 *   : O extends {requestBody?: {content: {'application/json': infer B}}} ? B | undefined : undefined} Body
 */
/**
 * @template O
 * @typedef {O extends {parameters: {query?: infer Q}} ? Q : never} Query
 */
/**
 * @template O
 * @typedef {O extends {parameters: {path: infer X}} ? X : undefined} Params
 */
/**
 * The routes that have the method.
 * @template {Method} M
 * @typedef {{[P in keyof Paths]: Paths[P] extends {[K in M]: object} ? P : never}[keyof Paths]} PathsWith
 */
/**
 * @template {Method} M
 * @template {PathsWith<M>} P
 * @typedef {Paths[P][M]} Op
 */

/** @typedef {Schemas['OperatorSession']} OperatorSession */
/** @typedef {Schemas['OperatorUser']} OperatorUser */

/** An answer outside 2xx, with the body's stable code and message (docs/ERRORS.md). */
export class ApiError extends Error {
  /**
   * @param {number} status
   * @param {string} code
   * @param {string} message
   * @param {Record<string, unknown>} [details] the error object's other fields
   */
  constructor(status, code, message, details = {}) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const SESSION_KEY = 'bestie.console.session';

/** @returns {OperatorSession | null} */
export function session() {
  const raw = sessionStorage.getItem(SESSION_KEY);
  if (!raw) return null;
  try {
    return /** @type {OperatorSession} */ (JSON.parse(raw));
  } catch {
    return null;
  }
}

/** @param {OperatorSession | null} value */
function setSession(value) {
  if (value) sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
  else sessionStorage.removeItem(SESSION_KEY);
  window.dispatchEvent(new CustomEvent('console:session'));
}

/** @returns {boolean} */
export function isAdmin() {
  return session()?.user.role === 'admin';
}

/**
 * @param {string} path a path template (`/internal/mitras/{id}/deactivate`)
 * @param {Record<string, string> | undefined} params
 * @param {Record<string, unknown> | undefined} query arrays repeat the parameter
 */
function url(path, params, query) {
  let out = path.replace(/\{(\w+)\}/g, (_, name) => {
    const value = params?.[name];
    if (value === undefined) throw new Error(`missing path parameter ${name}`);
    return encodeURIComponent(value);
  });
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query ?? {})) {
    if (value === undefined || value === null || value === '') continue;
    for (const item of Array.isArray(value) ? value : [value]) search.append(name, String(item));
  }
  const qs = search.toString();
  if (qs) out += `?${qs}`;
  return out;
}

/** @param {Response} response */
async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's page, or nothing
  }
  const error = body && typeof body === 'object' && body.error && typeof body.error === 'object' ? body.error : {};
  const { code, message, ...details } = error;
  return new ApiError(
    response.status,
    typeof code === 'string' ? code : `http_${response.status}`,
    typeof message === 'string' ? message : response.statusText || `HTTP ${response.status}`,
    details,
  );
}

/** @type {Promise<boolean> | null} */
let refreshing = null;

/** Trades the refresh token for new tokens, once at a time; false when that is refused. */
function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      const current = session();
      if (!current) return false;
      const response = await fetch('/internal/auth/refresh', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ refresh_token: current.refresh_token }),
      });
      if (!response.ok) return false;
      /** @type {Schemas['Tokens']} */
      const tokens = await response.json();
      setSession({ ...current, ...tokens });
      return true;
    })().finally(() => {
      refreshing = null;
    });
  }
  return refreshing;
}

/**
 * Sends a request with the access token; on a 401 refreshes once and retries, and when that
 * fails too, forgets the session (the app shows the sign-in page).
 * @param {string} method
 * @param {string} target
 * @param {unknown} [body]
 * @returns {Promise<Response>}
 */
async function send(method, target, body) {
  const attempt = () => {
    /** @type {Record<string, string>} */
    const headers = {};
    const token = session()?.access_token;
    if (token) headers.authorization = `Bearer ${token}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    return fetch(target, {
      method: method.toUpperCase(),
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  };
  let response = await attempt();
  if (response.status === 401 && session()) {
    if (await refresh()) response = await attempt();
    if (response.status === 401) setSession(null);
  }
  return response;
}

/**
 * Calls a route of the internal listener.
 * @template {Method} M
 * @template {PathsWith<M>} P
 * @param {M} method
 * @param {P} path
 * @param {{params?: Params<Op<M, P>>, query?: Query<Op<M, P>>, body?: Body<Op<M, P>>}} [options]
 * @returns {Promise<Ok<Op<M, P>>>}
 */
export async function call(method, path, options = {}) {
  const target = url(
    path,
    /** @type {Record<string, string> | undefined} */ (options.params),
    /** @type {Record<string, unknown> | undefined} */ (options.query),
  );
  const response = await send(method, target, options.body);
  if (!response.ok) throw await errorOf(response);
  if (response.status === 204) return /** @type {Ok<Op<M, P>>} */ (undefined);
  return response.json();
}

/**
 * Fetches a file with the token (a CSV export) and hands it to the browser as a download.
 * @param {string} target the route with its query
 * @param {string} filename
 */
export async function download(target, filename) {
  const response = await send('get', target);
  if (!response.ok) throw await errorOf(response);
  const blob = await response.blob();
  const href = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = href;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}

/**
 * Signs in; keeps the tokens and the account in sessionStorage.
 * @param {string} email
 * @param {string} password
 */
export async function signIn(email, password) {
  const response = await fetch('/internal/auth/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  if (!response.ok) throw await errorOf(response);
  /** @type {OperatorSession} */
  const signedIn = await response.json();
  setSession(signedIn);
  return signedIn;
}

/** Signs out (the refresh token's family is revoked); forgets the session whatever the answer. */
export async function signOut() {
  const current = session();
  try {
    if (current) await call('post', '/internal/auth/logout', { body: { refresh_token: current.refresh_token } });
  } finally {
    setSession(null);
  }
}

/** Forgets the session without calling the server (after a password change ended it). */
export function forget() {
  setSession(null);
}

/**
 * Builds `path?query` as `call` does (for downloads).
 * @template {PathsWith<'get'>} P
 * @param {P} path
 * @param {Query<Op<'get', P>>} query
 */
export function withQuery(path, query) {
  return url(path, undefined, /** @type {Record<string, unknown>} */ (query));
}
