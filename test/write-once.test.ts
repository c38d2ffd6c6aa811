// Write-once money facts, generated: every write-once column x every status x every role that
// may UPDATE (plus the owner) is refused with the contract's error and leaves the row byte for
// byte as it was; a Stripe id goes from null to a value once; the reversal amount is chosen with
// the move into reversal_pending and never after.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { STATUSES, type Status } from './support/expected-matrix.ts';
import { useTestDatabase } from './support/database.ts';
import { asRole, historyOf, pgError, transferIn } from './support/transfers.ts';

const db = useTestDatabase();

/** The roles that can UPDATE the table, and the owner (the migrations' role, here the superuser). */
const WRITERS = ['marketplace_writer', 'marketplace_worker', 'owner'] as const;
type Writer = (typeof WRITERS)[number];

/** Columns fixed at insert, each with a new value that passes the column's own CHECKs. */
const FIXED: Record<string, string> = {
  id: `'${randomUUID()}'::uuid`,
  order_id: 'gen_random_uuid()',
  seller_id: 'gen_random_uuid()',
  stripe_account_id: `'acct_EVIL'`,
  amount_cents: 'amount_cents + 1',
  currency: `'eur'`,
  source_transaction: `'ch_OTHER'`, // null at insert here; a value set at insert is covered below
  created_at: `created_at - interval '1 day'`,
};

const rows = {} as Record<Status, string>;
beforeAll(async () => {
  for (const s of STATUSES) rows[s] = await transferIn(db.pool, s);
});

async function snapshot(id: string): Promise<string> {
  const {
    rows: [r],
  } = await db.pool.query<{ row: string }>('select to_jsonb(t)::text as row from marketplace.seller_transfers t where id = $1', [id]);
  return r!.row;
}

/** Runs `sql` as `who` in a transaction that is always rolled back. */
const as = <T>(who: Writer | 'marketplace_reader', fn: (c: pg.PoolClient) => Promise<T>): Promise<T> =>
  asRole(db.pool, who === 'owner' ? null : who, fn);

async function expectRefused(who: Writer, id: string, set: string, column: string): Promise<void> {
  const before = await snapshot(id);
  const history = await historyOf(db.pool, id);
  const err = await as(who, (c) => pgError(() => c.query(`update marketplace.seller_transfers set ${set} where id = $1`, [id])));
  expect(err.code).toBe('23514');
  expect(err.constraint).toBe('seller_transfer_write_once');
  expect(err.column).toBe(column);
  expect(err.message).toBe(
    `seller transfer ${id}: ${column} is ${
      column === 'reversal_amount_cents'
        ? 'chosen with the move into reversal_pending and never changes after it'
        : column.startsWith('stripe_') && column !== 'stripe_account_id'
          ? 'written once, by the worker, and never changes or clears'
          : 'fixed once the transfer exists'
    }`,
  );
  expect(err.hint).toContain('create a new row');
  expect(await snapshot(id)).toBe(before);
  expect(await historyOf(db.pool, id)).toEqual(history);
}

const fixedCases = Object.keys(FIXED).flatMap((column) => STATUSES.flatMap((status) => WRITERS.map((who) => ({ column, status, who }))));

describe('fixed at insert', () => {
  it('generates every column x status x role', () => expect(fixedCases).toHaveLength(8 * 6 * 3));

  it.each(fixedCases)('$column of a $status row, as $who: refused, row unchanged', async ({ column, status, who }) => {
    await expectRefused(who, rows[status], `${column} = ${FIXED[column]}`, column);
  });

  it.each(STATUSES)('a reader cannot write them at all (%s)', async (status) => {
    const err = await as('marketplace_reader', (c) =>
      pgError(() => c.query('update marketplace.seller_transfers set amount_cents = 1 where id = $1', [rows[status]])),
    );
    expect(err.code).toBe('42501');
  });

  it("a multi-row UPDATE that rewrites one row's fact fails as a whole", async () => {
    const ids = [rows.pending, rows.failed, rows.completed];
    const before = await Promise.all(ids.map(snapshot));
    const err = await pgError(() =>
      db.pool.query(
        `update marketplace.seller_transfers set currency = case when id = $1 then 'eur' else currency end, updated_at = now() where id = any($2)`,
        [rows.failed, ids],
      ),
    );
    expect(err.constraint).toBe('seller_transfer_write_once');
    expect(await Promise.all(ids.map(snapshot))).toEqual(before);
  });

  it.each(WRITERS)('a source_transaction set at insert, as %s: neither changed nor cleared', async (who) => {
    const {
      rows: [r],
    } = await db.pool.query<{
      id: string;
    }>(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction)
      values (gen_random_uuid(), gen_random_uuid(), 'acct_src', 500, 'usd', 'ch_ORIGINAL') returning id`);
    await expectRefused(who, r!.id, `source_transaction = 'py_OTHER'`, 'source_transaction');
    await expectRefused(who, r!.id, 'source_transaction = null', 'source_transaction');
  });

  it('setting a fact to the value it already has is not a change', async () => {
    await as('marketplace_writer', async (c) => {
      const r = await c.query('update marketplace.seller_transfers set amount_cents = amount_cents, currency = currency where id = $1', [
        rows.completed,
      ]);
      expect(r.rowCount).toBe(1);
    });
  });
});

describe('Stripe ids: null -> value once, then never another value or null', () => {
  const ids = [
    {
      column: 'stripe_transfer_id',
      value: (id: string) => `tr_OTHER${id.slice(0, 8)}`,
      set: ['completed', 'reversal_pending', 'reversed'] as Status[],
    },
    { column: 'stripe_reversal_id', value: (id: string) => `trr_OTHER${id.slice(0, 8)}`, set: ['reversed'] as Status[] },
  ];
  const cases = ids.flatMap((c) =>
    STATUSES.flatMap((status) => WRITERS.map((who) => ({ ...c, status, who, holds: c.set.includes(status) }))),
  );

  it.each(cases)('$column of a $status row, as $who', async ({ column, value, status, who, holds }) => {
    const id = rows[status];
    if (who !== 'owner') {
      // Services do not write the worker's columns at all (a service that set a Stripe id first
      // would take it from the worker), and the worker writes them only through its recording
      // functions (marketplace_recorder): a plain UPDATE is refused by privilege, before any trigger.
      const before = await snapshot(id);
      const err = await as(who, (c) =>
        pgError(() => c.query(`update marketplace.seller_transfers set ${column} = '${value(id)}' where id = $1`, [id])),
      );
      expect(err.code).toBe('42501');
      expect(await snapshot(id)).toBe(before);
      return;
    }
    if (holds) {
      await expectRefused(who, id, `${column} = '${value(id)}'`, column);
      await expectRefused(who, id, `${column} = null`, column);
      return;
    }
    // null -> value is allowed (where the couplings allow the value at all), once.
    const before = await snapshot(id);
    const needsTransfer = column === 'stripe_reversal_id';
    await as(who, async (c) => {
      const set = needsTransfer
        ? `stripe_transfer_id = coalesce(stripe_transfer_id, 'tr_first${id.slice(0, 8)}'), ${column} = '${value(id)}'`
        : `${column} = '${value(id)}'`;
      expect((await c.query(`update marketplace.seller_transfers set ${set} where id = $1`, [id])).rowCount).toBe(1);
      await c.query('savepoint again');
      const err = await pgError(() => c.query(`update marketplace.seller_transfers set ${column} = '${value(id)}x' where id = $1`, [id]));
      expect(err.constraint).toBe('seller_transfer_write_once');
      await c.query('rollback to savepoint again');
      const cleared = await pgError(() => c.query(`update marketplace.seller_transfers set ${column} = null where id = $1`, [id]));
      expect(cleared.constraint).toBe('seller_transfer_write_once');
    });
    expect(await snapshot(id)).toBe(before);
  });
});

describe('reversal_amount_cents: chosen with the move into reversal_pending, never after', () => {
  it.each(WRITERS)('as %s: accepted with completed -> reversal_pending, refused afterwards and on every other status', async (who) => {
    const id = await transferIn(db.pool, 'completed');
    await as(who, async (c) => {
      await c.query(`update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 400 where id = $1`, [id]);
      const err = await pgError(() => c.query('update marketplace.seller_transfers set reversal_amount_cents = 300 where id = $1', [id]));
      expect(err.constraint).toBe('seller_transfer_write_once');
      expect(err.column).toBe('reversal_amount_cents');
    });
    for (const status of STATUSES) {
      await expectRefused(who, rows[status], 'reversal_amount_cents = 10', 'reversal_amount_cents');
    }
  });

  it('null (the whole amount) stays null when the worker records a whole reversal', async () => {
    const id = await transferIn(db.pool, 'reversal_pending');
    const {
      rows: [r],
    } = await db.pool.query<{ amount_cents: string }>('select amount_cents from marketplace.seller_transfers where id = $1', [id]);
    expect(
      (
        await db.pool.query('select marketplace.mark_seller_transfer_reversed($1, $2, $3, $4) as ok', [
          id,
          `trr_whole${id.slice(0, 8)}`,
          r!.amount_cents,
          'test',
        ])
      ).rows[0].ok,
    ).toBe(true);
    expect(
      (await db.pool.query('select reversal_amount_cents from marketplace.seller_transfers where id = $1', [id])).rows[0]
        .reversal_amount_cents,
    ).toBeNull();
  });

  it('recording a reversal of another amount than was asked is refused (the worker holds such a row for review instead)', async () => {
    const id = await transferIn(db.pool, 'reversal_pending');
    const err = await pgError(() =>
      db.pool.query('select marketplace.mark_seller_transfer_reversed($1, $2, 1, $3)', [id, `trr_one${id.slice(0, 8)}`, 'test']),
    );
    expect(err.constraint).toBe('seller_transfer_write_once');
  });
});

describe('precedence: the matrix, then write-once, then the couplings', () => {
  it('an illegal move that also rewrites a fact reports the move', async () => {
    const err = await pgError(() =>
      db.pool.query(`update marketplace.seller_transfers set status = 'pending', amount_cents = 1 where id = $1`, [rows.completed]),
    );
    expect(err.constraint).toBe('seller_transfer_status_transition');
  });

  it('clearing the paid transfer id reports write-once, not the coupling it also breaks', async () => {
    const err = await pgError(() =>
      db.pool.query('update marketplace.seller_transfers set stripe_transfer_id = null where id = $1', [rows.completed]),
    );
    expect(err.constraint).toBe('seller_transfer_write_once');
  });
});
