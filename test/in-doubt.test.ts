// A row whose last Stripe request is in doubt (no answer: Stripe may have paid or reversed it) is
// never given up by a plain write, by a service or by the owner, directly or through failed; only
// the worker, recording what Stripe answered, clears the flag.
import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { useTestDatabase } from './support/database.ts';
import { committedAs, insertTransfer, transferIn } from './support/transfers.ts';

const db = useTestDatabase();

/**
 * A row in `status` whose last Stripe request got no answer. failed and reversal_pending as the
 * worker records it; pending (a worker's hold before its first recorded attempt) written by the owner.
 */
async function inDoubt(status: 'pending' | 'failed' | 'reversal_pending'): Promise<string> {
  if (status === 'pending') {
    const id = await insertTransfer(db.pool);
    await db.pool.query('update marketplace.seller_transfers set stripe_request_in_doubt = true where id = $1', [id]);
    return id;
  }
  const id = status === 'reversal_pending' ? await transferIn(db.pool, 'reversal_pending') : await insertTransfer(db.pool);
  const r = await db.pool.query(
    `select marketplace.record_seller_transfer_failure($1, $2, 'timeout', now() + interval '1 hour', 'worker: no answer', false, true) as s`,
    [id, status === 'reversal_pending' ? 'reversal_pending' : 'pending'],
  );
  expect(r.rows[0].s).toBe(status);
  return id;
}

async function row(id: string): Promise<{ status: string; stripe_request_in_doubt: boolean }> {
  return (await db.pool.query('select status, stripe_request_in_doubt from marketplace.seller_transfers where id = $1', [id])).rows[0];
}

const as = (role: string | null, fn: (c: pg.PoolClient) => Promise<unknown>) => committedAs(db.pool, role, fn);

const giveUp = `update marketplace.seller_transfers set status = 'permanently_failed' where id = $1`;

describe('a plain write never gives up a row in doubt', () => {
  it.each(['failed', 'reversal_pending'] as const)('the owner: %s -> permanently_failed is refused, the row unchanged', async (status) => {
    const id = await inDoubt(status);
    const err = await as(null, (c) => c.query(giveUp, [id]));
    expect(err?.code).toBe('23514');
    expect(err?.constraint).toBe('seller_transfer_in_doubt');
    expect(err?.message).toMatch(/may not become permanently_failed while stripe_request_in_doubt/);
    expect(await row(id)).toEqual({ status, stripe_request_in_doubt: true });
  });

  it('the owner: pending in doubt through failed to permanently_failed: the first step passes, the second is refused', async () => {
    const id = await inDoubt('pending');
    expect(
      await as(null, (c) =>
        c.query(`update marketplace.seller_transfers set status = 'failed', next_retry_at = now() where id = $1`, [id]),
      ),
    ).toBeNull();
    expect((await as(null, (c) => c.query(giveUp, [id])))?.constraint).toBe('seller_transfer_in_doubt');
    expect(await row(id)).toEqual({ status: 'failed', stripe_request_in_doubt: true });
  });

  it('the owner cannot clear the flag, alone or with the move', async () => {
    const id = await inDoubt('failed');
    for (const sql of [
      'update marketplace.seller_transfers set stripe_request_in_doubt = false where id = $1',
      `update marketplace.seller_transfers set stripe_request_in_doubt = false, status = 'permanently_failed' where id = $1`,
    ]) {
      const err = await as(null, (c) => c.query(sql, [id]));
      expect(err?.constraint).toBe('seller_transfer_in_doubt');
    }
    expect(await row(id)).toEqual({ status: 'failed', stripe_request_in_doubt: true });
  });

  it.each(['failed', 'reversal_pending'] as const)(
    'a service: %s -> permanently_failed is not its move; the flag is not its column',
    async (status) => {
      const id = await inDoubt(status);
      expect((await as('marketplace_writer', (c) => c.query(giveUp, [id])))?.constraint).toBe('seller_transfer_move_owner');
      expect(
        (
          await as('marketplace_writer', (c) =>
            c.query('update marketplace.seller_transfers set stripe_request_in_doubt = false where id = $1', [id]),
          )
        )?.code,
      ).toBe('42501');
      expect(await row(id)).toEqual({ status, stripe_request_in_doubt: true });
    },
  );

  it('a service cancelling through fail_seller_transfer gets its checks: refused in doubt', async () => {
    const id = await inDoubt('failed');
    const err = await as('marketplace_writer', (c) => c.query(`select marketplace.fail_seller_transfer($1, 'order cancelled')`, [id]));
    expect(err?.message).toMatch(/is not given up: stripe_request_in_doubt/);
    expect(await row(id)).toEqual({ status: 'failed', stripe_request_in_doubt: true });
  });
});

describe('the worker records what Stripe answered', () => {
  it('its in-doubt pending -> failed still works', async () => {
    const id = await insertTransfer(db.pool);
    await db.pool.query(
      `select marketplace.record_seller_transfer_failure($1, 'pending', 'timeout', now() + interval '1 hour', 'worker', false, true)`,
      [id],
    );
    expect(await row(id)).toEqual({ status: 'failed', stripe_request_in_doubt: true });
  });

  it('a definite answer clears the flag and may give the row up', async () => {
    const id = await inDoubt('failed');
    const r = await db.pool.query(
      `select marketplace.record_seller_transfer_failure($1, 'failed', 'account closed', null, 'worker: permanent', true, false) as s`,
      [id],
    );
    expect(r.rows[0].s).toBe('permanently_failed');
    expect(await row(id)).toEqual({ status: 'permanently_failed', stripe_request_in_doubt: false });
  });

  it("the worker's role cannot clear the flag by plain UPDATE either", async () => {
    const id = await inDoubt('failed');
    expect(
      (
        await as('marketplace_worker', (c) =>
          c.query('update marketplace.seller_transfers set stripe_request_in_doubt = false where id = $1', [id]),
        )
      )?.code,
    ).toBe('42501');
    expect((await as('marketplace_worker', (c) => c.query(giveUp, [id])))?.constraint).toBe('seller_transfer_in_doubt');
  });
});

describe("services never write the worker's columns, by INSERT or COPY", () => {
  const columns = {
    stripe_transfer_id: `'tr_forged'`,
    stripe_reversal_id: `'trr_forged'`,
    stripe_key_generation: '3',
    stripe_request_in_doubt: 'true',
  };
  it.each(Object.entries(columns))('INSERT of %s is refused (42501), nothing written', async (column, value) => {
    const before = (await db.pool.query('select count(*)::int as n from marketplace.seller_transfers')).rows[0].n;
    const err = await as('marketplace_writer', (c) =>
      c.query(
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, ${column})
       values (gen_random_uuid(), gen_random_uuid(), 'acct_svc', 100, 'usd', ${value})`,
      ),
    );
    expect(err?.code).toBe('42501');
    expect((await db.pool.query('select count(*)::int as n from marketplace.seller_transfers')).rows[0].n).toBe(before);
  });

  it.each(Object.keys(columns))('COPY naming %s is refused before any row is read', async (column) => {
    const err = await as('marketplace_writer', (c) =>
      c.query(`copy marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, ${column}) from stdin`),
    );
    expect(err?.code).toBe('42501');
  });

  it("the worker's role creates nothing", async () => {
    const err = await as('marketplace_worker', (c) =>
      c.query(
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency) values (gen_random_uuid(), gen_random_uuid(), 'acct_w', 100, 'usd')`,
      ),
    );
    expect(err?.code).toBe('42501');
  });

  it("a service's own writes pass: create a payout, request a reversal with its amount, cancel through the function", async () => {
    let created = '';
    expect(
      await as('marketplace_writer', async (c) => {
        created = (
          await c.query(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
                                values (gen_random_uuid(), gen_random_uuid(), 'acct_svc', 1000, 'usd') returning id`)
        ).rows[0].id;
      }),
    ).toBeNull();
    const paid = await transferIn(db.pool, 'completed');
    expect(
      await as('marketplace_writer', (c) =>
        c.query(`update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 250 where id = $1`, [paid]),
      ),
    ).toBeNull();
    expect(
      await as('marketplace_writer', (c) =>
        c.query(`select marketplace.fail_seller_transfer($1, 'order cancelled before payout')`, [created]),
      ),
    ).toBeNull();
    expect((await row(created)).status).toBe('permanently_failed');
    const { rows } = await db.pool.query(
      `select to_status, authority from marketplace.seller_transfer_events where transfer_id = $1 order by id`,
      [created],
    );
    expect(rows).toEqual([
      { to_status: 'pending', authority: 'service' },
      { to_status: 'failed', authority: 'service' },
      { to_status: 'permanently_failed', authority: 'service' },
    ]);
  });
});
