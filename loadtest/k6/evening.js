// The evening peak: the other scenarios at once, in the proportions of a busy evening.
//
// - MITRAS mitras online with a socket each (capacity cap 3), answering as in chat.js;
// - CHATTERS customers pay, blast (BLAST_RATE a second) and chat, one message every
//   MESSAGE_EVERY_MS, the mitra answering each;
// - IDLERS customers on the home screen: a socket each, and the availability poll every 5 s
//   (a constant arrival rate of IDLERS / 5 a second); each idle socket drops once at a random
//   moment of the chat phase (the app sent to the background and back) and resumes.
//
//   MITRAS (300)  CHATTERS (700)  IDLERS (4000)  BLAST_RATE (7)  CHAT_SECONDS (120)
//   MESSAGE_EVERY_MS (5000)
//
// 5,000 sockets at the defaults. Thresholds: those of chat.js, every socket opened and none
// closed by the server, polls p99 < 50 ms, resumes p99 < 2 s.

import { check } from 'k6';
import exec from 'k6/execution';
import { callSync, customers, knob, mitras, myShare, touch } from './lib.js';
import { maxDuration, runCustomers, runIdlers, runMitras, timeline } from './conversation.js';

export { handleSummary } from './summary.js';

const MITRAS = Math.min(knob('MITRAS', 300), mitras.length);
const CHATTERS = Math.min(knob('CHATTERS', 700), customers.length);
const IDLERS = Math.min(knob('IDLERS', 4000), customers.length - CHATTERS);
const PER_VU = 25;
const plan = {
  sessions: CHATTERS,
  blastRate: knob('BLAST_RATE', 7),
  chatSeconds: knob('CHAT_SECONDS', 120),
};
const CUSTOMER = { messageEveryMs: knob('MESSAGE_EVERY_MS', 5000) };
const MITRA = { cap: 3, acceptDelayMs: [300, 1500] };
// The poll runs from the start until the chat ends.
const plan0 = timeline(0, plan);
const POLL_SECONDS = Math.floor((plan0.chatEnd - 5000) / 1000);

export const options = {
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
  scenarios: {
    mitras: {
      executor: 'per-vu-iterations', vus: Math.ceil(MITRAS / PER_VU), iterations: 1,
      maxDuration: maxDuration(plan), exec: 'mitra',
    },
    chatters: {
      executor: 'per-vu-iterations', vus: Math.ceil(CHATTERS / PER_VU), iterations: 1,
      maxDuration: maxDuration(plan), exec: 'chatter',
    },
    idlers: {
      executor: 'per-vu-iterations', vus: Math.ceil(IDLERS / PER_VU), iterations: 1,
      maxDuration: maxDuration(plan), exec: 'idler',
    },
    poll: {
      executor: 'constant-arrival-rate', rate: Math.max(1, Math.ceil(IDLERS / 5)), timeUnit: '1s',
      duration: `${POLL_SECONDS}s`, startTime: '5s', preAllocatedVUs: 300, maxVUs: 600, exec: 'poll',
    },
  },
  thresholds: {
    pairing_paired: [`count==${CHATTERS}`],
    pairing_failed: ['count==0'],
    chat_messages_lost: ['count==0'],
    chat_messages_duplicated: ['count==0'],
    chat_delivery: ['p(99)<250'],
    chat_round_trip: ['p(99)<500'],
    ws_sockets_opened: [`count==${MITRAS + CHATTERS + 2 * IDLERS}`],
    ws_unexpected_close: ['count==0'],
    ws_connect_failed: ['count==0'],
    ws_command_errors: ['count==0'],
    ws_command_timeouts: ['count==0'],
    ws_resync_required: ['count==0'],
    ws_resume: ['p(99)<2000'],
    api_errors: ['count==0'],
    'http_req_duration{scenario:poll}': ['p(99)<50'],
    'checks{scenario:poll}': ['rate==1'],
    dropped_iterations: ['count==0'],
  },
};

const ZEROES = ['lost', 'duplicated', 'unexpectedClose', 'connectFailed', 'commandErrors', 'commandTimeouts',
  'apiErrors', 'pairingFailed', 'paired', 'resyncRequired', 'sockets'];

export function setup() {
  return { t0: Date.now() };
}

export async function mitra(data) {
  touch(...ZEROES);
  await runMitras(myShare(MITRAS, PER_VU), timeline(data.t0, plan), MITRA);
}

export async function chatter(data) {
  touch(...ZEROES);
  await runCustomers(myShare(CHATTERS, PER_VU), timeline(data.t0, plan), CUSTOMER);
}

/// Idle customer n is customer CHATTERS + n: drops once at a random moment of the chat and
/// reconnects within 3 s.
export async function idler(data) {
  touch(...ZEROES);
  const t = timeline(data.t0, plan);
  await runIdlers(myShare(IDLERS, PER_VU), {
    first: CHATTERS, total: IDLERS, t, jitterMs: 3000,
    dropAt: () => t.chatStart + Math.random() * (t.chatEnd - t.chatStart - 5000),
  });
}

export function poll() {
  const customer = customers[CHATTERS + (exec.scenario.iterationInTest % Math.max(1, IDLERS))];
  const answer = callSync('GET', '/api/client/mitra-availability', customer.token, undefined, 200,
    'mitra-availability');
  check(answer, { 'availability answered': (a) => a !== null && typeof a.available === 'boolean' });
}
