// The two apps in a chat, as the chat, reconnect and evening scenarios play them.
//
// A mitra goes online, holds a socket and accepts the chat requests it is offered while it
// has room under the capacity cap (after `acceptDelayMs`, a person's reaction; 0 races);
// every customer message is marked delivered and read and answered at once (`re:<id>`), and
// with `talkEveryMs` the mitra also writes on its own.
//
// A customer holds a socket, pays, blasts and waits for `paired`; then, every
// `messageEveryMs`, signals typing and sends a message. Each message body starts with its send
// time, so the receiver measures delivery (chat_delivery); the customer measures the ack
// (chat_ack) and the time until the mitra's answer arrives (chat_round_trip), and marks the
// mitra's messages read.
//
// Both sides track the other's messages by `seq` (a repeat is chat_messages_duplicated) and
// at the end compare them with the stored history (what never arrived is chat_messages_lost).

import {
  accept, body, call, checkHistory, Client, customers, goOnline, Inbox, metrics, mitras, payAndBlast, requestIdIn,
  sleepMs,
} from './lib.js';

function randomBetween(low, high) {
  return low + Math.random() * (high - low);
}

export class Mitra {
  constructor(account, { cap = 3, acceptDelayMs = [300, 1500], talkEveryMs = 0 } = {}) {
    this.client = new Client(account, 'mitra');
    this.token = account.token;
    this.cap = cap;
    this.acceptDelayMs = acceptDelayMs;
    this.talkEveryMs = talkEveryMs;
    this.sessions = new Map();
    this.trying = 0;
    this.talker = null;
    this.sentCount = 0;
    this.gone = new Set();
    this.waiting = [];
    // Requests being decided on: request id → stops the decision early.
    this.deciding = new Map();
    const client = this.client;
    client.onRaw('chat_request', (text) => {
      metrics.offers.add(1);
      this.consider(requestIdIn(text));
    });
    for (const type of ['chat_request_taken', 'chat_request_cancelled', 'chat_request_expired', 'chat_request_closed']) {
      client.onRaw(type, (text) => {
        const requestId = requestIdIn(text);
        this.gone.add(requestId);
        const stop = this.deciding.get(requestId);
        if (stop) stop();
      });
    }
    client.on('chat_message', (data) => this.onMessage(data.message));
    client.on('message_delivered', () => metrics.receipts.add(1, { kind: 'delivered' }));
    client.on('message_read', () => metrics.receipts.add(1, { kind: 'read' }));
    client.on('typing', () => metrics.typing.add(1));
    client.on('session_completed', (data) => this.sessions.delete(data.session_id));
  }

  async start() {
    if (!(await goOnline(this.token))) return false;
    return this.client.connect(false);
  }

  /// Takes an offered request when there is room, else keeps it for when a slot frees (a
  /// lost race), as the overlay stays on screen until it expires or is taken.
  async consider(requestId) {
    if (this.sessions.size + this.trying >= this.cap) {
      this.waiting.push(requestId);
      return;
    }
    this.trying += 1;
    const [low, high] = this.acceptDelayMs;
    if (high > 0) {
      // The person reacts after the delay, or stops looking as soon as the request is gone.
      // (The timer is left to run out: clearing timers from event handlers made k6 1.1 fire
      // other, unrelated timers of the VU early.)
      await new Promise((resolve) => {
        setTimeout(resolve, randomBetween(low, high));
        this.deciding.set(requestId, resolve);
      });
      this.deciding.delete(requestId);
    }
    // Someone else took it meanwhile: the overlay is gone, nobody taps it.
    const won = this.gone.has(requestId) ? null : await accept(this.token, requestId);
    this.trying -= 1;
    if (won && !this.sessions.has(won.chat_session.id)) this.sessions.set(won.chat_session.id, new Inbox());
    if (!won) this.next();
  }

  /// Considers the next request still open among those offered while it was full.
  next() {
    while (this.waiting.length > 0) {
      const requestId = this.waiting.shift();
      if (!this.gone.has(requestId)) {
        this.consider(requestId);
        return;
      }
    }
  }

  onMessage(message) {
    if (message.sender_role === 'mitra') return;
    // A customer's first message can overtake the accept's answer.
    let inbox = this.sessions.get(message.session_id);
    if (!inbox) {
      inbox = new Inbox();
      this.sessions.set(message.session_id, inbox);
    }
    if (!inbox.take(message)) return;
    this.client.command('mark_read', { session_id: message.session_id, up_to_seq: message.seq });
    this.send(message.session_id, `re:${message.client_msg_id}`);
  }

  async send(sessionId, text) {
    this.sentCount += 1;
    const clientMsgId = `m-${this.client.account.name}-${this.sentCount}`;
    const sentAt = Date.now();
    metrics.sent.add(1, { role: 'mitra' });
    const answer = await this.client.command('send_message',
      { session_id: sessionId, client_msg_id: clientMsgId, body: body(text) });
    if (answer) metrics.ack.add(Date.now() - sentAt, { role: 'mitra' });
  }

  /// With `talkEveryMs`, writes to each of its sessions on its own until `stop()`.
  talk() {
    if (!this.talkEveryMs) return;
    this.talker = setInterval(() => {
      for (const sessionId of this.sessions.keys()) {
        if (this.client.ws && this.client.ws.readyState === 1) {
          this.send(sessionId, 'apa kabar');
        }
      }
    }, this.talkEveryMs);
  }

  stop() {
    if (this.talker) clearInterval(this.talker);
    this.talker = null;
  }

  async finish() {
    this.stop();
    if (__ENV.DEBUG_MITRAS) {
      const open = this.waiting.filter((id) => !this.gone.has(id)).length;
      console.warn(`${this.client.account.name}: sessions ${this.sessions.size} trying ${this.trying} waiting ${this.waiting.length} (${open} open) deciding ${this.deciding.size}`);
    }
    for (const [sessionId, inbox] of this.sessions) {
      await checkHistory(this.token, sessionId, inbox, 'customer');
    }
    this.client.close();
  }
}

const failuresLogged = {};

export class Customer {
  constructor(account, { messageEveryMs = 2000, pairWithinMs = 60000 } = {}) {
    this.client = new Client(account, 'customer');
    this.token = account.token;
    this.name = account.name;
    this.messageEveryMs = messageEveryMs;
    this.pairWithinMs = pairWithinMs;
    this.sessionId = null;
    this.inbox = new Inbox();
    this.sentAt = new Map();
    this.count = 0;
    this.sender = null;
    this.onPaired = null;
    const client = this.client;
    client.on('paired', (data) => {
      if (this.sessionId) return;
      this.sessionId = data.chat_session.id;
      metrics.paired.add(1);
      metrics.pairingTime.add(Date.now() - this.blastAt);
      if (this.onPaired) this.onPaired(true);
    });
    client.on('pairing_failed', (data) => {
      metrics.pairingFailed.add(1, { cause: data.cause_tag });
      if (!failuresLogged[data.cause_tag]) {
        failuresLogged[data.cause_tag] = true;
        console.warn(`pairing failed: ${data.cause_tag} (${this.name}, ${Date.now() - this.blastAt} ms after the blast)`);
      }
      if (this.onPaired) this.onPaired(false);
    });
    client.on('chat_message', (data) => this.onMessage(data.message));
    client.on('message_delivered', () => metrics.receipts.add(1, { kind: 'delivered' }));
    client.on('message_read', () => metrics.receipts.add(1, { kind: 'read' }));
    client.on('typing', () => metrics.typing.add(1));
  }

  /// Connects, pays and blasts; resolves true once paired.
  async pair() {
    if (!(await this.client.connect(false))) return false;
    const paired = new Promise((resolve) => {
      this.onPaired = resolve;
      setTimeout(() => resolve(false), this.pairWithinMs);
    });
    if (!(await payAndBlast(this.token, () => { this.blastAt = Date.now(); }))) return false;
    return paired;
  }

  onMessage(message) {
    if (message.sender_role === 'customer') return;
    if (!this.inbox.take(message)) return;
    const reply = /re:(\S+)/.exec(message.body);
    if (reply && this.sentAt.has(reply[1])) {
      metrics.roundTrip.add(Date.now() - this.sentAt.get(reply[1]));
      this.sentAt.delete(reply[1]);
    }
    this.client.command('mark_read', { session_id: this.sessionId, up_to_seq: message.seq });
  }

  async send() {
    if (!this.client.ws || this.client.ws.readyState !== 1) return;
    this.count += 1;
    const clientMsgId = `c-${this.name}-${this.count}`;
    if (this.count % 2 === 1) this.client.command('typing', { session_id: this.sessionId });
    const sentAt = Date.now();
    this.sentAt.set(clientMsgId, sentAt);
    metrics.sent.add(1, { role: 'customer' });
    const answer = await this.client.command('send_message',
      { session_id: this.sessionId, client_msg_id: clientMsgId, body: body(`halo ${this.count}`) });
    if (answer) metrics.ack.add(Date.now() - sentAt, { role: 'customer' });
  }

  /// Sends every `messageEveryMs` (after a random offset, so sessions do not send in step).
  async chat() {
    await sleepMs(randomBetween(0, this.messageEveryMs));
    this.sender = setInterval(() => this.send(), this.messageEveryMs);
  }

  stop() {
    if (this.sender) clearInterval(this.sender);
    this.sender = null;
  }

  async finish() {
    this.stop();
    if (this.sessionId) await checkHistory(this.token, this.sessionId, this.inbox, 'mitra');
    this.client.close();
  }
}

/// Waits until `deadline` (ms since the epoch).
export function until(deadline) {
  return sleepMs(Math.max(0, deadline - Date.now()));
}

/// How long after the last send the histories are compared: every message sent has been
/// acknowledged or has timed out (10 s) by then, and delivered if it was stored.
const DRAIN_MS = 11000;

/// The timeline the conversation scenarios share, in ms since the epoch, from setup()'s start
/// `t0`: the mitras go online at once; customer k blasts at `blastStart + k / blastRate` s;
/// everyone chats until `chatEnd`, then stops sending, and compares with the history at
/// `checkAt`. With `stormAfterS`, every socket drops `stormAfterS` after the last blast.
export function timeline(t0, { sessions, blastRate, chatSeconds, stormAfterS = 0 }) {
  const blastStart = t0 + 5000;
  const blastEnd = blastStart + Math.ceil((sessions / blastRate) * 1000);
  // The last customers need a moment to be paired (a mitra reacts within 1.5 s).
  const chatStart = blastEnd + 10000;
  const chatEnd = chatStart + chatSeconds * 1000;
  return {
    blastStart, blastRate, chatStart, chatEnd, checkAt: chatEnd + DRAIN_MS,
    stormAt: stormAfterS ? chatStart + stormAfterS * 1000 : 0,
  };
}

/// The total time of a timeline plus a margin, for a scenario's maxDuration.
export function maxDuration({ sessions, blastRate, chatSeconds }) {
  return `${Math.ceil(5 + sessions / blastRate + 10 + chatSeconds + DRAIN_MS / 1000 + 120)}s`;
}

/// Drops the socket (without a close handshake's wait) and resumes with `last_event_id`
/// after a random 0-`jitterMs` delay, as an app does when the network comes back.
async function dropAndResume(client, jitterMs) {
  client.close();
  await sleepMs(Math.random() * jitterMs);
  // A failure is counted by connect() itself (ws_connect_failed).
  await client.connect(true);
}

/// Plays idle customers on the home screen: idle customer n (of `total`, in `indexes`) is
/// customer `first + n`; it opens its socket during the blasts, drops once at `dropAt(n)`
/// (ms since the epoch) and reconnects within `jitterMs`, and closes when the histories are
/// checked.
export async function runIdlers(indexes, { first, total, t, dropAt, jitterMs }) {
  await Promise.all(indexes.map(async (n) => {
    const client = new Client(customers[first + n], 'customer');
    await until(t.blastStart + (n / Math.max(1, total)) * (t.chatStart - t.blastStart));
    await client.connect(false);
    await until(dropAt(n));
    await dropAndResume(client, jitterMs);
    await until(t.checkAt);
    client.close();
  }));
}

/// Plays the mitras `indexes` along timeline `t`.
export async function runMitras(indexes, t, options) {
  const list = indexes.map((n) => new Mitra(mitras[n], options));
  const started = await Promise.all(list.map((mitra) => mitra.start()));
  if (__ENV.DEBUG_MITRAS) console.warn(`mitras ${indexes[0]}..${indexes[indexes.length - 1]}: ${started.filter((ok) => ok).length} online`);
  list.forEach((mitra) => mitra.talk());
  if (t.stormAt) {
    await until(t.stormAt);
    await Promise.all(list.map((mitra) => dropAndResume(mitra.client, options.stormJitterMs)));
  }
  await until(t.chatEnd);
  list.forEach((mitra) => mitra.stop());
  await until(t.checkAt);
  for (const mitra of list) await mitra.finish();
}

/// Plays the customers `indexes` along timeline `t`: each is paired, then chats.
export async function runCustomers(indexes, t, options) {
  await Promise.all(indexes.map(async (n) => {
    const customer = new Customer(customers[n], options);
    await until(t.blastStart + (n / t.blastRate) * 1000);
    if (!(await customer.pair())) {
      await until(t.checkAt);
      customer.client.close();
      return;
    }
    await until(t.chatStart);
    await customer.chat();
    if (t.stormAt) {
      await until(t.stormAt);
      await dropAndResume(customer.client, options.stormJitterMs);
    }
    await until(t.chatEnd);
    customer.stop();
    await until(t.checkAt);
    await customer.finish();
  }));
}
