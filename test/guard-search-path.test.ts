// The guard function is SECURITY DEFINER and pins no search_path (a pinned one costs every
// write a GUC save and restore). That is safe only if nothing in its body resolves through the
// caller's search_path. Here a schema of tripwires shadows every operator, function and type the
// body uses (each raises when called), a writer puts it first on its path, and every branch of the
// guard runs: each statement must end as the guard decides (done, or refused with its own
// SQLSTATE and constraint), never in a tripwire. The static check the doctor uses must agree.
import type pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, transferIn } from './support/transfers.ts';

const db = useTestDatabase();
const TRIPPED = 'resolved through the caller search_path';

const TYPES = ['text', 'name', 'uuid', 'int4', 'int8', 'bool', 'timestamptz'];
const SCALARS = ['text', 'name', 'uuid', 'integer', 'bigint', 'boolean', 'timestamptz'];

/** The tripwire schema: operators = <> < > <= >= || on every column type, the functions and type names the body uses. */
const HOSTILE: string[] = [
  'create schema hostile',
  'grant usage on schema hostile to public',
  `create function hostile.trip() returns boolean language plpgsql as $$ begin raise exception '${TRIPPED}'; end $$`,
  ...SCALARS.flatMap((t) =>
    ['=', '<>', '<', '>', '<=', '>='].map((op, i) => [
      `create function hostile.op_${i}_${t}(a ${t}, b ${t}) returns boolean language sql as 'select hostile.trip()'`,
      `create operator hostile.${op} (leftarg = ${t}, rightarg = ${t}, function = hostile.op_${i}_${t})`,
    ]),
  ).flat(),
  `create function hostile.cat(a text, b text) returns text language sql as 'select case when hostile.trip() then a end'`,
  'create operator hostile.|| (leftarg = text, rightarg = text, function = hostile.cat)',
  `create function hostile.current_setting(text) returns text language sql as 'select case when hostile.trip() then $1 end'`,
  `create function hostile.current_setting(text, boolean) returns text language sql as 'select case when hostile.trip() then $1 end'`,
  `create function hostile.clock_timestamp() returns timestamptz language sql as 'select case when hostile.trip() then now() end'`,
  `create function hostile.pg_current_xact_id() returns xid8 language sql as 'select case when hostile.trip() then null::xid8 end'`,
  `create function hostile.length(text) returns integer language sql as 'select case when hostile.trip() then 0 end'`,
  `create function hostile.pg_has_role(name, text, text) returns boolean language sql as 'select hostile.trip()'`,
  `create function hostile.pg_has_role(name, name, text) returns boolean language sql as 'select hostile.trip()'`,
  `create function hostile.format(text, variadic text[]) returns text language sql as 'select case when hostile.trip() then $1 end'`,
  `create function hostile.record_eq(record, record) returns boolean language plpgsql as 'begin return hostile.trip(); end'`,
  ...TYPES.map((t) => `create domain hostile.${t} as pg_catalog.int4 check (hostile.trip())`),
];

/** Runs `sql` as `role` (null: the owner) with the tripwires first on the path, in a transaction rolled back. */
async function asHostile(role: string | null, sql: string, params: unknown[]): Promise<pg.DatabaseError | null> {
  const c = await db.pool.connect();
  try {
    await c.query('begin');
    if (role) await c.query(`set local role ${role}`);
    await c.query('set local search_path = hostile, pg_catalog');
    try {
      await c.query(sql, params);
      return null;
    } catch (e) {
      return e as pg.DatabaseError;
    }
  } finally {
    await c.query('rollback');
    c.release();
  }
}

// The statements name only qualified operators themselves, so a tripwire can only fire inside the guard.
const MOVE = `update marketplace.seller_transfers set status = $2::pg_catalog.text where id OPERATOR(pg_catalog.=) $1::pg_catalog.uuid`;
const REVERSAL = `update marketplace.seller_transfers
                     set status = $2::pg_catalog.text, reversal_amount_cents = amount_cents
                   where id OPERATOR(pg_catalog.=) $1::pg_catalog.uuid`;
const SET_COLUMN = (col: string, value: string) =>
  `update marketplace.seller_transfers set ${col} = ${value} where id OPERATOR(pg_catalog.=) $1::pg_catalog.uuid`;

describe('the guard pins no search_path and resolves nothing through it', () => {
  const rows: Record<string, string> = {};
  beforeAll(async () => {
    rows.pending = await insertTransfer(db.pool);
    rows.completed = await transferIn(db.pool, 'completed');
    rows.failed = await transferIn(db.pool, 'failed');
    const doubt = await transferIn(db.pool, 'failed');
    await db.pool.query('update marketplace.seller_transfers set stripe_request_in_doubt = true where id = $1', [doubt]);
    rows.doubt = doubt;
    for (const sql of HOSTILE) await db.pool.query(sql);
  });

  it('the tripwires are live: an unqualified operator on this path trips', async () => {
    const e = await asHostile('marketplace_writer', `select 'a'::pg_catalog.text = 'b'::pg_catalog.text`, []);
    expect(e?.message).toContain(TRIPPED);
  });

  it("the guard's functions pin no search_path, and the static check finds nothing in their bodies", async () => {
    const { rows } = await db.pool.query<{ fn: string; config: string[] | null; free: string | null; definer: boolean }>(
      `select p.oid::regprocedure::text as fn, p.proconfig as config, marketplace.seller_transfer_body_is_path_free(p.prosrc) as free,
              p.prosecdef as definer
         from pg_trigger t join pg_proc p on p.oid = t.tgfoid
        where t.tgrelid = 'marketplace.seller_transfers'::regclass
          and t.tgname in (select g.tgname from marketplace.seller_transfer_guard_triggers() g)
        order by 1`,
    );
    expect(rows).toEqual([
      { fn: 'marketplace.check_seller_transfer_facts()', config: null, free: null, definer: false },
      { fn: 'marketplace.check_seller_transfer_insert()', config: null, free: null, definer: false },
      { fn: 'marketplace.check_seller_transfer_update()', config: null, free: null, definer: false },
      { fn: 'marketplace.record_seller_transfer_insert()', config: null, free: null, definer: true },
      { fn: 'marketplace.record_seller_transfer_move()', config: null, free: null, definer: true },
    ]);
  });

  const cases: Array<{
    name: string;
    role: string | null;
    sql: string;
    row: string;
    to?: string;
    code: string | null;
    constraint?: string;
  }> = [
    {
      name: 'a service requests a reversal',
      role: 'marketplace_writer',
      sql: REVERSAL,
      row: 'completed',
      to: 'reversal_pending',
      code: null,
    },
    {
      name: 'a service makes an illegal move',
      role: 'marketplace_writer',
      sql: MOVE,
      row: 'completed',
      to: 'pending',
      code: '23514',
      constraint: 'seller_transfer_status_transition',
    },
    {
      name: "a service makes the worker's move",
      role: 'marketplace_writer',
      sql: MOVE,
      row: 'failed',
      to: 'completed',
      code: '42501',
      constraint: 'seller_transfer_move_owner',
    },
    {
      name: 'a service changes a money fact',
      role: 'marketplace_writer',
      sql: SET_COLUMN('amount_cents', 'amount_cents + 1'),
      row: 'pending',
      code: '23514',
      constraint: 'seller_transfer_write_once',
    },
    {
      name: 'the owner clears the in-doubt flag',
      role: null,
      sql: SET_COLUMN('stripe_request_in_doubt', 'false'),
      row: 'doubt',
      code: '23514',
      constraint: 'seller_transfer_in_doubt',
    },
    {
      name: 'the owner breaks a coupling',
      role: null,
      sql: SET_COLUMN('stripe_transfer_id', 'null'),
      row: 'completed',
      code: '23514',
      constraint: 'seller_transfer_write_once',
    },
    {
      name: 'the owner reschedules a failed payout (no move: the one-test path)',
      role: null,
      sql: SET_COLUMN('next_retry_at', "next_retry_at OPERATOR(pg_catalog.+) '1 hour'::pg_catalog.interval"),
      row: 'failed',
      code: null,
    },
    {
      name: 'the owner unschedules a failed payout (no move, a coupling broken)',
      role: null,
      sql: SET_COLUMN('next_retry_at', 'null'),
      row: 'failed',
      code: '23514',
      constraint: 'seller_transfer_failed_is_scheduled',
    },
    { name: 'the owner makes a legal move', role: null, sql: MOVE, row: 'failed', to: 'permanently_failed', code: null },
    {
      name: 'the owner moves failed -> completed without its transfer id',
      role: null,
      sql: MOVE,
      row: 'pending',
      to: 'completed',
      code: '23514',
      constraint: 'seller_transfer_paid_has_stripe_transfer',
    },
  ];
  it.each(cases)('$name: the guard decides, no tripwire fires', async (c) => {
    const params = c.to ? [rows[c.row], c.to] : [rows[c.row]];
    const e = await asHostile(c.role, c.sql, params);
    expect(e?.message ?? '', e?.message).not.toContain(TRIPPED);
    expect(e?.code ?? null, e?.message).toBe(c.code);
    if (c.constraint) expect(e?.constraint).toBe(c.constraint);
  });
});
