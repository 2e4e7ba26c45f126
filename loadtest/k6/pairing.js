// The pairing storm: MITRAS mitras online with a socket each; CUSTOMERS customers pay,
// confirm and blast at BLAST_RATE a second; every mitra offered a request accepts it at once
// while it has room under the capacity cap (3), so each blast is a race among the available
// mitras. Exactly one accept must win each request.
//
//   CUSTOMERS (600)  MITRAS (200)  BLAST_RATE (10)
//
// Thresholds: every customer paired, exactly one winning accept per customer, no pairing
// failure, blast → `paired` p99 < 500 ms, no server-closed socket, no unexpected API error
// (a lost race's 409 is expected).

import { Client, customers, knob, metrics, mitras, myShare, payAndBlast, sleepMs, touch } from './lib.js';
import { Mitra, until } from './conversation.js';

export { handleSummary } from './summary.js';

const CUSTOMERS = Math.min(knob('CUSTOMERS', 600), customers.length);
const MITRAS = Math.min(knob('MITRAS', 200), mitras.length);
const BLAST_RATE = knob('BLAST_RATE', 10);
const PER_VU = 10;
const PAIRED_WITHIN_MS = 30000;
const END_MS = 5000 + (CUSTOMERS / BLAST_RATE) * 1000 + PAIRED_WITHIN_MS + 2000;

export const options = {
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
  scenarios: {
    mitras: {
      executor: 'per-vu-iterations', vus: Math.ceil(MITRAS / PER_VU), iterations: 1,
      maxDuration: `${Math.ceil(END_MS / 1000) + 60}s`, exec: 'mitra',
    },
    customers: {
      executor: 'per-vu-iterations', vus: Math.ceil(CUSTOMERS / PER_VU), iterations: 1,
      maxDuration: `${Math.ceil(END_MS / 1000) + 60}s`, exec: 'customer',
    },
  },
  thresholds: {
    pairing_paired: [`count==${CUSTOMERS}`],
    pairing_accept_won: [`count==${CUSTOMERS}`],
    pairing_failed: ['count==0'],
    pairing_blast_to_paired: ['p(99)<500'],
    ws_unexpected_close: ['count==0'],
    ws_connect_failed: ['count==0'],
    api_errors: ['count==0'],
  },
};

const ZEROES = ['paired', 'acceptWon', 'acceptLost', 'pairingFailed', 'unexpectedClose', 'connectFailed',
  'apiErrors', 'offers'];

export function setup() {
  return { t0: Date.now() };
}

export async function mitra(data) {
  touch(...ZEROES);
  const list = myShare(MITRAS, PER_VU).map((n) => new Mitra(mitras[n], { cap: 3, acceptDelayMs: [0, 0] }));
  await Promise.all(list.map((m) => m.start()));
  await until(data.t0 + END_MS);
  list.forEach((m) => m.client.close());
}

export async function customer(data) {
  touch(...ZEROES);
  await Promise.all(myShare(CUSTOMERS, PER_VU).map(async (n) => {
    const client = new Client(customers[n], 'customer');
    let blastAt = 0;
    let done = null;
    const outcome = new Promise((resolve) => { done = resolve; });
    let paired = 0;
    client.on('paired', () => {
      paired += 1;
      if (paired === 1) {
        metrics.paired.add(1);
        metrics.pairingTime.add(Date.now() - blastAt);
      }
      done(true);
    });
    client.on('pairing_failed', (event) => {
      metrics.pairingFailed.add(1, { cause: event.cause_tag });
      done(false);
    });
    await until(data.t0 + 5000 + (n / BLAST_RATE) * 1000);
    if (await client.connect(false)) {
      if (await payAndBlast(client.account.token, () => { blastAt = Date.now(); })) {
        await Promise.race([outcome, sleepMs(PAIRED_WITHIN_MS)]);
      }
    }
    await until(data.t0 + END_MS);
    client.close();
  }));
}
