// The enforcement bench table (figures 1 and 2): bench.transfers, a copy of
// marketplace.seller_transfers made with CREATE TABLE ... (LIKE ... INCLUDING ALL) plus the
// status foreign key, so it has the same columns, defaults, CHECK constraints and indexes
// (primary key, unique Stripe ids, the partial hot-path indexes). Only its user triggers vary:
//
//   plain   no user triggers (the baseline: FK and CHECKs still apply). The figures also run the
//           hand-written baseline on it: one statement that updates the row and inserts its
//           history row (see handWritten), which is what a writer would do without triggers.
//   real    exactly the triggers of marketplace.seller_transfers, copied with pg_get_triggerdef:
//           the AFTER ROW guard, the initial-status guard, the row-level history trigger on status
//           change and the statement-level history trigger on insert. The history functions
//           write into marketplace.seller_transfer_events (it has no foreign key to the table).
//
// One physical table for every variant, so the comparison is not skewed by two tables'
// different layouts; variants are swapped by dropping/creating triggers between runs.
import type pg from 'pg';
import { withoutIndexes } from './lib.ts';

//   no-write-once  the real triggers without seller_transfer_write_once: what the write-once rule
//           costs on its own is real vs this
//   checks  the guard as it was before migration 000010: the real triggers without the write-once
//           and column-coupling triggers, with the couplings as the four CHECK constraints they
//           were (what moving the couplings into a trigger costs is no-write-once vs this)
export type Variant = 'plain' | 'real' | 'no-write-once' | 'checks';
export const VARIANTS: Variant[] = ['plain', 'real', 'no-write-once', 'checks'];

/** The column couplings as CHECK constraints, as migrations 000001-000009 had them. */
const COUPLING_CHECKS: Record<string, string> = {
  seller_transfer_paid_has_stripe_transfer: `status not in ('completed', 'reversal_pending', 'reversed') or stripe_transfer_id is not null`,
  seller_transfer_reversed_has_stripe_reversal: `status <> 'reversed' or stripe_reversal_id is not null`,
  seller_transfer_reversal_needs_transfer: 'stripe_reversal_id is null or stripe_transfer_id is not null',
  seller_transfer_failed_is_scheduled: `status <> 'failed' or next_retry_at is not null`,
};
const LEFT_OUT: Record<Variant, string[]> = {
  plain: [], real: [], 'no-write-once': ['seller_transfer_write_once'], checks: ['seller_transfer_write_once', 'seller_transfer_column_couplings'],
};
export const COPY = 'bench.transfers';

/** Deterministic ids, so pgbench scripts can address row k without a lookup table. */
export const idOf = (k: string) => `md5('st' || ${k})::uuid`;

/**
 * The hand-written baseline: `update` (an UPDATE ... WHERE ... statement on COPY, without
 * RETURNING) rewritten into one statement that also inserts one history row per changed row,
 * with the same columns and values the real history trigger writes. `from` is the status the
 * rows leave (the UPDATE's WHERE pins it).
 */
export function handWritten(update: string, from: string): string {
  return `with u as (${update} returning id, status)
insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id)
select u.id, '${from}', u.status, clock_timestamp(), current_user, current_setting('application_name'),
       current_setting('marketplace.transition_reason', true), pg_current_xact_id() from u`;
}

interface TriggerDef { name: string; def: string }

async function realTriggers(db: pg.Pool | pg.PoolClient): Promise<TriggerDef[]> {
  const { rows } = await db.query<{ name: string; def: string }>(
    `select tgname as name, pg_get_triggerdef(oid) as def from pg_trigger
      where tgrelid = 'marketplace.seller_transfers'::regclass and not tgisinternal order by tgname`);
  return rows;
}

const onCopy = (def: string) => {
  const out = def.replace(' ON marketplace.seller_transfers ', ` ON ${COPY} `);
  if (out === def) throw new Error(`cannot retarget trigger definition: ${def}`);
  return out;
};

/** Creates bench.transfers with `rows` pending rows (k = 1..rows) and no triggers. */
export async function createCopy(pool: pg.Pool, rows: number): Promise<void> {
  await pool.query('create schema if not exists bench');
  await pool.query(`drop table if exists ${COPY}`);
  await pool.query(`create table ${COPY} (like marketplace.seller_transfers including all)`);
  await pool.query(`alter table ${COPY} add foreign key (status) references marketplace.seller_transfer_statuses (status)`);
  // The server may run autovacuum; the bench vacuums explicitly between runs instead.
  await pool.query(`alter table ${COPY} set (autovacuum_enabled = false)`);
  await extendCopy(pool, 1, rows);
}

/** Adds pending rows k = from..to (indexes rebuilt once, see withoutIndexes). */
export async function extendCopy(pool: pg.Pool, from: number, to: number): Promise<void> {
  await withoutIndexes(pool, COPY, async () => {
    await pool.query(
      `insert into ${COPY} (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status, created_at, updated_at)
       select ${idOf('k')}, md5('o' || k)::uuid, md5('s' || k)::uuid, 'acct_bench' || (k % 1000), 1000 + k % 5000, 'usd', 'pending', now(), now()
         from generate_series($1::int, $2::int) k`, [from, to]);
  });
  await pool.query(`vacuum (analyze) ${COPY}`);
}

export async function setVariant(pool: pg.Pool, variant: Variant): Promise<void> {
  const { rows: existing } = await pool.query<{ tgname: string }>(
    `select tgname from pg_trigger where tgrelid = '${COPY}'::regclass and not tgisinternal`);
  for (const t of existing) await pool.query(`drop trigger ${JSON.stringify(t.tgname)} on ${COPY}`);
  for (const name of Object.keys(COUPLING_CHECKS)) await pool.query(`alter table ${COPY} drop constraint if exists ${name}`);
  if (variant === 'plain') return;
  const real = await realTriggers(pool);
  for (const name of ['seller_transfer_status_transition', ...LEFT_OUT[variant]]) {
    if (!real.some((t) => t.name === name)) throw new Error(`expected trigger ${name} on marketplace.seller_transfers, found ${real.map((t) => t.name).join(', ')}`);
  }
  for (const t of real) if (!LEFT_OUT[variant].includes(t.name)) await pool.query(onCopy(t.def));
  if (variant === 'checks') {
    // NOT VALID: the rows are known to satisfy them; every write is checked all the same.
    for (const [name, expr] of Object.entries(COUPLING_CHECKS)) await pool.query(`alter table ${COPY} add constraint ${name} check (${expr}) not valid`);
  }
}

/** Proof that the "real" variant carries marketplace.seller_transfers' triggers verbatim. */
export async function describeRealVariant(pool: pg.Pool): Promise<string> {
  await setVariant(pool, 'real');
  const real = (await realTriggers(pool)).map((t) => onCopy(t.def));
  const { rows } = await pool.query<{ def: string }>(
    `select pg_get_triggerdef(oid) as def from pg_trigger where tgrelid = '${COPY}'::regclass and not tgisinternal order by tgname`);
  const same = rows.length === real.length && rows.every((r, i) => r.def === real[i]);
  if (!same) throw new Error('the copy table\'s "real" trigger set differs from marketplace.seller_transfers');
  const names = (await realTriggers(pool)).map((t) => t.name).join(', ');
  return `the "real" variant carries the ${rows.length} triggers of marketplace.seller_transfers verbatim (${names})`;
}

/**
 * Empties what the triggers wrote in earlier runs (figures 1-2 run no worker and read no
 * history), so every run starts with the same small history and jobs tables.
 */
export async function resetSideTables(pool: pg.Pool): Promise<void> {
  await pool.query('truncate marketplace.seller_transfer_events, graphile_worker._private_jobs');
}
