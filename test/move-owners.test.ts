// Who may make each move, generated: every role x the 36 (from, to) pairs x single and multi-row
// plain UPDATEs. Exactly the owned legal moves (and same-state updates) pass; an illegal move is
// refused by the matrix whatever the role, a legal move by a role that does not own it by the
// owner check; roles without UPDATE are refused by privilege. A refused statement leaves every
// row byte for byte as it was. Expected results come from test/support/expected-matrix.ts.
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectedMove, MOVE_OWNERS, pathTo, STATUSES, type Authority, type Status } from './support/expected-matrix.ts';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, pgError, setStatus, transferIn } from './support/transfers.ts';

const db = useTestDatabase();

const ROLES = ['marketplace_writer', 'marketplace_worker', 'marketplace_operator', 'marketplace_reader', 'owner'] as const;
type Role = (typeof ROLES)[number];
const AUTHORITY: Record<Role, Authority | 'owner' | null> = {
  marketplace_writer: 'service',
  marketplace_worker: 'worker',
  owner: 'owner',
  marketplace_operator: null,
  marketplace_reader: null, // no UPDATE of their own: operators act through the functions
};

/** A row in `status` carrying both Stripe ids and a retry time, so no column coupling can refuse a move. */
async function fixture(status: Status): Promise<string> {
  const id = await insertTransfer(db.pool);
  for (const step of pathTo(status)) await setStatus(db.pool, id, step);
  await db.pool.query(
    `update marketplace.seller_transfers
        set stripe_transfer_id = coalesce(stripe_transfer_id, 'tr_fx' || left(md5(id::text), 12)),
            stripe_reversal_id = coalesce(stripe_reversal_id, 'trr_fx' || left(md5(id::text), 12)),
            next_retry_at = coalesce(next_retry_at, now() + interval '1 hour')
      where id = $1`,
    [id],
  );
  return id;
}

const rows = {} as Record<Status, [string, string]>;
beforeAll(async () => {
  for (const s of STATUSES) rows[s] = [await fixture(s), await fixture(s)];
});

async function snapshot(c: pg.PoolClient, ids: string[]): Promise<string> {
  const { rows: r } = await c.query<{ row: string }>(
    'select to_jsonb(t)::text as row from marketplace.seller_transfers t where id = any($1) order by id',
    [ids],
  );
  return JSON.stringify(r);
}

/** Runs the UPDATE as `role` in a transaction that is always rolled back; returns the error, if any, and whether the rows stayed as they were. */
async function attempt(
  role: Role,
  ids: string[],
  to: string,
): Promise<{ error: pg.DatabaseError | null; unchanged: boolean; count: number }> {
  const c = await db.pool.connect();
  try {
    await c.query('begin');
    const before = await snapshot(c, ids);
    if (role !== 'owner') await c.query(`set local role ${role}`);
    await c.query('savepoint attempt');
    let error: pg.DatabaseError | null = null;
    let count = 0;
    try {
      count = (await c.query('update marketplace.seller_transfers set status = $2 where id = any($1)', [ids, to])).rowCount ?? 0;
    } catch (e) {
      error = e as pg.DatabaseError;
      await c.query('rollback to savepoint attempt');
    }
    await c.query('reset role');
    return { error, unchanged: (await snapshot(c, ids)) === before, count };
  } finally {
    await c.query('rollback');
    c.release();
  }
}

const cases = ROLES.flatMap((role) =>
  STATUSES.flatMap((from) => STATUSES.flatMap((to) => (['single', 'multi'] as const).map((rowsIn) => ({ role, from, to, rowsIn })))),
);

describe('every role x 36 pairs x single and multi-row', () => {
  it('generates 5 roles x 36 pairs x 2 shapes', () => expect(cases).toHaveLength(5 * 36 * 2));

  it.each(cases)('$role: $from -> $to ($rowsIn)', async ({ role, from, to, rowsIn }) => {
    const ids = rowsIn === 'single' ? [rows[from][0]] : rows[from];
    const { error, unchanged, count } = await attempt(role, ids, to);
    const authority = AUTHORITY[role];
    if (authority === null) {
      expect(error?.code).toBe('42501');
      expect(error?.constraint).toBeUndefined();
      expect(unchanged).toBe(true);
      return;
    }
    const expected = expectedMove(authority, from, to);
    if (expected === 'accepted') {
      expect(error, error?.message).toBeNull();
      expect(count).toBe(ids.length);
      return;
    }
    expect(error?.constraint).toBe(expected);
    expect(unchanged).toBe(true);
    if (expected === 'seller_transfer_status_transition') {
      expect(error!.code).toBe('23514');
      expect(error!.message).toBe(`illegal seller transfer status transition: ${from} -> ${to}`);
    } else {
      expect(error!.code).toBe('42501');
      expect(error!.message).toMatch(
        new RegExp(
          `^seller transfer move ${from} -> ${to} belongs to [a-z, ]+; ${role === 'owner' ? 'postgres' : role} speaks as ${authority}$`,
        ),
      );
      expect(error!.hint).toContain('seller_transfer_transition_owners');
    }
  });
});

describe("a multi-row UPDATE fails as a whole when one row is not the role's to move", () => {
  const mixed = `update marketplace.seller_transfers set status = case when status = 'completed' then 'reversal_pending' else 'failed' end where id = any($1)`;

  it('a service: completed -> reversal_pending is its own, pending -> failed is not; nothing changes', async () => {
    const ids = [rows.completed[0], rows.pending[0]];
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      const before = await snapshot(c, ids);
      await c.query('savepoint attempt');
      await c.query('set local role marketplace_writer');
      const err = await pgError(() => c.query(mixed, [ids]));
      expect(err.constraint).toBe('seller_transfer_move_owner');
      await c.query('rollback to savepoint attempt');
      expect(await snapshot(c, ids)).toBe(before);
    } finally {
      await c.query('rollback');
      c.release();
    }
  });

  it('the worker owns both moves: the same statement passes', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      await c.query('set local role marketplace_worker');
      expect((await c.query(mixed, [[rows.completed[0], rows.pending[0]]])).rowCount).toBe(2);
    } finally {
      await c.query('rollback');
      c.release();
    }
  });
});

describe('the owners are data a DBA reads', () => {
  it('seller_transfer_transition_owners lists every legal move, and who makes it', async () => {
    const { rows: r } = await db.pool.query<{ from_status: string | null; to_status: string; made_by: string }>(
      'select from_status, to_status, made_by from marketplace.seller_transfer_transition_owners order by from_status nulls first, to_status',
    );
    expect(r[0]).toMatchObject({ from_status: null, to_status: 'pending', made_by: 'service, owner' });
    expect(r).toHaveLength(8);
    for (const row of r.slice(1)) {
      const want = [...MOVE_OWNERS[`${row.from_status}>${row.to_status}`]!].sort();
      expect(
        row.made_by
          .split(', ')
          .filter((a) => a !== 'owner')
          .sort(),
        `${row.from_status} -> ${row.to_status}`,
      ).toEqual(want);
      expect(row.made_by.endsWith('owner')).toBe(true);
    }
  });

  it('taking a move from an authority recompiles the guard at once', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      await c.query(
        `delete from marketplace.seller_transfer_move_owners where from_status = 'completed' and to_status = 'reversal_pending' and authority = 'service'`,
      );
      expect((await c.query('select marketplace.seller_transfer_guard_in_sync() as ok')).rows[0].ok).toBe(true);
      const id = await transferIn(c, 'completed');
      await c.query('set local role marketplace_writer');
      const err = await pgError(() => c.query(`update marketplace.seller_transfers set status = 'reversal_pending' where id = $1`, [id]));
      expect(err.constraint).toBe('seller_transfer_move_owner');
    } finally {
      await c.query('rollback');
      c.release();
    }
  });
});
