// A program reads a refused write as fields, per docs/service-authors.md ("Reading a refusal"):
// the SQLSTATE, the constraint, SCHEMA/TABLE/COLUMN, and the DETAIL's first line of key=value
// pairs (seller_transfer_id, from, to, authority), parsed here by the documented rule alone, as a
// node-postgres client would. Each refusal kind is generated: the matrix's illegal pairs, the legal
// moves a role does not own, the legal moves a role owns made under a marketplace.speaker that is not
// its own, the write-once rules the database lists, the moves into
// permanently_failed of a row in doubt, the legal moves without their coupled column, DELETE of a
// row in each status Stripe may have seen, INSERT in each non-initial status.
import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import { describe, expect, it, vi } from 'vitest';
import { detailForPeople } from '../src/core/refusal.ts';
import { expectedAllowed, INITIAL, MOVE_OWNERS, STATUSES, type Authority, type Status } from './support/expected-matrix.ts';
import { useTestDatabase } from './support/database.ts';
import { asRole, pgError, statusUpdateSql, transferIn } from './support/transfers.ts';

vi.setConfig({ testTimeout: 60_000 });

const db = useTestDatabase();

/**
 * The documented rule: the text before the DETAIL's first newline is space-separated key=value
 * pairs, each split at its first '='. Returns null when that line is not in the format.
 */
function fieldsOf(detail: string | undefined): Record<string, string> | null {
  if (!detail) return null;
  const first = detail.split('\n', 1)[0]!;
  const pairs = first.split(' ').map((p) => {
    const i = p.indexOf('=');
    return i > 0 ? ([p.slice(0, i), p.slice(i + 1)] as const) : null;
  });
  if (pairs.some((p) => p === null || p[1] === '')) return null;
  return Object.fromEntries(pairs as Array<readonly [string, string]>);
}

/** What every refusal of a write to a seller transfer says as fields. */
function expectRefusal(
  err: pg.DatabaseError,
  want: { code: string; constraint: string; column: string | undefined; fields: Record<string, string> },
): void {
  expect({ code: err.code, constraint: err.constraint, schema: err.schema, table: err.table, column: err.column }).toEqual({
    code: want.code,
    constraint: want.constraint,
    schema: 'marketplace',
    table: 'seller_transfers',
    column: want.column,
  });
  // Exactly the documented keys for this refusal, no more, none empty.
  expect(fieldsOf(err.detail), err.detail).toEqual(want.fields);
  // The text for people follows on the next lines, and the front ends show only it.
  const people = detailForPeople(err.detail);
  expect(people).toBeTruthy();
  expect(people).toBe(err.detail!.slice(err.detail!.indexOf('\n') + 1));
  expect(people).not.toMatch(/\bseller_transfer_id=/);
}

/** Nothing but the status: what a role without the Stripe columns may write (the owner fills the couplings, statusUpdateSql). */
const bareMove = 'update marketplace.seller_transfers set status = $2 where id = $1';

const pairs = STATUSES.flatMap((from) => STATUSES.map((to) => ({ from, to })));
const illegal = pairs.filter(({ from, to }) => !expectedAllowed(from, to));
const legal = pairs.filter(({ from, to }) => from !== to && expectedAllowed(from, to));

describe('the parse rule itself', () => {
  it('reads the fields line and refuses text that is not one', () => {
    expect(fieldsOf('seller_transfer_id=a from=b to=c\nmore')).toEqual({ seller_transfer_id: 'a', from: 'b', to: 'c' });
    expect(fieldsOf('seller transfer a: allowed from b: c')).toBeNull();
    expect(fieldsOf('Key (currency)=(xyz) is not present in table "currencies".')).toBeNull();
    expect(detailForPeople('Key (currency)=(xyz) is not present')).toBe('Key (currency)=(xyz) is not present');
    expect(detailForPeople('seller_transfer_id=a from=b\nfor people')).toBe('for people');
  });
});

describe('illegal moves (seller_transfer_status_transition), generated over the matrix', () => {
  it('has the 23 illegal pairs', () => expect(illegal).toHaveLength(23));

  it.each(illegal)('$from -> $to, by the owner and by a service: id, from, to as fields', async ({ from, to }) => {
    const id = await transferIn(db.pool, from);
    for (const role of [null, 'marketplace_writer']) {
      const err = await asRole(db.pool, role, (c) => pgError(() => c.query(role ? bareMove : statusUpdateSql(), [id, to])));
      expect(err.message).toBe(`illegal seller transfer status transition: ${from} -> ${to}`);
      expectRefusal(err, {
        code: '23514',
        constraint: 'seller_transfer_status_transition',
        column: 'status',
        fields: { seller_transfer_id: id, from, to },
      });
    }
  });
});

describe('a legal move its role does not own (seller_transfer_move_owner), generated over the owners', () => {
  const ROLE_OF: Record<Exclude<Authority, 'operator'>, string> = { service: 'marketplace_writer', worker: 'marketplace_worker' };
  const notOwned = legal.flatMap(({ from, to }) =>
    (Object.keys(ROLE_OF) as Array<keyof typeof ROLE_OF>)
      .filter((a) => !MOVE_OWNERS[`${from}>${to}`]!.includes(a))
      .map((authority) => ({ from, to, authority, role: ROLE_OF[authority] })),
  );

  it('finds the moves a service or the worker may not make', () => expect(notOwned.length).toBeGreaterThanOrEqual(6));

  it.each(notOwned)('$from -> $to by $role: id, from, to, authority as fields', async ({ from, to, authority, role }) => {
    const id = await transferIn(db.pool, from);
    const err = await asRole(db.pool, role, (c) => pgError(() => c.query(bareMove, [id, to])));
    expectRefusal(err, {
      code: '42501',
      constraint: 'seller_transfer_move_owner',
      column: 'status',
      fields: { seller_transfer_id: id, from, to, authority },
    });
  });

  it.each(STATUSES.filter((s) => expectedAllowed(s, 'permanently_failed') && s !== 'permanently_failed'))(
    'a service giving up a paid %s payout through fail_seller_transfer: the same fields',
    async (from) => {
      const id = await transferIn(db.pool, from);
      await db.pool.query(
        `update marketplace.seller_transfers set stripe_transfer_id = coalesce(stripe_transfer_id, 'tr_fx' || left(md5(id::text), 12)) where id = $1`,
        [id],
      );
      const err = await asRole(db.pool, 'marketplace_writer', (c) =>
        pgError(() => c.query(`select marketplace.fail_seller_transfer($1, 'refusal fields')`, [id])),
      );
      expectRefusal(err, {
        code: '42501',
        constraint: 'seller_transfer_move_owner',
        column: 'status',
        fields: { seller_transfer_id: id, from, to: 'permanently_failed', authority: 'service' },
      });
    },
  );
});

describe('a move whose marketplace.speaker is not its own (seller_transfer_move_owner), generated over the owners', () => {
  // Each legal move made by a role that owns it, claiming to be the worker's recording functions or
  // an admin function: the speaker refusal, with the same fields as the owner's.
  const ROLE_OF: Record<Exclude<Authority, 'operator'> | 'owner', string | null> = {
    service: 'marketplace_writer',
    worker: 'marketplace_worker',
    owner: null,
  };
  const claims = legal.flatMap(({ from, to }) =>
    (Object.keys(ROLE_OF) as Array<keyof typeof ROLE_OF>)
      .filter((a) => a === 'owner' || MOVE_OWNERS[`${from}>${to}`]!.includes(a))
      .flatMap((authority) => ['recorder', 'admin'].map((claimed) => ({ from, to, authority, claimed, role: ROLE_OF[authority] }))),
  );

  it('covers a service reversing a paid payout, the worker and the owner', () => {
    expect(claims).toContainEqual({
      from: 'completed',
      to: 'reversal_pending',
      authority: 'service',
      claimed: 'recorder',
      role: 'marketplace_writer',
    });
    expect(new Set(claims.map((c) => c.authority))).toEqual(new Set(['service', 'worker', 'owner']));
  });

  it.each(claims)(
    "$from -> $to by $authority claiming '$claimed': id, from, to, authority as fields",
    async ({ from, to, authority, claimed, role }) => {
      const id = await transferIn(db.pool, from);
      const err = await asRole(db.pool, role, async (c) => {
        await c.query(`select set_config('marketplace.speaker', $1, true)`, [claimed]);
        return pgError(() => c.query(role ? bareMove : statusUpdateSql(), [id, to]));
      });
      expect(err.message).toMatch(
        new RegExp(`^seller transfer ${id}: marketplace\\.speaker is '${claimed}', but \\S+ runs the statement$`),
      );
      expectRefusal(err, {
        code: '42501',
        constraint: 'seller_transfer_move_owner',
        column: 'status',
        fields: { seller_transfer_id: id, from, to, authority },
      });
    },
  );
});

describe('write-once facts (seller_transfer_write_once), generated over the rules the database lists', () => {
  /** A different value for each write-once column (SQL over the row), and the status of a row where it is already written. */
  const CHANGE: Record<string, { to: string; row: Status }> = {
    id: { to: 'gen_random_uuid()', row: 'reversal_pending' },
    order_id: { to: 'gen_random_uuid()', row: 'reversal_pending' },
    seller_id: { to: 'gen_random_uuid()', row: 'reversal_pending' },
    stripe_account_id: { to: `'acct_other'`, row: 'reversal_pending' },
    amount_cents: { to: 'amount_cents + 1', row: 'reversal_pending' },
    currency: { to: `'eur'`, row: 'reversal_pending' },
    source_transaction: { to: `'ch_other'`, row: 'reversal_pending' },
    created_at: { to: `created_at - interval '1 minute'`, row: 'reversal_pending' },
    stripe_transfer_id: { to: `'tr_other'`, row: 'reversal_pending' },
    stripe_reversal_id: { to: `'trr_other'`, row: 'reversed' },
    reversal_amount_cents: { to: '1', row: 'reversal_pending' },
    stripe_key_generation: { to: 'stripe_key_generation + 1', row: 'failed' },
  };

  it('every rule of seller_transfer_write_once_rules(), refused with the row as fields and the column in COLUMN', async () => {
    const { rows: rules } = await db.pool.query<{ column_name: string }>(
      'select column_name from marketplace.seller_transfer_write_once_rules()',
    );
    expect(rules.length).toBeGreaterThan(5);
    // A rule added to the database without a case here fails the test.
    expect(rules.map((r) => r.column_name).sort()).toEqual(Object.keys(CHANGE).sort());
    for (const { column_name: col } of rules) {
      const { to, row } = CHANGE[col]!;
      const id = await transferIn(db.pool, row);
      const err = await asRole(db.pool, null, (c) =>
        pgError(() => c.query(`update marketplace.seller_transfers set ${col} = ${to} where id = $1`, [id])),
      );
      expect(err.message, col).toMatch(new RegExp(`^seller transfer ${id}: ${col} is `));
      expectRefusal(err, {
        code: '23514',
        constraint: 'seller_transfer_write_once',
        column: col,
        fields: { seller_transfer_id: id, from: row, to: row },
      });
    }
  });

  it('a changed amount is also said in its currency unit', async () => {
    const id = await transferIn(db.pool, 'completed');
    const err = await pgError(() => db.pool.query('update marketplace.seller_transfers set amount_cents = 123456 where id = $1', [id]));
    expect(detailForPeople(err.detail)).toBe('amount_cents: 1000 -> 123456 (10.00 USD -> 1,234.56 USD)');
  });
});

describe('a row in doubt (seller_transfer_in_doubt), generated over the moves into permanently_failed', () => {
  const intoGivenUp = legal.filter((m) => m.to === 'permanently_failed');

  it.each(intoGivenUp)('$from -> $to while in doubt, and clearing the flag: id, from, to as fields', async ({ from, to }) => {
    const id = await transferIn(db.pool, from as Status);
    await db.pool.query(
      `select marketplace.record_seller_transfer_failure($1, $2, 'timeout', now() + interval '1 hour', 'worker: no answer', false, true)`,
      [id, from],
    );
    const giveUp = await asRole(db.pool, null, (c) =>
      pgError(() => c.query('update marketplace.seller_transfers set status = $2 where id = $1', [id, to])),
    );
    expectRefusal(giveUp, {
      code: '23514',
      constraint: 'seller_transfer_in_doubt',
      column: 'stripe_request_in_doubt',
      fields: { seller_transfer_id: id, from, to },
    });
    const clear = await asRole(db.pool, null, (c) =>
      pgError(() => c.query('update marketplace.seller_transfers set stripe_request_in_doubt = false where id = $1', [id])),
    );
    expectRefusal(clear, {
      code: '23514',
      constraint: 'seller_transfer_in_doubt',
      column: 'stripe_request_in_doubt',
      fields: { seller_transfer_id: id, from, to: from },
    });
  });
});

describe('the column couplings, generated over the legal moves made with nothing but SET status', () => {
  it('each coupling refusal names the missing column, the row and its new status; from is left out', async () => {
    const refused: string[] = [];
    for (const { from, to } of legal) {
      const id = await transferIn(db.pool, from);
      await db.pool.query(`update marketplace.seller_transfers set next_retry_at = null where id = $1 and status <> 'failed'`, [id]);
      let err: pg.DatabaseError | null = null;
      await asRole(db.pool, null, async (c) => {
        try {
          await c.query('update marketplace.seller_transfers set status = $2 where id = $1', [id, to]);
        } catch (e) {
          err = e as pg.DatabaseError;
        }
      });
      if (!err) continue;
      const e = err as pg.DatabaseError;
      refused.push(`${from}>${to}`);
      expect(e.constraint).toMatch(
        /^seller_transfer_(paid_has_stripe_transfer|reversed_has_stripe_reversal|reversal_needs_transfer|failed_is_scheduled)$/,
      );
      expect(e.column).toBeTruthy();
      // The column it names is the one the row lacks.
      const { rows } = await db.pool.query(`select ${e.column} as v from marketplace.seller_transfers where id = $1`, [id]);
      expect(rows[0].v, `${from} -> ${to}: ${e.column}`).toBeNull();
      expectRefusal(e, { code: '23514', constraint: e.constraint!, column: e.column, fields: { seller_transfer_id: id, to } });
    }
    // The moves that carry a column of their own (the rest need none).
    expect(refused.sort()).toEqual(['failed>completed', 'pending>completed', 'pending>failed', 'reversal_pending>reversed']);
  });
});

describe('DELETE of a payout Stripe may have seen (seller_transfer_kept), for each status but the initial one', () => {
  it.each(STATUSES.filter((s) => !INITIAL.includes(s)))('%s: id and from as fields, no to', async (status) => {
    const id = await transferIn(db.pool, status);
    const err = await asRole(db.pool, null, (c) => pgError(() => c.query('delete from marketplace.seller_transfers where id = $1', [id])));
    expectRefusal(err, {
      code: '23514',
      constraint: 'seller_transfer_kept',
      column: undefined,
      fields: { seller_transfer_id: id, from: status },
    });
  });
});

describe('INSERT refusals: a non-initial status, a created_at that is not now', () => {
  const insert = (c: pg.PoolClient, id: string, extra: string, value: unknown) =>
    c.query(
      `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency, ${extra})
       values ($1, gen_random_uuid(), gen_random_uuid(), 'acct_fields', 1000, 'usd', $2)`,
      [id, value],
    );

  it.each(STATUSES.filter((s) => !INITIAL.includes(s)))('created as %s: id and to as fields, no from', async (status) => {
    const id = randomUUID();
    const err = await asRole(db.pool, 'marketplace_writer', (c) => pgError(() => insert(c, id, 'status', status)));
    expectRefusal(err, {
      code: '23514',
      constraint: 'seller_transfer_initial_status',
      column: 'status',
      fields: { seller_transfer_id: id, to: status },
    });
  });

  it('created two days ago', async () => {
    const id = randomUUID();
    const err = await asRole(db.pool, 'marketplace_writer', (c) =>
      pgError(() => insert(c, id, 'created_at', new Date(Date.now() - 2 * 86_400_000))),
    );
    expectRefusal(err, {
      code: '23514',
      constraint: 'seller_transfer_insert_time',
      column: 'created_at',
      fields: { seller_transfer_id: id, to: 'pending' },
    });
  });

  it('a refusal the guard does not raise is left as PostgreSQL says it (no fields line)', async () => {
    const fk = await pgError(() =>
      db.pool.query(
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency) values (gen_random_uuid(), gen_random_uuid(), 'acct_x', 1, 'xyz')`,
      ),
    );
    expect(fk.constraint).toBe('seller_transfer_currency_known');
    expect(fieldsOf(fk.detail)).toBeNull();
    expect(detailForPeople(fk.detail)).toBe(fk.detail);
  });
});
