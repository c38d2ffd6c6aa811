// The bulk figure's table: bench.transfers, a copy of marketplace.seller_transfers made with
// CREATE TABLE ... (LIKE ... INCLUDING ALL) plus its foreign keys, so it has the same
// columns, defaults, CHECK constraints, foreign keys and indexes. Only its user triggers vary:
//
//   plain   no user triggers (FK and CHECKs still apply); the hand-written writer runs on it too:
//           one statement that updates the rows and inserts their history rows (handWritten)
//   real    exactly the triggers of marketplace.seller_transfers, copied with pg_get_triggerdef
//
// One physical table for every variant, so two tables' layouts do not skew the comparison.
import type pg from 'pg';
import { copySellerTransferForeignKeys, withoutIndexes } from './lib.ts';

export type Variant = 'plain' | 'real';
export const COPY = 'bench.transfers';

/**
 * The hand-written baseline: `update` (an UPDATE ... WHERE ... on COPY, without RETURNING)
 * rewritten into one statement that also inserts one history row per changed row, with the
 * columns the real history trigger writes. `from` is the status the rows leave.
 */
export function handWritten(update: string, from: string): string {
  return `with u as (${update} returning id, status)
insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id)
select u.id, '${from}', u.status, clock_timestamp(), current_user, current_setting('application_name'),
       current_setting('marketplace.transition_reason', true), pg_current_xact_id() from u`;
}

async function realTriggers(db: pg.Pool): Promise<{ name: string; def: string }[]> {
  const { rows } = await db.query<{ name: string; def: string }>(
    `select tgname as name, pg_get_triggerdef(oid) as def from pg_trigger
      where tgrelid = 'marketplace.seller_transfers'::regclass and not tgisinternal order by tgname`,
  );
  return rows;
}

const onCopy = (def: string) => {
  const out = def.replace(' ON marketplace.seller_transfers ', ` ON ${COPY} `);
  if (out === def) throw new Error(`cannot retarget trigger definition: ${def}`);
  return out;
};

/** Creates bench.transfers with `rows` pending rows and no triggers (indexes built once, after the load). */
export async function createCopy(pool: pg.Pool, rows: number): Promise<void> {
  await pool.query('create schema if not exists bench');
  await pool.query(`drop table if exists ${COPY}`);
  await pool.query(`create table ${COPY} (like marketplace.seller_transfers including all)`);
  await pool.query(copySellerTransferForeignKeys(COPY));
  await pool.query(`alter table ${COPY} set (autovacuum_enabled = false)`);
  await withoutIndexes(pool, COPY, async () => {
    await pool.query(
      `insert into ${COPY} (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status, created_at, updated_at)
       select md5('st' || k)::uuid, md5('o' || k)::uuid, md5('s' || k)::uuid, 'acct_bench' || (k % 1000), 1000 + k % 5000, 'usd', 'pending', now(), now()
         from generate_series(1, $1::int) k`,
      [rows],
    );
  });
  await pool.query(`vacuum (analyze) ${COPY}`);
}

export async function setVariant(pool: pg.Pool, variant: Variant): Promise<void> {
  const { rows: existing } = await pool.query<{ tgname: string }>(
    `select tgname from pg_trigger where tgrelid = '${COPY}'::regclass and not tgisinternal`,
  );
  for (const t of existing) await pool.query(`drop trigger ${JSON.stringify(t.tgname)} on ${COPY}`);
  if (variant === 'plain') return;
  const real = await realTriggers(pool);
  if (!real.some((t) => t.name === 'seller_transfer_status_transition'))
    throw new Error(`expected the transition guard on marketplace.seller_transfers, found ${real.map((t) => t.name).join(', ')}`);
  for (const t of real) await pool.query(onCopy(t.def));
}

/** Empties what the triggers wrote in earlier runs, so every run starts with the same small history and jobs tables. */
export async function resetSideTables(pool: pg.Pool): Promise<void> {
  await pool.query('truncate marketplace.seller_transfer_events, graphile_worker._private_jobs');
}
