// The reconnect storm: SESSIONS chat sessions are paired as in chat.js, both sides write
// (customers every MESSAGE_EVERY_MS, mitras to each of their sessions every TALK_EVERY_MS
// and in answer), IDLERS more customers hold a socket on the home screen, and STORM_AFTER_S
// seconds into the chat every socket — customers' and mitras' — drops at once and
// reconnects within JITTER_MS (with `last_event_id` where it had events), while the other
// side keeps writing. Afterwards each side compares what reached its sockets with the
// stored history.
//
//   SESSIONS (750)  MITRAS (SESSIONS / 2.5)  IDLERS (2000)  BLAST_RATE (7)  CHAT_SECONDS (40)
//   STORM_AFTER_S (15)  JITTER_MS (3000)  MESSAGE_EVERY_MS (3000)  TALK_EVERY_MS (3000)
//
// Thresholds: nothing lost or duplicated, every resume replayed (no `resync_required`), no
// resume refused, every customer paired, resume p99 < 2 s.

import { customers, knob, mitras, myShare, touch } from './lib.js';
import { maxDuration, runCustomers, runIdlers, runMitras, timeline } from './conversation.js';

export { handleSummary } from './summary.js';

const SESSIONS = Math.min(knob('SESSIONS', 750), customers.length);
const IDLERS = Math.min(knob('IDLERS', 2000), customers.length - SESSIONS);
const MITRAS = Math.min(knob('MITRAS', Math.ceil(SESSIONS / 2.5)), mitras.length);
const PER_VU = 25;
const plan = {
  sessions: SESSIONS,
  blastRate: knob('BLAST_RATE', 7),
  chatSeconds: knob('CHAT_SECONDS', 40),
  stormAfterS: knob('STORM_AFTER_S', 15),
};
const JITTER_MS = knob('JITTER_MS', 3000);
const CUSTOMER = { messageEveryMs: knob('MESSAGE_EVERY_MS', 3000), stormJitterMs: JITTER_MS };
const MITRA = { cap: 3, acceptDelayMs: [300, 1500], talkEveryMs: knob('TALK_EVERY_MS', 3000), stormJitterMs: JITTER_MS };

export const options = {
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
  scenarios: {
    mitras: {
      executor: 'per-vu-iterations', vus: Math.ceil(MITRAS / PER_VU), iterations: 1,
      maxDuration: maxDuration(plan), exec: 'mitra',
    },
    customers: {
      executor: 'per-vu-iterations', vus: Math.ceil(SESSIONS / PER_VU), iterations: 1,
      maxDuration: maxDuration(plan), exec: 'customer',
    },
    idlers: {
      executor: 'per-vu-iterations', vus: Math.max(1, Math.ceil(IDLERS / 50)), iterations: 1,
      maxDuration: maxDuration(plan), exec: 'idler',
    },
  },
  thresholds: {
    pairing_paired: [`count==${SESSIONS}`],
    chat_messages_lost: ['count==0'],
    chat_messages_duplicated: ['count==0'],
    ws_resync_required: ['count==0'],
    ws_connect_failed: ['count==0'],
    ws_unexpected_close: ['count==0'],
    ws_sockets_opened: [`count==${2 * (SESSIONS + MITRAS + IDLERS)}`],
    ws_resume: ['p(99)<2000'],
    ws_events_replayed: ['count>0'],
    api_errors: ['count==0'],
  },
};

const ZEROES = ['lost', 'duplicated', 'resyncRequired', 'connectFailed', 'unexpectedClose', 'replayed',
  'apiErrors', 'paired', 'sockets'];

export function setup() {
  return { t0: Date.now() };
}

export async function mitra(data) {
  touch(...ZEROES);
  await runMitras(myShare(MITRAS, PER_VU), timeline(data.t0, plan), MITRA);
}

export async function customer(data) {
  touch(...ZEROES);
  await runCustomers(myShare(SESSIONS, PER_VU), timeline(data.t0, plan), CUSTOMER);
}

/// Idle customer n is customer SESSIONS + n: drops in the storm with every other socket.
export async function idler(data) {
  touch(...ZEROES);
  const t = timeline(data.t0, plan);
  await runIdlers(myShare(IDLERS, 50), {
    first: SESSIONS, total: IDLERS, t, jitterMs: JITTER_MS, dropAt: () => t.stormAt,
  });
}
