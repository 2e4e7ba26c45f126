// The idle-connections soak: SOCKETS sockets (customers, and every fourth one a mitra, online)
// open at OPEN_RATE a second and stay open, doing nothing but answering the server's pings,
// for HOLD_SECONDS — longer than the hub's idle timeout (60 s), so a socket that the
// heartbeat does not keep alive is closed by the server and counted. The runner samples the
// server's memory meanwhile.
//
//   SOCKETS (10000)  OPEN_RATE (500)  HOLD_SECONDS (180)
//
// Thresholds: every socket opened, none closed by the server.

import { Client, customers, goOnline, knob, mitras, myShare, touch } from './lib.js';
import { until } from './conversation.js';

export { handleSummary } from './summary.js';

const SOCKETS = knob('SOCKETS', 10000);
const MITRA_SOCKETS = Math.min(Math.floor(SOCKETS / 4), mitras.length);
const CUSTOMER_SOCKETS = Math.min(SOCKETS - MITRA_SOCKETS, customers.length);
const OPEN_RATE = knob('OPEN_RATE', 500);
const HOLD_SECONDS = knob('HOLD_SECONDS', 180);
const PER_VU = 50;
const OPENED_BY_MS = 2000 + ((MITRA_SOCKETS + CUSTOMER_SOCKETS) / OPEN_RATE) * 1000;
const END_MS = OPENED_BY_MS + HOLD_SECONDS * 1000;

export const options = {
  summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(99)', 'max', 'count'],
  scenarios: {
    sockets: {
      executor: 'per-vu-iterations', vus: Math.ceil((MITRA_SOCKETS + CUSTOMER_SOCKETS) / PER_VU), iterations: 1,
      maxDuration: `${Math.ceil(END_MS / 1000) + 60}s`, exec: 'hold',
    },
  },
  thresholds: {
    ws_sockets_opened: [`count==${MITRA_SOCKETS + CUSTOMER_SOCKETS}`],
    ws_unexpected_close: ['count==0'],
    ws_connect_failed: ['count==0'],
    api_errors: ['count==0'],
  },
};

export function setup() {
  return { t0: Date.now() };
}

/// Socket n: the mitras first, then the customers.
export async function hold(data) {
  touch('sockets', 'unexpectedClose', 'connectFailed', 'apiErrors');
  const clients = await Promise.all(myShare(MITRA_SOCKETS + CUSTOMER_SOCKETS, PER_VU).map(async (n) => {
    const mitra = n < MITRA_SOCKETS;
    const client = new Client(mitra ? mitras[n] : customers[n - MITRA_SOCKETS], mitra ? 'mitra' : 'customer');
    await until(data.t0 + 1000 + (n / OPEN_RATE) * 1000);
    if (mitra) await goOnline(client.account.token);
    await client.connect(false);
    return client;
  }));
  await until(data.t0 + END_MS);
  clients.forEach((client) => client.close());
}
