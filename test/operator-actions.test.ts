// What the database says is true: an operator's retry is in the history (an action, not a step:
// audit stays clean, "status since" does not move), amounts in the database's own messages are
// in their currency's unit, and an upper-case currency fails on a named constraint.
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { committedAs, insertTransfer, transferIn } from './support/transfers.ts';
import { cliFor } from './support/cli.ts';

const db = useTestDatabase();
const cli = cliFor(() => db.url);

async function transferInCurrency(currency: string, amount: number): Promise<string> {
  const { rows } = await db.pool.query<{ id: string }>(
    `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
     values (gen_random_uuid(), gen_random_uuid(), 'acct_units', $1, $2) returning id`,
    [amount, currency],
  );
  const id = rows[0]!.id;
  await db.pool.query(`select marketplace.mark_seller_transfer_paid($1, $2, '')`, [id, `tr_${id.replaceAll('-', '')}`]);
  return id;
}

describe('an operator retry', () => {
  it('is recorded in the history with its authority, reason and person, and shown by show', async () => {
    const id = await transferIn(db.pool, 'failed');
    const since = (await db.pool.query('select marketplace.seller_transfer_status_since($1) as at', [id])).rows[0].at as Date;
    const err = await committedAs(db.pool, 'marketplace_operator', async (c) => {
      await c.query(`set local marketplace.requested_by = 'alice (console)'`);
      await c.query(`select marketplace.retry_seller_transfer($1, 'platform balance topped up')`, [id]);
    });
    expect(err).toBeNull();
    const { rows } = await db.pool.query(
      `select from_status, to_status, action, authority, reason, requested_by from marketplace.seller_transfer_events
        where transfer_id = $1 order by id desc limit 1`,
      [id],
    );
    expect(rows[0]).toEqual({
      from_status: 'failed',
      to_status: 'failed',
      action: 'retry',
      authority: 'operator',
      reason: 'platform balance topped up',
      requested_by: 'alice (console)',
    });
    // An action is not a step: the audit finds nothing, and the row is in its status since its move.
    expect((await db.pool.query('select * from marketplace.audit_seller_transfers() where transfer_id = $1', [id])).rows).toEqual([]);
    expect((await db.pool.query('select marketplace.seller_transfer_status_since($1) as at', [id])).rows[0].at).toEqual(since);
    const show = await cli('show', id);
    expect(show.code).toBe(0);
    expect(show.stdout).toContain('platform balance topped up');
  });

  it('by the CLI: recorded with the reason', async () => {
    const id = await transferIn(db.pool, 'failed');
    expect((await cli('retry', id, '--reason', 'topped up')).code).toBe(0);
    const { rows } = await db.pool.query(
      `select action, reason from marketplace.seller_transfer_events where transfer_id = $1 order by id desc limit 1`,
      [id],
    );
    expect(rows[0]).toEqual({ action: 'retry', reason: 'topped up' });
  });
});

describe("amounts in the database's messages", () => {
  it.each([
    ['usd', 1000, 1001, 'reversal amount 10.01 USD exceeds the transfer amount of 10.00 USD'],
    ['jpy', 1200, 5000, 'reversal amount 5,000 JPY exceeds the transfer amount of 1,200 JPY'],
    ['kwd', 1250, 1251, 'reversal amount 1.251 KWD exceeds the transfer amount of 1.250 KWD'],
  ])('%s: a reversal larger than the payout', async (currency, amount, asked, message) => {
    const id = await transferInCurrency(currency, amount);
    const err = await committedAs(db.pool, 'marketplace_operator', (c) =>
      c.query(`select marketplace.reverse_seller_transfer($1, 'refund', $2)`, [id, asked]),
    );
    expect(err?.message).toBe(message);
  });

  it('doctor counts payouts and sums their money per currency', async () => {
    const a = await insertTransfer(db.pool, 3000);
    const b = await insertTransfer(db.pool, 3000);
    for (const id of [a, b])
      await db.pool.query(
        `select marketplace.record_seller_transfer_failure($1, 'pending', 'balance_insufficient: insufficient funds', now() + interval '1 hour', 'worker')`,
        [id],
      );
    const { rows } = await db.pool.query<{ detail: string }>(
      `select detail from marketplace.seller_transfer_doctor() where check_name = 'payouts waiting for the platform''s balance'`,
    );
    expect(rows[0]?.detail).toContain('2 payout(s), 60.00 USD');
  });
});

describe('currencies', () => {
  it('an upper-case currency fails on a named constraint', async () => {
    const err = await committedAs(db.pool, 'marketplace_writer', (c) =>
      c.query(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
               values (gen_random_uuid(), gen_random_uuid(), 'acct_upper', 100, 'USD')`),
    );
    expect(err?.code).toBe('23514');
    expect(err?.constraint).toBe('seller_transfer_currency_lowercase');
  });
});
