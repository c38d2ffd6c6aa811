// `npm run screenshots`: the pictures of the console in docs/console.md (docs/console/*.png), taken in
// Debian's headless Chromium from a fresh database with demo data that the real worker paid
// against the Stripe simulator. PostgreSQL as for the tests (TEST_DATABASE_URL, else Docker,
// else an embedded one); the database is dropped at the end.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { loadConfig } from '../src/config.ts';
import { runConsoleAction } from '../src/console/act.ts';
import { createDatabase, dropDatabase, withDatabase } from '../src/db/connection.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { projectRoot } from '../src/paths/project.ts';
import { createLogger } from '../src/logger.ts';
import { startStripeSimulator } from '../src/stripe-sim/index.ts';
import { startWorker } from '../src/worker/runner.ts';
import { launchChromium } from '../test/support/browser.ts';
import { OPERATOR, startTestConsole } from '../test/support/console.ts';
import { applyCurrentMigration } from '../test/support/current-migration.ts';
import { insertTransfer, transferIn } from '../test/support/transfers.ts';
import { startTestServer } from '../test/support/test-server.ts';

const OUT = path.join(projectRoot, 'docs', 'console');
const KEY = 'sk_test_screenshots';

const server = await startTestServer();
const name = `seller_transfers_screens_${process.pid}`;
await createDatabase(server.adminUrl, name);
const url = withDatabase(server.adminUrl, name);
const pool = new pg.Pool({ connectionString: url });
const sim = await startStripeSimulator();
try {
  await migrateDatabase(url);
  await applyCurrentMigration(url); // the migration being written, as the tests and the benchmarks see it
  const config = loadConfig({
    DATABASE_URL: url,
    STRIPE_SECRET_KEY: KEY,
    STRIPE_API_BASE: sim.url,
    LOG_LEVEL: 'silent',
    WORKER_POLL_INTERVAL_MS: '100',
  });
  const worker = await startWorker({
    config,
    logger: createLogger('silent'),
    databaseUrl: url,
    stripe: { secretKey: KEY, apiBase: sim.url, timeoutMs: config.STRIPE_TIMEOUT_MS },
  });
  // 40 payouts, some in yen (zero-decimal), paid by the worker; 3 refunds asked for in the console.
  await pool.query(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
    select gen_random_uuid(), gen_random_uuid(), 'acct_' || (1000 + g % 7), 500 + g * 137, case when g % 5 = 0 then 'jpy' else 'usd' end
      from generate_series(1, 40) g`);
  for (let i = 0; i < 300; i++) {
    const {
      rows: [r],
    } = await pool.query(`select count(*) filter (where status <> 'completed') as left from marketplace.seller_transfers`);
    if (Number(r.left) === 0) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  const console_ = await startTestConsole(url, { stripeMode: 'test' });
  const { rows: paid } = await pool.query<{ id: string }>(
    `select id from marketplace.seller_transfers where status = 'completed' order by created_at limit 4`,
  );
  for (const [i, p] of paid.slice(0, 3).entries()) {
    await runConsoleAction(console_.db, {
      action: 'reverse',
      id: p.id,
      reason: `refund of order RMA-${100 + i}`,
      user: 'alice',
      commit: true,
    });
  }
  for (let i = 0; i < 100; i++) {
    const {
      rows: [r],
    } = await pool.query(`select count(*) filter (where status = 'reversal_pending') as left from marketplace.seller_transfers`);
    if (Number(r.left) === 0) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  await worker.stop();
  const failed = [await transferIn(pool, 'failed'), await transferIn(pool, 'failed'), await transferIn(pool, 'failed')];
  await pool.query(
    `update marketplace.seller_transfers set last_error = 'StripeConnectionError: connect ETIMEDOUT (attempt 3 of 8)', retry_count = 3 where id = any($1)`,
    [failed],
  );
  // The worker page's jobs: due payouts handed to graphile-worker (the worker is stopped, so they
  // wait), one whose first attempt failed as graphile-worker records it.
  const due = [await insertTransfer(pool, 2500), await insertTransfer(pool, 990)];
  await pool.query('select * from marketplace.dispatch_seller_transfers(1000, 60)');
  await pool.query(
    `update graphile_worker._private_jobs set attempts = 1, last_error = 'StripeAPIError: An unknown error occurred (500)', run_at = now() + interval '40 seconds'
      where key = marketplace.seller_transfer_job_key($1)`,
    [due[0]],
  );

  mkdirSync(OUT, { recursive: true });
  const browser = await launchChromium({ width: 1280, height: 800 });
  const page = browser.page;
  const shot = async (file: string) => {
    await page.screenshot({ path: path.join(OUT, `${file}.png`), fullPage: true });
    process.stdout.write(`docs/console/${file}.png\n`);
  };
  try {
    await page.goto(`${console_.url}/login`);
    await shot('login');
    await page.getByLabel('User name').fill(OPERATOR.name);
    await page.getByLabel('Password').fill(OPERATOR.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(`${console_.url}/`);
    await shot('overview');
    await page.goto(`${console_.url}/transfers?status=completed`);
    await shot('list');
    await page.goto(`${console_.url}/transfers/${paid[0]!.id}`);
    await shot('transfer');
    await page.goto(`${console_.url}/transfers/${paid[3]!.id}`);
    const form = page.locator('form.action');
    await form.getByLabel(/Amount/).fill('1.50');
    await form.getByLabel(/Reason/).fill('partial refund, damaged item');
    await form.getByRole('button', { name: 'Review…' }).click();
    await shot('confirm');
    await page.goto(`${console_.url}/transfers?status=failed`);
    for (const id of failed) await page.getByLabel(`Select ${id}`).check();
    await page.getByLabel('Reason').fill('seller closed their account');
    await page.getByRole('button', { name: 'Review…' }).click();
    await shot('bulk');
    await page.goto(`${console_.url}/worker`);
    await shot('worker');
    await page.goto(`${console_.url}/audit`);
    await shot('audit');
    await page.goto(`${console_.url}/doctor`);
    await shot('doctor');
  } finally {
    await browser.close();
    await console_.close();
  }
} finally {
  await pool.end();
  await sim.close();
  await dropDatabase(server.adminUrl, name);
  await server.stop();
}
