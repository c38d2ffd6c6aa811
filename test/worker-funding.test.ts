// Payouts and the platform's balance, against the simulator's funding model: a payout funded
// from the order's charge (source_transaction) is paid while the platform's available balance is
// empty; one without it waits on balance_insufficient, visibly, until the balance is topped up
// and an operator retries it; charges Stripe refuses end the row where docs/service-authors.md says.
import { randomUUID } from 'node:crypto';
import Stripe from 'stripe';
import { beforeEach, describe, expect, it } from 'vitest';
import { createWorkerMetrics } from '../src/metrics.ts';
import { useTestDatabase } from './support/database.ts';
import { rowOf } from './support/transfers.ts';
import { TEST_STRIPE_KEY, useTestWorker, waitFor, waitForStatus } from './support/worker.ts';

const db = useTestDatabase();
// Slow ordinary retries and balance retries: what moves a row here is the worker's first
// attempt or an operator's retry, never the clock.
const { sim } = useTestWorker(db, {
  RETRY_BASE_SECONDS: '60',
  RETRY_MAX_SECONDS: '60',
  BALANCE_RETRY_SECONDS: '60',
  BALANCE_MAX_ATTEMPTS: '5',
});
beforeEach(() => {
  sim.reset();
  sim.setPlatformBalance('usd', 0); // a platform without a float of its own
});

async function insertPayout(amount: number, currency: string, sourceTransaction: string | null, id = randomUUID()): Promise<string> {
  await db.pool.query(
    `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction)
     values ($1, gen_random_uuid(), gen_random_uuid(), 'acct_funding', $2, $3, $4)`,
    [id, amount, currency, sourceTransaction],
  );
  return id;
}
const row = (id: string) => rowOf(db.pool, id);
const waiting = async () =>
  (await db.pool.query<{ id: string }>('select id from marketplace.seller_transfers_waiting_for_funds')).rows.map((r) => r.id);
const doctorFunds = async () =>
  (
    await db.pool.query<{ status: string; detail: string }>(
      `select status, detail from marketplace.seller_transfer_doctor() where check_name = 'payouts waiting for the platform''s balance'`,
    )
  ).rows[0]!;

describe('funding a payout', () => {
  it('with source_transaction: paid from the charge while its funds are pending and the available balance is zero', async () => {
    const charge = sim.makeCharge({ amount: 5000, currency: 'usd', availableInSeconds: 2 * 86400 });
    const id = await insertPayout(4200, 'usd', charge.id);
    await waitForStatus(db.pool, id, ['completed']);
    const [t] = sim.transfers().filter((x) => x.metadata.seller_transfer_id === id);
    expect(t).toMatchObject({ amount: 4200, currency: 'usd', source_transaction: charge.id });
    expect(sim.platformBalance('usd')).toEqual({ currency: 'usd', available: 0, pending: 800 });
    expect(await waiting()).toEqual([]);
  });

  it('without it: waits on balance_insufficient, counted as waiting for funds; topped up and retried by an operator, it is paid', async () => {
    const id = await insertPayout(4200, 'usd', null);
    const r = await waitFor('a balance failure', async () => {
      const x = await row(id);
      return x.status === 'failed' ? x : undefined;
    });
    expect(r.last_error).toMatch(/balance_insufficient/);
    expect(r.retry_count).toBe(1);
    expect(await waiting()).toEqual([id]);
    expect(await doctorFunds()).toMatchObject({
      status: 'problem',
      detail: expect.stringMatching(/^1 payout\(s\) .*: 1 payout\(s\), \d[\d,]*\.\d\d USD; most attempts so far 1$/),
    });
    expect(sim.ledger()).toEqual([]);
    const metrics = createWorkerMetrics(db.pool);
    const gauge = () => metrics.registry.getSingleMetricAsString('seller_transfers_waiting_for_funds');
    expect(await gauge()).toContain('seller_transfers_waiting_for_funds{currency="usd"} 1');

    sim.setPlatformBalance('usd', 10_000); // the platform's balance is topped up
    await db.pool.query(
      `select marketplace.retry_seller_transfer(id, 'platform balance topped up') from marketplace.seller_transfers_waiting_for_funds`,
    );
    await waitForStatus(db.pool, id, ['completed']);
    expect(sim.ledger().map((e) => [e.type, e.amount])).toEqual([['transfer', 4200]]);
    expect(await waiting()).toEqual([]);
    expect((await doctorFunds()).status).toBe('ok');
    expect(await gauge()).not.toContain('currency="usd"');
  });
});

describe('charges Stripe refuses as a source: permanently_failed, saying why, nothing paid', () => {
  it.each([
    ['an unknown charge', () => 'ch_doesnotexist', 1000, /resource_missing.*No such charge: 'ch_doesnotexist'/],
    ['a charge in another currency', () => sim.makeCharge({ amount: 5000, currency: 'eur' }).id, 1000, /invalid_request_error.*currency/],
    [
      'a charge with less left than the payout',
      () => sim.makeCharge({ amount: 500, currency: 'usd' }).id,
      1000,
      /exceeds what is left to transfer/,
    ],
  ])('%s', async (_what, charge, amount, error) => {
    const id = await insertPayout(amount, 'usd', charge());
    await waitForStatus(db.pool, id, ['permanently_failed']);
    expect((await row(id)).last_error).toMatch(error);
    expect(sim.ledger()).toEqual([]);
    expect(await waiting()).toEqual([]);
  });

  it('a charge already transferred from: the second payout is refused, the first stays paid', async () => {
    const charge = sim.makeCharge({ amount: 1000, currency: 'usd' });
    const first = await insertPayout(700, 'usd', charge.id);
    await waitForStatus(db.pool, first, ['completed']);
    const second = await insertPayout(400, 'usd', charge.id);
    await waitForStatus(db.pool, second, ['permanently_failed']);
    expect((await row(second)).last_error).toMatch(/\(300 of 1000 usd\)/);
    expect(sim.ledger().map((e) => e.amount)).toEqual([700]);
  });
});

describe('the lookup compares source_transaction', () => {
  it('a transfer found for the row with another source_transaction is held for review, not adopted', async () => {
    const mine = sim.makeCharge({ amount: 1000, currency: 'usd' });
    const other = sim.makeCharge({ amount: 1000, currency: 'usd' });
    sim.injectFault({ operation: 'transfer.create', kind: 'error_before' }); // first attempt fails: the next one looks up first
    const id = await insertPayout(600, 'usd', mine.id);
    await waitFor('the failed first attempt', async () => (await row(id)).retry_count === 1);
    // Someone made this row's transfer from another charge (a write past the guard, or by hand).
    const stripe = new Stripe(TEST_STRIPE_KEY, { host: '127.0.0.1', port: sim.port, protocol: 'http', maxNetworkRetries: 0 });
    await stripe.transfers.create({
      amount: 600,
      currency: 'usd',
      destination: 'acct_funding',
      transfer_group: `seller_transfer_${id}`,
      source_transaction: other.id,
      metadata: { seller_transfer_id: id },
    });
    await db.pool.query(`select marketplace.retry_seller_transfer($1, 'test: look it up now')`, [id]);
    const held = await waitFor(
      'the row held for review',
      async () => (await db.pool.query('select * from marketplace.seller_transfers_held_for_review where id = $1', [id])).rows[0],
    );
    expect(held.last_error).toMatch(new RegExp(`differs: source_transaction ${other.id} != ${mine.id}`));
    expect(held.stripe_transfer_id).toBeNull();
  });
});

describe('the audit treats source_transaction as a money fact', () => {
  it('a source_transaction changed past the guard is money_facts_changed, naming both charges', async () => {
    const {
      rows: [r],
    } = await db.pool.query<{
      id: string;
    }>(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, next_retry_at)
      values (gen_random_uuid(), gen_random_uuid(), 'acct_audit', 900, 'usd', 'ch_RECORDED', now() + interval '1 hour') returning id`);
    const c = await db.pool.connect();
    try {
      await c.query('set session_replication_role = replica'); // a superuser writing past every trigger
      await c.query(`update marketplace.seller_transfers set source_transaction = 'ch_SWAPPED' where id = $1`, [r!.id]);
      await c.query('set session_replication_role = origin');
    } finally {
      c.release();
    }
    const { rows } = await db.pool.query('select problem, detail from marketplace.audit_seller_transfers() where transfer_id = $1', [
      r!.id,
    ]);
    expect(rows).toEqual([
      {
        problem: 'money_facts_changed',
        detail: expect.stringMatching(
          /created as 9\.00 USD to acct_audit from ch_RECORDED, the row now says 9\.00 USD to acct_audit from ch_SWAPPED$/,
        ),
      },
    ]);
  });
});
