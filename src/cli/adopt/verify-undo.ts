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

export async function undoAdoption(db: pg.ClientBase, map: AdoptionMap, opts: RunOptions): Promise<string> {
  const legacy = map.legacy;
  const kept = map.kept;
  const [, table] = splitName(legacy);
  const legacyCols = map.placed.map((p) => ident(p.legacy.name)).join(', ');
  await lockStep(db, opts, 'undo', async () => {
    await db.query((await db.query<{ statement: string }>(sql('lock_exclusive'), [legacy])).rows[0]!.statement);
    await db.query((await db.query<{ statement: string }>(sql('lock_exclusive'), [kept])).rows[0]!.statement);
    const refused = (await db.query<{ id: string }>(sql('undo_refusals'))).rows.map((r) => r.id);
    if (refused.length)
      throw new CliError(
        `cannot undo: ${refused.join(', ')} ${refused.length === 1 ? 'is' : 'are'} in flight at Stripe (a request in doubt, or a worker acting on it); ` +
          'stop the worker and let it settle, then run undo again',
        3,
      );
    const fks = (
      await db.query<{ name: string; table_name: string; definition: string }>(sql('foreign_keys_to'), ['marketplace.seller_transfers'])
    ).rows;
    await db.query(sql('replica_role'));
    await db.query(
      fill(sql('undo_copy_back_template'), {
        kept,
        legacy,
        legacy_cols: legacyCols,
        excluded_cols: map.placed.map((p) => `excluded.${ident(p.legacy.name)}`).join(', '),
      }),
    );
    await db.query(fill(sql('undo_delete_gone_template'), { kept, legacy }));
    for (const fk of fks)
      await db.query(
        fill(sql('repoint_fk_template'), { table: fk.table_name, name: ident(fk.name), definition: repointedTo(fk.definition, kept) }),
      );
    await db.query(sql('undo_set_history_aside'), [legacy]);
    await db.query(sql('undo_remove_rows'));
    await db.query(fill(sql('undo_drop_view_template'), { legacy }));
    await db.query(fill(sql('undo_drop_function_template'), { function: adoptedWriteFunction(map) }));
    await db.query(fill(sql('rename_template'), { from: kept, to: ident(table) }));
    await db.query(sql('set_step'), [legacy, 'undone']);
  });
  const fks = (await db.query<{ name: string; table_name: string; validated: boolean }>(sql('foreign_keys_to'), [legacy])).rows;
  for (const fk of fks.filter((f) => !f.validated))
    await lockStep(db, opts, `validate ${fk.table_name}.${fk.name}`, async () => {
      await db.query(fill(sql('validate_fk_template'), { table: fk.table_name, name: ident(fk.name) }));
    });
  return `${legacy} is a table again, holding the rows as they are now, without the guard; their history is kept in marketplace.seller_transfer_events_set_aside`;
}

/**
 * undo before the switch: the legacy table was never touched but for the capture trigger, so the
 * adoption is abandoned: the trigger dropped, the copies and the noted ids removed, their history
 * kept aside; refused for a row the project's worker already acted on. One transaction under
 * lock_timeout with retries.
 */
export async function abandonAdoption(db: pg.ClientBase, map: AdoptionMap, opts: RunOptions): Promise<string> {
  const legacy = map.legacy;
  await lockStep(db, opts, 'undo', async () => {
    await db.query(fill(sql('drop_capture_template'), { legacy }));
    const vars = { legacy, legacy_literal: literal(legacy) };
    const acted = (await db.query<{ id: string }>(fill(sql('abandon_refusals_template'), vars))).rows.map((r) => r.id);
    if (acted.length)
      throw new CliError(
        `cannot abandon the adoption: the project's worker already acted on ${acted.join(', ')} at Stripe; ` +
          'run the adoption to its end (adopt run), then adopt undo if you must',
        3,
      );
    await db.query(sql('replica_role'));
    await db.query(fill(sql('abandon_set_history_aside_template'), vars));
    await db.query(fill(sql('abandon_remove_rows_template'), vars));
    await db.query(sql('undo_forget_changes'), [legacy]);
    await db.query(sql('set_step'), [legacy, 'undone']);
  });
  return `the adoption of ${legacy} is abandoned before its switch: the table is as it was (its capture trigger dropped), marketplace.seller_transfers holds none of its rows, their history is kept in marketplace.seller_transfer_events_set_aside`;
}
