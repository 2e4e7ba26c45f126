// Availability poll: every customer's home screen asks `GET /api/client/mitra-availability`
// every 5 s (a constant arrival rate of CUSTOMERS / 5 polls per second), while MITRAS mitras
// are online with a socket each, so the count is not zero.
//
//   CUSTOMERS (5000)  DURATION (60s)  MITRAS (20)
//
// Thresholds: no failed poll, every answer `{available: true, count >= 1}` once the mitras
// are online, p99 below 25 ms.

import { check } from 'k6';
import exec from 'k6/execution';
import { Client, callSync, customers, goOnline, knob, metrics, mitras, myShare, sleepMs, touch } from './lib.js';

export { handleSummary } from './summary.js';

const CUSTOMERS = Math.min(knob('CUSTOMERS', 5000), customers.length);
const MITRAS = Math.min(knob('MITRAS', 20), mitras.length);
const DURATION = __ENV.DURATION || '60s';
const MITRAS_PER_VU = 10;

export const options = {
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
  scenarios: {
    mitras: {
      executor: 'per-vu-iterations',
      vus: Math.ceil(MITRAS / MITRAS_PER_VU),
      iterations: 1,
      maxDuration: '30m',
      exec: 'mitra',
    },
    poll: {
      executor: 'constant-arrival-rate',
      rate: Math.ceil(CUSTOMERS / 5),
      timeUnit: '1s',
      duration: DURATION,
      startTime: '5s',
      preAllocatedVUs: 50,
      maxVUs: 200,
      exec: 'poll',
    },
  },
  thresholds: {
    'http_req_failed{scenario:poll}': ['rate==0'],
    'http_req_duration{scenario:poll}': ['p(99)<25'],
    'checks{scenario:poll}': ['rate==1'],
    'dropped_iterations': ['count==0'],
    ws_unexpected_close: ['count==0'],
  },
};

// The mitras stay online until the poll is over (it starts at 5 s).
const HOLD_MS = 5000 + parseDuration(DURATION) + 2000;

function parseDuration(text) {
  const match = /^(\d+)(ms|s|m)$/.exec(text);
  if (!match) throw new Error(`DURATION must look like 60s, not ${text}`);
  return Number(match[1]) * { ms: 1, s: 1000, m: 60000 }[match[2]];
}

export async function mitra() {
  touch('unexpectedClose', 'connectFailed');
  const clients = myShare(MITRAS, MITRAS_PER_VU).map((n) => new Client(mitras[n], 'mitra'));
  await Promise.all(clients.map(async (client) => {
    await goOnline(client.account.token);
    await client.connect(false);
  }));
  await sleepMs(HOLD_MS);
  clients.forEach((client) => client.close());
}

export function poll() {
  const customer = customers[exec.scenario.iterationInTest % CUSTOMERS];
  const answer = callSync('GET', '/api/client/mitra-availability', customer.token, undefined, 200,
    'mitra-availability');
  check(answer, {
    'available with mitras online': (a) => a !== null && a.available === true && a.count >= 1,
  });
  metrics.apiErrors.add(0);
}
