// Shared by the k6 scenarios: the seeded accounts, the REST calls the apps make, a socket
// client that speaks docs/PROTOCOL.md (welcome, resume, commands answered by `ref`), the
// metrics every scenario reports, and the summary written to loadtest/results/.
//
// The runner (loadtest/run) passes, as environment variables:
//   BASE         http://127.0.0.1:PORT, the public listener
//   ACCOUNTS     the JSON file of `bestie seed --load-customers N --load-mitras M --tokens FILE`
//   RESULT_BASE  where the summary goes: RESULT_BASE.json and RESULT_BASE.md
// and each scenario's own knobs (documented at the top of its script and in loadtest/README.md).

import http from 'k6/http';
import exec from 'k6/execution';
import { SharedArray } from 'k6/data';
import { Counter, Trend } from 'k6/metrics';
import { WebSocket } from 'k6/experimental/websockets';

export const BASE = __ENV.BASE || 'http://127.0.0.1:18780';
export const WS_URL = BASE.replace(/^http/, 'ws') + '/ws';

const accountsFile = __ENV.ACCOUNTS || '';
export const customers = new SharedArray('customers', () =>
  accountsFile ? JSON.parse(open(accountsFile)).customers : []);
export const mitras = new SharedArray('mitras', () =>
  accountsFile ? JSON.parse(open(accountsFile)).mitras : []);

/// An integer knob from the environment.
export function knob(name, fallback) {
  const value = __ENV[name];
  if (value === undefined || value === '') return fallback;
  const number = Number(value);
  if (!Number.isFinite(number)) throw new Error(`${name} must be a number, not ${value}`);
  return number;
}

// What every scenario counts. A threshold on a counter that must stay at zero needs the
// counter to exist in the summary, so each scenario adds 0 once (`touch`).
export const metrics = {
  connectFailed: new Counter('ws_connect_failed'),
  unexpectedClose: new Counter('ws_unexpected_close'),
  sockets: new Counter('ws_sockets_opened'),
  resyncRequired: new Counter('ws_resync_required'),
  replayed: new Counter('ws_events_replayed'),
  commandErrors: new Counter('ws_command_errors'),
  commandTimeouts: new Counter('ws_command_timeouts'),
  apiErrors: new Counter('api_errors'),
  sent: new Counter('chat_messages_sent'),
  received: new Counter('chat_messages_received'),
  lost: new Counter('chat_messages_lost'),
  duplicated: new Counter('chat_messages_duplicated'),
  receipts: new Counter('chat_receipts_seen'),
  typing: new Counter('chat_typing_seen'),
  ack: new Trend('chat_ack', true),
  delivery: new Trend('chat_delivery', true),
  roundTrip: new Trend('chat_round_trip', true),
  paired: new Counter('pairing_paired'),
  pairingFailed: new Counter('pairing_failed'),
  pairingTime: new Trend('pairing_blast_to_paired', true),
  acceptWon: new Counter('pairing_accept_won'),
  acceptLost: new Counter('pairing_accept_lost'),
  offers: new Counter('pairing_offers_seen'),
  resumeTime: new Trend('ws_resume', true),
  welcomeTime: new Trend('ws_welcome', true),
  welcomeLost: new Counter('ws_welcome_lost_by_k6'),
};

export function touch(...names) {
  for (const name of names) metrics[name].add(0);
}

const JSON_HEADERS = { 'Content-Type': 'application/json' };

function params(token, name) {
  return { headers: { ...JSON_HEADERS, Authorization: `Bearer ${token}` }, tags: { name } };
}

/// A REST call that must answer `expect`; the parsed body, or null (counted in api_errors,
/// with the route's name, and logged once per route).
const logged = {};
export async function call(method, path, token, body, expect, name) {
  const response = await http.asyncRequest(
    method, BASE + path, body === undefined ? null : JSON.stringify(body), params(token, name || path));
  if (response.status !== expect) {
    metrics.apiErrors.add(1, { route: name || path, status: String(response.status) });
    if (!logged[name || path]) {
      logged[name || path] = true;
      console.warn(`${method} ${path}: ${response.status} ${String(response.body).slice(0, 200)}`);
    }
    return null;
  }
  return response.body ? JSON.parse(response.body) : {};
}

/// The same, blocking the VU (for setup and the availability poll).
export function callSync(method, path, token, body, expect, name) {
  const response = http.request(
    method, BASE + path, body === undefined ? null : JSON.stringify(body), params(token, name || path));
  if (response.status !== expect) {
    metrics.apiErrors.add(1, { route: name || path, status: String(response.status) });
    return null;
  }
  return response.body ? JSON.parse(response.body) : {};
}

/// The stable `error.code` of an error answer's body, or `unknown`.
function errorCode(text) {
  try {
    return JSON.parse(text).error.code;
  } catch (e) {
    return 'unknown';
  }
}

export function sleepMs(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/// `<ms>-<seq>` ids compared numerically (docs/PROTOCOL.md §6).
export function idAfter(a, b) {
  if (!b) return true;
  const [am, as] = a.split('-').map(Number);
  const [bm, bs] = b.split('-').map(Number);
  return am > bm || (am === bm && as > bs);
}

const COMMAND_TIMEOUT_MS = 10000;
const CONNECT_TIMEOUT_MS = 10000;
// k6 1.1 now and then does not hand a socket's first frame to `onmessage` although the
// server sent it (about 1 socket in 3,000–10,000 at 500 openings a second; the server's
// `bestie_hub_frames_out_total{type="welcome"}` counted every welcome, and the socket stayed
// open until k6 closed it). A socket still without `welcome` WELCOME_PROBE_AFTER_MS after
// opening sends a `ping`; its `pong` proves the socket works, and the loss is counted in
// ws_welcome_lost_by_k6. The runner checks the server's side: every socket opened got a
// welcome (loadtest/run).
const WELCOME_PROBE = 'welcome-probe';
const WELCOME_PROBE_AFTER_MS = 3000;
const EVENT_HEAD = /^\{"id":"(\d+-\d+)","type":"([a-z_]+)"/;
const REQUEST_ID = /"request_id":"([0-9a-f-]{36})"/;

/// The `request_id` in a raw event frame, or null.
export function requestIdIn(text) {
  const match = REQUEST_ID.exec(text);
  return match ? match[1] : null;
}

/// One user's socket, reopened on demand with `last_event_id`: `on(type, fn)` handles events,
/// `command(type, data)` resolves with the answer frame (or null on an error frame / timeout).
export class Client {
  constructor(account, role) {
    this.account = account;
    this.role = role;
    this.handlers = {};
    this.rawHandlers = {};
    this.pending = new Map();
    this.nextRef = 1;
    this.lastId = null;
    this.ws = null;
    // Sockets closed on purpose (their close is not counted as unexpected).
    this.intentional = new Set();
  }

  on(type, handler) {
    this.handlers[type] = handler;
    return this;
  }

  /// Handles events of `type` from the frame's text, unparsed.
  onRaw(type, handler) {
    this.rawHandlers[type] = handler;
    return this;
  }

  /// Opens the socket; resolves once `welcome` (and, when resuming, `resumed` or
  /// `resync_required`) arrived, or with false when it could not open.
  connect(resume) {
    const url = resume && this.lastId ? `${WS_URL}?last_event_id=${this.lastId}` : WS_URL;
    const started = Date.now();
    return new Promise((resolve) => {
      let settled = false;
      let welcomed = false;
      const settle = (ok) => {
        if (!settled) {
          settled = true;
          resolve(ok);
        }
      };
      // A connection that neither opens nor fails within CONNECT_TIMEOUT_MS counts as failed.
      setTimeout(() => {
        if (settled) return;
        metrics.connectFailed.add(1, { phase: 'timeout' });
        console.warn(`socket of ${this.account.name} (${this.role}): no welcome within ${CONNECT_TIMEOUT_MS} ms ` +
          `(${welcomed ? 'welcomed, no resume answer' : `readyState ${ws.readyState}`})`);
        settle(false);
        this.intentional.add(ws);
        ws.close();
      }, CONNECT_TIMEOUT_MS);
      const ws = new WebSocket(url, null, {
        headers: { Authorization: `Bearer ${this.account.token}` },
        tags: { name: 'ws' },
      });
      this.ws = ws;
      ws.onmessage = (message) => {
        // Durable events start `{"id":"<id>","type":"<type>"`: keep the id, and hand the
        // types nobody parses (a mitra sees every blast's `chat_request_taken`) to their raw
        // handler, or drop them, without parsing the JSON.
        const head = EVENT_HEAD.exec(message.data);
        if (head) {
          if (!this.lastId || idAfter(head[1], this.lastId)) this.lastId = head[1];
          const raw = this.rawHandlers[head[2]];
          if (raw) {
            raw(message.data);
            return;
          }
          if (!this.handlers[head[2]]) return;
        }
        const frame = JSON.parse(message.data);
        switch (frame.type) {
          case 'welcome':
            welcomed = true;
            metrics.welcomeTime.add(Date.now() - started);
            metrics.sockets.add(1);
            if (!(resume && this.lastId)) settle(true);
            return;
          case 'pong':
            if (frame.ref === WELCOME_PROBE) {
              // The socket works but k6 never handed us its first frame (see WELCOME_PROBE).
              if (!welcomed) {
                welcomed = true;
                metrics.welcomeLost.add(1);
                metrics.sockets.add(1);
                console.warn(`socket of ${this.account.name} (${this.role}): k6 lost the welcome; the probe was answered`);
                if (!(resume && this.lastId)) settle(true);
              }
              return;
            }
            break;
          case 'resumed':
            welcomed = true;
            metrics.replayed.add(frame.data.count);
            metrics.resumeTime.add(Date.now() - started);
            settle(true);
            return;
          case 'resync_required':
            welcomed = true;
            metrics.resyncRequired.add(1);
            settle(true);
            return;
          default:
        }
        if (frame.ref !== undefined && this.pending.has(frame.ref)) {
          // The timeout is left to run out (see conversation.js on clearing timers in k6).
          const { resolve: answer } = this.pending.get(frame.ref);
          this.pending.delete(frame.ref);
          if (frame.type === 'error') {
            metrics.commandErrors.add(1, { code: frame.data.code });
            answer(null);
          } else {
            answer(frame);
          }
          return;
        }
        if (frame.type === 'error') {
          metrics.commandErrors.add(1, { code: frame.data.code });
          return;
        }
        const handler = this.handlers[frame.type];
        if (handler) handler(frame.data, frame);
      };
      ws.onopen = () => {
        setTimeout(() => {
          if (!welcomed && !settled && ws.readyState === 1) ws.send(JSON.stringify({ type: 'ping', ref: WELCOME_PROBE }));
        }, WELCOME_PROBE_AFTER_MS);
      };
      ws.onerror = (event) => {
        if (!settled) {
          metrics.connectFailed.add(1);
          if (!logged.connect) {
            logged.connect = true;
            console.warn(`socket of ${this.account.name} failed: ${event && event.error}`);
          }
        }
        settle(false);
      };
      ws.onclose = () => {
        if (!this.intentional.delete(ws) && welcomed) metrics.unexpectedClose.add(1, { role: this.role });
        if (!welcomed && !settled) metrics.connectFailed.add(1);
        for (const [ref, entry] of this.pending) {
          if (entry.ws !== ws) continue;
          this.pending.delete(ref);
          entry.resolve(null);
        }
        settle(false);
      };
    });
  }

  /// Sends a command; resolves with its answer frame, or null (error frame, timeout, closed).
  command(type, data) {
    if (!this.ws || this.ws.readyState !== 1) return Promise.resolve(null);
    const ref = this.nextRef++;
    return new Promise((resolve) => {
      setTimeout(() => {
        if (this.pending.delete(ref)) {
          metrics.commandTimeouts.add(1, { type });
          resolve(null);
        }
      }, COMMAND_TIMEOUT_MS);
      this.pending.set(ref, { resolve, ws: this.ws });
      this.ws.send(JSON.stringify({ type, ref, data }));
    });
  }

  /// Closes the socket on purpose (not counted as unexpected).
  close() {
    if (this.ws && this.ws.readyState <= 1) {
      this.intentional.add(this.ws);
      this.ws.close();
    }
  }
}

/// A customer's way to a chat: pays (the first payment is the free trial), confirms and
/// blasts (calling `beforeBlast` just before); resolves with the payment session id, or null.
export async function payAndBlast(token, beforeBlast) {
  const payment = await call('POST', '/api/client/payment-sessions', token, { duration_minutes: 15 }, 201,
    'payment-sessions');
  if (!payment) return null;
  const confirmed = await call('POST', `/api/client/payment-sessions/${payment.id}/confirm`, token, undefined, 200,
    'payment-sessions/{id}/confirm');
  if (!confirmed) return null;
  if (beforeBlast) beforeBlast();
  const request = await call('POST', '/api/client/chat-requests', token, { payment_session_id: payment.id }, 201,
    'chat-requests');
  return request ? payment.id : null;
}

/// A mitra goes online (the switch; the socket does the rest).
export function goOnline(token) {
  return call('POST', '/api/mitra/status', token, { online: true }, 200, 'mitra/status');
}

/// Accepts a chat request: the answer (`{request_id, chat_session: {id, ...}, ...}`) when this
/// mitra won it; null when another did (409 `chat_request_taken`, counted as lost) or it
/// failed otherwise (counted in api_errors).
export async function accept(token, requestId) {
  const response = await http.asyncRequest('POST', `${BASE}/api/mitra/chat-requests/${requestId}/accept`, null,
    params(token, 'chat-requests/{id}/accept'));
  if (response.status === 200) {
    metrics.acceptWon.add(1);
    return JSON.parse(response.body);
  }
  if (response.status === 409) {
    const code = errorCode(response.body);
    metrics.acceptLost.add(1, { code });
    if (code !== 'chat_request_taken' && !logged[`accept ${code}`]) {
      logged[`accept ${code}`] = true;
      console.warn(`accept refused: ${String(response.body).slice(0, 300)}`);
    }
    return null;
  }
  metrics.apiErrors.add(1, { route: 'chat-requests/{id}/accept', status: String(response.status) });
  return null;
}

/// The users of this iteration when each iteration of a `per-vu-iterations` scenario (one
/// iteration per VU) plays `perVu` of `total` users: their indexes into the accounts.
export function myShare(total, perVu) {
  const from = exec.scenario.iterationInTest * perVu;
  const out = [];
  for (let n = from; n < Math.min(total, from + perVu); n++) out.push(n);
  return out;
}

// The chat a customer and a mitra hold: every message carries its sender's send time
// (`body` = `<sent ms> <text>`), so the other side measures delivery with the same clock.

/// Tracks the other party's messages of one session: seq continuity (a gap or a repeat is
/// counted), and what was seen, for the final check against the history.
export class Inbox {
  constructor() {
    this.seen = new Set();
    this.highest = 0;
  }

  /// Records `message` from the other party; returns false for a repeat.
  take(message) {
    if (this.seen.has(message.seq)) {
      metrics.duplicated.add(1);
      return false;
    }
    this.seen.add(message.seq);
    if (message.seq > this.highest) this.highest = message.seq;
    metrics.received.add(1);
    const sentAt = Number(String(message.body).split(' ')[0]);
    if (Number.isFinite(sentAt) && sentAt > 0) metrics.delivery.add(Date.now() - sentAt);
    return true;
  }
}

/// Compares what `inbox` saw of the other party's messages with the stored history; adds
/// the messages never seen to chat_messages_lost.
export async function checkHistory(token, sessionId, inbox, otherRole) {
  let after = 0;
  let lost = 0;
  for (;;) {
    const page = await call('GET', `/api/shared/chat-sessions/${sessionId}/messages?after_seq=${after}&limit=200`,
      token, undefined, 200, 'chat-sessions/{id}/messages');
    if (!page) return;
    for (const message of page.messages) {
      if (message.sender_role === otherRole && !inbox.seen.has(message.seq)) lost += 1;
      after = message.seq;
    }
    if (page.messages.length < 200) break;
  }
  metrics.lost.add(lost);
}

/// The body of a message sent now.
export function body(text) {
  return `${Date.now()} ${text}`;
}
