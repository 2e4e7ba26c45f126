// Playwright runs the console's browser tests against the service scripts/console-check
// started (its addresses come in CONSOLE_* variables), in Debian's Chromium: Playwright never
// downloads a browser here.
import { defineConfig } from '@playwright/test';

export default defineConfig({
  testDir: './tests',
  outputDir: process.env.CONSOLE_OUT ? `${process.env.CONSOLE_OUT}/test-results` : './test-results',
  // One service, one database: the tests run one after another, in file order.
  workers: 1,
  fullyParallel: false,
  retries: 0,
  timeout: 90_000,
  expect: { timeout: 10_000 },
  reporter: [['list']],
  use: {
    baseURL: process.env.CONSOLE_INTERNAL,
    viewport: { width: 1280, height: 800 },
    locale: 'id-ID',
    timezoneId: 'Asia/Jakarta',
    trace: 'retain-on-failure',
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CONSOLE_CHROMIUM || '/usr/bin/chromium',
      // Without the background-networking flags Chromium hangs on a closed network.
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    },
  },
});
