// Paired chat sessions over real sockets: SESSIONS customers pay and blast (BLAST_RATE a
// second), MITRAS mitras (capacity cap 3) accept what they are offered after a person's
// reaction time; then for CHAT_SECONDS every customer types and sends a message every
// MESSAGE_EVERY_MS and the mitra marks it read and answers at once (see conversation.js).
//
//   SESSIONS (500)  MITRAS (SESSIONS / 2.5)  BLAST_RATE (10)  CHAT_SECONDS (60)  MESSAGE_EVERY_MS (2000)
//
// Thresholds: every customer paired, no message lost or duplicated, no socket closed by the
// server, no command refused or unanswered, delivery p99 < 100 ms, round trip p99 < 200 ms.

import { customers, knob, mitras, myShare, touch } from './lib.js';
import { maxDuration, runCustomers, runMitras, timeline } from './conversation.js';

export { handleSummary } from './summary.js';

const SESSIONS = Math.min(knob('SESSIONS', 500), customers.length);
// Room for a fifth more sessions than asked for: the last requests need not hunt for the
// last free slot.
const MITRAS = Math.min(knob('MITRAS', Math.ceil(SESSIONS / 2.5)), mitras.length);
const PER_VU = 10;
const plan = {
  sessions: SESSIONS,
  blastRate: knob('BLAST_RATE', 10),
  chatSeconds: knob('CHAT_SECONDS', 60),
};
const CUSTOMER = { messageEveryMs: knob('MESSAGE_EVERY_MS', 2000) };
const MITRA = { cap: 3, acceptDelayMs: [300, 1500] };

export const options = {
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
  setupTimeout: '10s',
  scenarios: {
    mitras: {
      executor: 'per-vu-iterations', vus: Math.ceil(MITRAS / PER_VU), iterations: 1,
      maxDuration: maxDuration(plan), exec: 'mitra',
    },
    customers: {
      executor: 'per-vu-iterations', vus: Math.ceil(SESSIONS / PER_VU), iterations: 1,
      maxDuration: maxDuration(plan), exec: 'customer',
    },
  },
  thresholds: {
    pairing_paired: [`count==${SESSIONS}`],
    pairing_failed: ['count==0'],
    chat_messages_lost: ['count==0'],
    chat_messages_duplicated: ['count==0'],
    ws_unexpected_close: ['count==0'],
    ws_connect_failed: ['count==0'],
    ws_command_errors: ['count==0'],
    ws_command_timeouts: ['count==0'],
    api_errors: ['count==0'],
    chat_delivery: ['p(99)<100'],
    chat_round_trip: ['p(99)<200'],
    chat_receipts_seen: ['count>0'],
    chat_typing_seen: ['count>0'],
  },
};

const ZEROES = ['lost', 'duplicated', 'unexpectedClose', 'connectFailed', 'commandErrors', 'commandTimeouts',
  'apiErrors', 'pairingFailed', 'paired', 'receipts', 'typing'];

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
