// The 6x6 matrix: every (from, to) pair generated from the expected matrix and tried for real.
import { describe, expect, it } from 'vitest';
import { expectedAllowed, INITIAL, LEGAL_MOVES, STATUSES, TERMINAL } from './support/expected-matrix.ts';
import { useTestDatabase } from './support/database.ts';
import { historyOf, insertTransfer, pgError, setStatus, statusOf, transferIn } from './support/transfers.ts';

const db = useTestDatabase();
const cases = STATUSES.flatMap((from) => STATUSES.map((to) => ({ from, to, allowed: expectedAllowed(from, to) })));

describe('every (from, to) pair against the real trigger', () => {
  it('covers all 36 pairs, 7 legal moves and 6 same-state', () => {
    expect(cases).toHaveLength(36);
    expect(cases.filter((c) => c.allowed && c.from !== c.to)).toHaveLength(7);
  });

  it.each(cases)('$from -> $to (allowed: $allowed)', async ({ from, to, allowed }) => {
    const id = await transferIn(db.pool, from);
    const before = await historyOf(db.pool, id);
    if (allowed) {
      await setStatus(db.pool, id, to);
      expect(await statusOf(db.pool, id)).toBe(to);
      const after = await historyOf(db.pool, id);
      // A status change writes exactly one history row; a same-state update writes none.
      expect(after.length - before.length).toBe(from === to ? 0 : 1);
      if (from !== to) expect(after.at(-1)).toMatchObject({ from_status: from, to_status: to });
    } else {
      const err = await pgError(() => setStatus(db.pool, id, to));
      expect(err.code).toBe('23514');
      expect(err.constraint).toBe('seller_transfer_status_transition');
      expect(err.message).toBe(`illegal seller transfer status transition: ${from} -> ${to}`);
      const targets = LEGAL_MOVES[from];
      expect(err.detail).toContain(targets.length ? targets.join(', ') : 'terminal');
      expect(await statusOf(db.pool, id)).toBe(from);
      expect(await historyOf(db.pool, id)).toEqual(before);
    }
  });
});

// The same pairs with nothing but `SET status`: where the new row would also break a column
// coupling (pending -> reversal_pending has no Stripe transfer id), the matrix still speaks.
describe('every illegal pair reports the matrix, even when the new row also breaks a coupling', () => {
  const illegal = cases.filter((c) => !c.allowed);
  const bare = (ids: string[], to: string) =>
    db.pool.query('update marketplace.seller_transfers set status = $2 where id = any($1)', [ids, to]);

  // 36 pairs = 6 same-state (allowed) + 7 legal moves + 23 illegal moves.
  it('has 23 illegal pairs', () => expect(illegal).toHaveLength(23));

  it.each(illegal)('$from -> $to, SET status only', async ({ from, to }) => {
    const id = await transferIn(db.pool, from);
    const before = await historyOf(db.pool, id);
    const err = await pgError(() => bare([id], to));
    expect(err.code).toBe('23514');
    expect(err.constraint).toBe('seller_transfer_status_transition');
    expect(err.message).toBe(`illegal seller transfer status transition: ${from} -> ${to}`);
    expect(err.detail).toContain(
      `allowed from ${from}: ${LEGAL_MOVES[from].length ? LEGAL_MOVES[from].join(', ') : 'nothing, it is terminal'}`,
    );
    expect(await statusOf(db.pool, id)).toBe(from);
    expect(await historyOf(db.pool, id)).toEqual(before);
  });

  it.each(illegal)('$from -> $to in a multi-row UPDATE beside a same-state row: the whole statement fails', async ({ from, to }) => {
    const moving = await transferIn(db.pool, from);
    const staying = await transferIn(db.pool, to);
    const err = await pgError(() => bare([staying, moving], to));
    expect(err.constraint).toBe('seller_transfer_status_transition');
    expect([await statusOf(db.pool, moving), await statusOf(db.pool, staying)]).toEqual([from, to]);
  });

  // A coupling keeps its own name only on a legal move.
  it.each([
    ['pending', 'completed', 'seller_transfer_paid_has_stripe_transfer'],
    ['failed', 'completed', 'seller_transfer_paid_has_stripe_transfer'],
    ['pending', 'failed', 'seller_transfer_failed_is_scheduled'],
    ['reversal_pending', 'reversed', 'seller_transfer_reversed_has_stripe_reversal'],
  ] as const)('legal %s -> %s without its column reports %s', async (from, to, constraint) => {
    const id = await transferIn(db.pool, from);
    if (from === 'failed') await db.pool.query('update marketplace.seller_transfers set next_retry_at = now() where id = $1', [id]);
    const err = await pgError(() =>
      db.pool.query(`update marketplace.seller_transfers set status = $2, next_retry_at = null where id = $1`, [id, to]),
    );
    expect(err.code).toBe('23514');
    expect(err.constraint).toBe(constraint);
    expect(err.message).toMatch(new RegExp(`^seller transfer ${id}: .*requires`));
    expect(await statusOf(db.pool, id)).toBe(from);
  });
});

describe('the transition table and the statuses table', () => {
  it('holds exactly the legal moves, no more, no less', async () => {
    const { rows } = await db.pool.query<{ from_status: string; to_status: string }>(
      'select from_status, to_status from marketplace.seller_transfer_transitions order by 1, 2',
    );
    const expected = STATUSES.flatMap((f) => LEGAL_MOVES[f].map((t) => ({ from_status: f, to_status: t }))).sort(
      (a, b) => a.from_status.localeCompare(b.from_status) || a.to_status.localeCompare(b.to_status),
    );
    expect(rows).toEqual(expected);
  });

  it('lists exactly the expected statuses, with the expected initial and terminal flags', async () => {
    const { rows } = await db.pool.query<{ status: string; is_initial: boolean; is_terminal: boolean }>(
      'select status, is_initial, is_terminal from marketplace.seller_transfer_statuses order by position',
    );
    expect(rows.map((r) => r.status)).toEqual([...STATUSES]);
    expect(rows.filter((r) => r.is_initial).map((r) => r.status)).toEqual([...INITIAL]);
    expect(rows.filter((r) => r.is_terminal).map((r) => r.status)).toEqual([...TERMINAL]);
  });

  it('gives terminal statuses no outgoing move, and refuses adding one', async () => {
    const { rows } = await db.pool.query(
      `select t.* from marketplace.seller_transfer_transitions t
         join marketplace.seller_transfer_statuses s on s.status = t.from_status where s.is_terminal`,
    );
    expect(rows).toEqual([]);
    const err = await pgError(() =>
      db.pool.query(`insert into marketplace.seller_transfer_transitions values ('reversed', 'pending', 'nope')`),
    );
    expect(err.message).toContain('terminal statuses cannot have outgoing transitions');
  });

  it('shows the 6x6 matrix view with rows = from and columns = to', async () => {
    const { rows, fields } = await db.pool.query('select * from marketplace.seller_transfer_transition_matrix');
    expect(fields.map((f) => f.name)).toEqual(['from_status', ...STATUSES]);
    expect(rows.map((r) => r.from_status)).toEqual([...STATUSES]);
    for (const row of rows) {
      for (const to of STATUSES) {
        const want = row.from_status === to ? 'same' : expectedAllowed(row.from_status, to) ? 'yes' : '-';
        expect(row[to], `${row.from_status} -> ${to}`).toBe(want);
      }
    }
  });

  it('enforces a changed table at once: the guard is recompiled in the same transaction', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      const id = await transferIn(client, 'completed');
      await client.query(`delete from marketplace.seller_transfer_transitions where from_status = 'completed'`);
      const err = await pgError(() => setStatus(client, id, 'reversal_pending'));
      expect(err.constraint).toBe('seller_transfer_status_transition');
      expect(err.detail).toContain('nothing, it is terminal');
    } finally {
      await client.query('rollback');
      client.release();
    }
    // Rolled back: the original rule is back.
    const id = await transferIn(db.pool, 'completed');
    await setStatus(db.pool, id, 'reversal_pending');
    expect(await statusOf(db.pool, id)).toBe('reversal_pending');
  });
});

describe('can_transition_transfer_status', () => {
  const can = async (from: string | null, to: string | null) =>
    (await db.pool.query<{ ok: boolean }>('select marketplace.can_transition_transfer_status($1, $2) as ok', [from, to])).rows[0]!.ok;

  it.each(cases)('agrees with the spec for $from -> $to', async ({ from, to, allowed }) => {
    expect(await can(from, to)).toBe(allowed);
  });

  it('is false for an unknown from (even same-state), an unknown to, and nulls', async () => {
    expect(await can('bogus', 'completed')).toBe(false);
    expect(await can('bogus', 'bogus')).toBe(false);
    expect(await can('pending', 'bogus')).toBe(false);
    expect(await can(null, 'pending')).toBe(false);
    expect(await can('pending', null)).toBe(false);
  });
});

describe('inserts', () => {
  it.each(STATUSES.filter((s) => !INITIAL.includes(s)))('refuses creating a transfer in %s', async (status) => {
    const err = await pgError(() =>
      db.pool.query(
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, status, stripe_transfer_id, stripe_reversal_id)
       values (gen_random_uuid(), gen_random_uuid(), 'acct_x', 100, 'usd', $1, 'tr_x' || md5(random()::text), 'trr_x' || md5(random()::text))`,
        [status],
      ),
    );
    expect(err.code).toBe('23514');
    expect(err.constraint).toBe('seller_transfer_initial_status');
  });

  it('creates in pending with one history row (from null)', async () => {
    const id = await insertTransfer(db.pool);
    expect(await statusOf(db.pool, id)).toBe('pending');
    expect(await historyOf(db.pool, id)).toMatchObject([{ from_status: null, to_status: 'pending' }]);
  });

  it('never stores an unknown status, on insert or update', async () => {
    const ins = await pgError(() =>
      db.pool.query(
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, status)
       values (gen_random_uuid(), gen_random_uuid(), 'acct_x', 100, 'usd', 'bogus')`,
      ),
    );
    expect(ins.code).toBe('23503');
    const id = await insertTransfer(db.pool);
    const upd = await pgError(() => setStatus(db.pool, id, 'bogus'));
    expect(upd.code).toBe('23503');
    const { rows } = await db.pool.query(
      `select 1 from marketplace.seller_transfers where status not in (select status from marketplace.seller_transfer_statuses)`,
    );
    expect(rows).toEqual([]);
  });

  it('checks money and identifier shapes', async () => {
    const bad = [
      ['amount_cents', 0],
      ['amount_cents', -5],
      ['currency', 'USD'],
      ['currency', 'usdx'],
      ['stripe_account_id', 'acc_1'],
    ] as const;
    for (const [col, value] of bad) {
      const err = await pgError(() =>
        db.pool.query(
          `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
         select gen_random_uuid(), gen_random_uuid(), coalesce($1, 'acct_x'), coalesce($2, 100), coalesce($3, 'usd')`,
          [col === 'stripe_account_id' ? value : null, col === 'amount_cents' ? value : null, col === 'currency' ? value : null],
        ),
      );
      expect(err.code, `${col}=${value}`).toBe('23514');
    }
    const id = await insertTransfer(db.pool, 500);
    const over = await pgError(() =>
      db.pool.query('update marketplace.seller_transfers set reversal_amount_cents = 501 where id = $1', [id]),
    );
    expect(over.constraint).toBe('seller_transfer_reversal_amount');
  });
});
