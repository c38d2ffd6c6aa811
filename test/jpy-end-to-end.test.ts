// JPY, a zero-decimal currency, end to end: a 1,200 JPY payout paid by the worker against the
// simulator, a 500 JPY partial reversal requested through the CLI (one payout) and through the
// console in Chromium (another), the numbers each shows, and the simulator's ledger (1200, 500).
// The exponent comes from marketplace.currencies: a JPY amount with decimals is refused.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startStripeSimulator, type StripeSimulator } from '../src/stripe-sim/index.ts';
import type { WorkerHandle } from '../src/worker/runner.ts';
import { launchChromium, seriousViolations, type Browser } from './support/browser.ts';
import { cliFor, expectOneLineError } from './support/cli.ts';
import { OPERATOR, startTestConsole, type TestConsole } from './support/console.ts';
import { useTestDatabase } from './support/database.ts';
import { startTestWorker, waitForStatus } from './support/worker.ts';

vi.setConfig({ testTimeout: 180_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url);
let sim: StripeSimulator;
let worker: WorkerHandle;
let consoleApp: TestConsole;
let browser: Browser;
let page: Page;

async function payoutInYen(): Promise<string> {
  const {
    rows: [r],
  } = await db.pool.query<{
    id: string;
  }>(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
    values (gen_random_uuid(), gen_random_uuid(), 'acct_tokyo', 1200, 'jpy') returning id`);
  await waitForStatus(db.pool, r!.id, ['completed']);
  return r!.id;
}
const ledgerOf = (id: string) =>
  sim
    .ledger()
    .filter((e) => e.metadata.seller_transfer_id === id)
    .map((e) => [e.type, e.amount, e.currency]);

beforeAll(async () => {
  sim = await startStripeSimulator({ defaultBalanceCents: 10_000 }); // the seller still holds the yen a reversal takes back
  worker = await startTestWorker(db.url, sim);
}, 60_000);
afterAll(async () => {
  await browser?.close();
  await consoleApp?.close();
  await worker?.stop();
  await sim?.close();
});

describe('1,200 JPY through the CLI', () => {
  it('show prints yen without decimals; reverse takes yen as a person writes them, refusing decimals in one line', async () => {
    const id = await payoutInYen();
    const show = await cli('show', id);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toMatch(/^amount +1,200 JPY \(amount_cents 1200\)$/m);

    expectOneLineError(
      await cli('reverse', id, '--amount', '500.5', '--reason', 'half a yen'),
      '--amount "500.5": JPY has no decimals (Stripe counts it in whole units)',
      2,
    );
    expect((await db.pool.query('select status from marketplace.seller_transfers where id = $1', [id])).rows[0].status).toBe('completed');

    const reverse = await cli('reverse', id, '--amount', '500', '--reason', 'partial refund');
    expect(reverse.code, reverse.stderr).toBe(0);
    expect(reverse.stdout).toContain('reversal of 500 JPY requested');
    await waitForStatus(db.pool, id, ['reversed']);
    expect((await cli('show', id)).stdout).toMatch(/^reversal amount +500 JPY \(reversal_amount_cents 500\)$/m);
    expect(ledgerOf(id)).toEqual([
      ['transfer', 1200, 'jpy'],
      ['reversal', 500, 'jpy'],
    ]);
  });
});

describe("payouts waiting for the platform's balance, in their currencies", () => {
  it('stats lists them per currency with the amount in its unit', async () => {
    for (const [amount, currency] of [
      [1200, 'jpy'],
      [1250, 'kwd'],
      [1250, 'usd'],
    ] as const) {
      const {
        rows: [r],
      } = await db.pool.query<{ id: string }>(
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, next_retry_at)
        values (gen_random_uuid(), gen_random_uuid(), 'acct_short', $1, $2, now() + interval '1 hour') returning id`,
        [amount, currency],
      );
      await db.pool.query(
        `select marketplace.record_seller_transfer_failure($1, 'pending', 'invalid_request_error/balance_insufficient (400): insufficient funds', now() + interval '1 hour', 'test')`,
        [r!.id],
      );
    }
    const stats = await cli('stats');
    expect(stats.code, stats.stderr).toBe(0);
    expect(stats.stdout).toContain("waiting for the platform's Stripe balance");
    for (const shown of ['1,200 JPY', '1.250 KWD', '12.50 USD']) expect(stats.stdout).toContain(shown);
  });
});

describe('1,200 JPY in the console (Chromium)', () => {
  beforeAll(async () => {
    consoleApp = await startTestConsole(db.url);
    browser = await launchChromium();
    page = browser.page;
    page.setDefaultTimeout(15_000);
    await page.goto(`${consoleApp.url}/`);
    await page.getByLabel('User name').fill(OPERATOR.name);
    await page.getByLabel('Password').fill(OPERATOR.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL(`${consoleApp.url}/`);
  }, 60_000);

  it('shows 1,200 JPY; refuses 500.5; reverses 500 JPY, leaving 700 JPY with the seller', async () => {
    const id = await payoutInYen();
    await page.goto(`${consoleApp.url}/transfers/${id}`);
    const amount = page.locator('dt:text-is("Amount") + dd');
    expect((await amount.innerText()).trim()).toBe('1,200 JPY');
    const form = page.locator('form.action').filter({ has: page.locator('input[name="action"][value="reverse"]') });

    await form.getByLabel(/Amount in JPY/).fill('500.5');
    await form.getByLabel(/Reason/).fill('half a yen');
    await form.getByRole('button', { name: 'Review…' }).click();
    expect((await page.getByRole('alert').innerText()).trim()).toContain(
      'Amount "500.5": JPY has no decimals (Stripe counts it in whole units); nothing was done.',
    );

    await page.goto(`${consoleApp.url}/transfers/${id}`);
    await form.getByLabel(/Amount in JPY/).fill('500');
    await form.getByLabel(/Reason/).fill('partial refund');
    await form.getByRole('button', { name: 'Review…' }).click();
    await page.getByText('500 JPY').first().waitFor({ state: 'visible' });
    await page.getByRole('button', { name: 'Confirm reverse' }).click();
    await page.waitForURL(`${consoleApp.url}/transfers/${id}?done=reverse`);
    await waitForStatus(db.pool, id, ['reversed']);
    await page.reload();
    expect((await page.locator('dt:text-is("Reversal") + dd').innerText()).trim()).toBe(
      '500 JPY reversed or requested; 700 JPY remains with the seller',
    );
    expect(ledgerOf(id)).toEqual([
      ['transfer', 1200, 'jpy'],
      ['reversal', 500, 'jpy'],
    ]);

    // A second reversal made in the Stripe Dashboard (recorded by the webhook): shown on the page.
    const {
      rows: [paid],
    } = await db.pool.query('select stripe_transfer_id from marketplace.seller_transfers where id = $1', [id]);
    await db.pool.query(
      `insert into marketplace.seller_transfer_external_reversals (stripe_reversal_id, transfer_id, stripe_transfer_id, amount_cents, reason)
      values ('trr_dashboard1', $1, $2, 200, 'stripe webhook evt_x: transfer.reversed')`,
      [id, paid.stripe_transfer_id],
    );
    await page.reload();
    const outside = (await page.locator('dt:text-is("Reversed outside") + dd').innerText()).trim();
    expect(outside).toContain('Stripe holds 1 more reversal(s) of this payout than it records');
    expect(outside).toContain('trr_dashboard1 200 JPY');
    expect(await seriousViolations(page)).toEqual([]);

    await page.goto(`${consoleApp.url}/transfers?status=reversed`);
    await page.getByText('1,200 JPY').first().waitFor({ state: 'visible' });
  });
});
