// adopt verify: every row under the legacy name against marketplace.seller_transfers and its
// history; adopt undo: the table back as it was before run (its name, columns, triggers, foreign
// keys), holding the rows as they are now, without the guard; the history kept aside.
import type pg from 'pg';
import { inTransaction } from '../../db/connection.ts';
import { namedQueries } from '../../db/named-queries.ts';
import { CliError } from '../context.ts';
import { fill, ident, literal, repointedTo, resolveMap, splitName, templateVars, type AdoptionMap } from './map.ts';
import { adoptedWriteFunction, adoptionOf, lockStep, type RunOptions } from './run.ts';

const sql = namedQueries('src/cli/adopt/queries.sql');

export interface Difference {
  id: string;
  problem: string;
}

/** The map an adoption recorded, over the legacy columns (from the kept table once switched). */
export async function recordedMap(db: pg.ClientBase, legacy: string): Promise<{ map: AdoptionMap; step: string } | null> {
  const state = await adoptionOf(db, legacy);
  if (!state) return null;
  const given = new Map(state.map);
  const switched = state.step === 'switched' || state.step === 'done';
  return { map: await resolveMap(db, legacy, given, switched ? state.kept_as : legacy), step: state.step };
}

export async function verifyAdoption(db: pg.ClientBase, map: AdoptionMap): Promise<Difference[]> {
  return inTransaction(
    db,
    async () => {
      const rows = (await db.query<Difference>(fill(sql('verify_template'), templateVars(map)))).rows;
      const audit = (await db.query<Difference>(sql('audit_problems'))).rows.map((a) => ({ id: a.id, problem: `audit: ${a.problem}` }));
      return [...rows, ...audit];
    },
    { readOnly: true },
  );
}

/** Rows per transaction when undo copies back and sets aside: small, as run's sync batches. */
const UNDO_BATCH = 5000;

/**
 * adopt undo after the switch, in steps so that no legacy writer waits longer than the lock
 * timeout (docs/adopting.md#undo):
 *   capture  a trigger on marketplace.seller_transfers notes every row written from now on (a moment's lock);
 *   copy     the rows as they are now copied back into the kept table in keyset batches, no lock a writer waits for;
 *   sync     the noted rows copied again, until fewer than switchBelow are left;
 *   switch   one short transaction under lock_timeout with retries: the view locked, the last noted rows copied,
 *            the capture dropped, the foreign keys re-pointed (NOT VALID), the view dropped, the table renamed back;
 *   after    the foreign keys validated; the rows removed from marketplace.seller_transfers in batches, their
 *            history set aside (finishUndo: undo run again after a kill finishes it).
 * Killed before the switch, undo started again begins the copy again (each batch is an upsert).
 */
export async function undoAdoption(db: pg.ClientBase, map: AdoptionMap, opts: RunOptions): Promise<string> {
  const legacy = map.legacy;
  const kept = map.kept;
  const [, table] = splitName(legacy);
  const cols = map.placed.map((p) => ident(p.legacy.name));
  const copyVars = (where: string) => ({
    kept,
    legacy,
    where,
    legacy_cols: cols.join(', '),
    k_cols: cols.map((c) => `k.${c}`).join(', '),
    excluded_cols: cols.map((c) => `excluded.${c}`).join(', '),
  });
  const refuse = async (): Promise<void> => {
    const live = (await db.query<{ count: number }>(sql('live_workers'))).rows[0]!.count;
    if (live)
      throw new CliError(
        `cannot undo: ${live} seller-transfers worker(s) running; once a row is given back, a worker would pay it beside the legacy worker. ` +
          'Stop them (a stopped worker is no longer counted after two minutes without a heartbeat), then run undo again',
        3,
      );
    const refused = (await db.query<{ id: string }>(sql('undo_refusals'))).rows.map((r) => r.id);
    if (refused.length)
      throw new CliError(
        `cannot undo: ${refused.join(', ')} ${refused.length === 1 ? 'is' : 'are'} in flight at Stripe (a request in doubt, or a worker acting on it); ` +
          'stop the worker and let it settle, then run undo again',
        3,
      );
  };
  await refuse();
  let captureLocked = 0;
  await lockStep(db, opts, 'undo capture', async () => {
    captureLocked = performance.now();
    const stmt = (await db.query<{ statement: string }>(sql('undo_create_capture'), [legacy])).rows[0]?.statement;
    if (stmt) await db.query(stmt);
  });
  opts.progress(`undo capture: every write on marketplace.seller_transfers from now on is noted (lock held ${heldMs(captureLocked)})`);

  const copyBack = (where: string, params: unknown[]) =>
    inTransaction(db, async () => {
      await db.query(sql('replica_role'));
      return (
        await db.query<{ read: number; last_id: string | null; written: number }>(
          fill(sql('undo_copy_back_template'), copyVars(where)),
          params,
        )
      ).rows[0]!;
    });
  const total = Number((await db.query<{ count: string }>(fill(sql('count_rows_template'), { legacy }))).rows[0]!.count);
  let cursor = '00000000-0000-0000-0000-000000000000';
  let done = 0;
  for (let r = await copyBack('v.id > $1::uuid order by v.id limit $2', [cursor, UNDO_BATCH]); r.last_id;) {
    done += r.read;
    cursor = r.last_id;
    opts.progress(`undo copy: ${done} of ${Math.max(done, total)} rows copied back`);
    r = await copyBack('v.id > $1::uuid order by v.id limit $2', [cursor, UNDO_BATCH]);
  }
  await inTransaction(db, async () => {
    await db.query(sql('replica_role'));
    await db.query(fill(sql('undo_delete_gone_template'), { kept, legacy }), [null]);
  });
  const syncNoted = async (limit: number): Promise<number> => {
    const ids = (await db.query<{ id: string }>(sql('take_changes'), [legacy, limit])).rows.map((r) => r.id);
    if (!ids.length) return 0;
    await db.query(sql('replica_role'));
    await db.query(fill(sql('undo_copy_back_template'), copyVars('v.id = any($1::uuid[])')), [ids]);
    await db.query(fill(sql('undo_delete_gone_template'), { kept, legacy }), [ids]);
    return ids.length;
  };
  let synced = 0;
  for (let left = await changesLeft(db, legacy); left >= opts.switchBelow; left = await changesLeft(db, legacy)) {
    synced += await inTransaction(db, () => syncNoted(UNDO_BATCH));
    opts.progress(`undo sync: ${synced} writes made during the copy back copied again`);
  }

  let switchLocked = 0;
  await lockStep(db, opts, 'undo switch', async () => {
    opts.progress(`undo switch: locking ${legacy} (ACCESS EXCLUSIVE, lock_timeout ${opts.lockTimeoutMs} ms)`);
    await db.query((await db.query<{ statement: string }>(sql('lock_exclusive'), [legacy])).rows[0]!.statement);
    switchLocked = performance.now();
    await refuse();
    let last = 0;
    for (let n = await syncNoted(opts.batchRows); n > 0; n = await syncNoted(opts.batchRows)) last += n;
    await db.query(sql('undo_drop_capture'));
    await db.query(sql('undo_forget_changes'), [legacy]);
    const fks = (
      await db.query<{ name: string; table_name: string; definition: string }>(sql('foreign_keys_to'), ['marketplace.seller_transfers'])
    ).rows;
    for (const fk of fks)
      await db.query(
        fill(sql('repoint_fk_template'), { table: fk.table_name, name: ident(fk.name), definition: repointedTo(fk.definition, kept) }),
      );
    await db.query(fill(sql('undo_drop_view_template'), { legacy }));
    await db.query(fill(sql('undo_drop_function_template'), { function: adoptedWriteFunction(map) }));
    await db.query(fill(sql('rename_template'), { from: kept, to: ident(table) }));
    await db.query(sql('set_step'), [legacy, 'undone']);
    opts.progress(`undo switch: ${last} last writes copied back; ${legacy} is a table again`);
  });
  opts.progress(`undo switch: ACCESS EXCLUSIVE on ${legacy} held ${heldMs(switchLocked)}, until the commit`);
  const fks = (await db.query<{ name: string; table_name: string; validated: boolean }>(sql('foreign_keys_to'), [legacy])).rows;
  for (const fk of fks.filter((f) => !f.validated))
    await lockStep(db, opts, `validate ${fk.table_name}.${fk.name}`, async () => {
      await db.query(fill(sql('validate_fk_template'), { table: fk.table_name, name: ident(fk.name) }));
    });
  await setAside(db, map, opts);
  return `${legacy} is a table again, holding the rows as they are now, without the guard; their history is kept in marketplace.seller_transfer_events_set_aside`;
}

/**
 * The rows of an undone or abandoned adoption leave marketplace.seller_transfers in batches, their
 * history kept aside: after undo's switch, or by undo run again when a kill stopped it half-way.
 */
export async function setAside(db: pg.ClientBase, map: AdoptionMap, opts: Pick<RunOptions, 'progress'>): Promise<number> {
  let cursor = '00000000-0000-0000-0000-000000000000';
  let removed = 0;
  for (;;) {
    const r = await inTransaction(db, async () => {
      await db.query(sql('replica_role'));
      return (
        await db.query<{ removed: number; last_id: string | null }>(
          fill(sql('undo_set_aside_batch_template'), { legacy: map.legacy, legacy_literal: literal(map.legacy) }),
          [cursor, UNDO_BATCH],
        )
      ).rows[0]!;
    });
    if (!r.last_id) break;
    cursor = r.last_id;
    removed += r.removed;
    opts.progress(`undo set aside: ${removed} rows left marketplace.seller_transfers, their history kept aside`);
  }
  return removed;
}

const heldMs = (since: number) => `${Math.round(performance.now() - since)} ms`;

async function changesLeft(db: pg.ClientBase, legacy: string): Promise<number> {
  return Number((await db.query<{ count: string }>(sql('changes_left'), [legacy])).rows[0]!.count);
}

/**
 * undo before the switch: the legacy table was never touched but for the capture trigger, so the
 * adoption is abandoned: the trigger dropped and the noted ids forgotten in one short transaction
 * under lock_timeout with retries, then the copies removed in batches, their history kept aside;
 * refused for a row the project's worker already acted on.
 */
export async function abandonAdoption(db: pg.ClientBase, map: AdoptionMap, opts: RunOptions): Promise<string> {
  const legacy = map.legacy;
  const refusals = async () => {
    const acted = (
      await db.query<{ id: string }>(fill(sql('abandon_refusals_template'), { legacy, legacy_literal: literal(legacy) }))
    ).rows.map((r) => r.id);
    if (acted.length)
      throw new CliError(
        `cannot abandon the adoption: the project's worker already acted on ${acted.join(', ')} at Stripe; ` +
          'run the adoption to its end (adopt run), then adopt undo if you must',
        3,
      );
  };
  await refusals();
  await lockStep(db, opts, 'undo', async () => {
    await db.query(fill(sql('drop_capture_template'), { legacy }));
    await refusals();
    await db.query(sql('undo_forget_changes'), [legacy]);
    await db.query(sql('set_step'), [legacy, 'undone']);
  });
  await setAside(db, map, opts);
  return `the adoption of ${legacy} is abandoned before its switch: the table is as it was (its capture trigger dropped), marketplace.seller_transfers holds none of its rows, their history is kept in marketplace.seller_transfer_events_set_aside`;
}
