// adopt run: copy-and-switch, online and resumable (docs/adopting.md). Steps, each recorded in
// marketplace.seller_transfer_adoptions so that run started again (after kill -9) continues:
//   capture  a trigger on the legacy table notes every row written from now on;
//   copy     keyset batches into marketplace.seller_transfers, each with its adopted event;
//   sync     the noted rows copied again or their writes replayed through the guard, until few are left;
//   switch   one short transaction: the last noted rows, the legacy table renamed (kept), a view
//            with INSTEAD OF triggers under its name, foreign keys re-pointed (NOT VALID);
//   done     the foreign keys validated.
// Every step that takes a lock does it under migrate's lock_timeout, retried (src/db/lock-retry.ts).
import type pg from 'pg';
import { inTransaction } from '../../db/connection.ts';
import { namedQueries } from '../../db/named-queries.ts';
import { withLockRetry, type LockRetryEvent } from '../../db/lock-retry.ts';
import { CliError } from '../context.ts';
import { fill, ident, literal, repointedTo, splitName, templateVars, type AdoptionMap } from './map.ts';

const sql = namedQueries('src/cli/adopt/queries.sql');

export interface RunOptions {
  url: string;
  applicationName: string;
  lockTimeoutMs: number;
  retryForMs: number;
  batchRows: number;
  /** Switch once this few noted rows are left (they are copied under the switch's lock). */
  switchBelow: number;
  progress: (line: string) => void;
}

export interface Adoption {
  legacy_table: string;
  kept_as: string;
  map: Array<[string, string]>;
  step: string;
  rows_copied: string;
  copy_cursor: string | null;
}

export async function adoptionOf(db: pg.ClientBase, legacy: string): Promise<Adoption | null> {
  return (await db.query<Adoption>(sql('adoption'), [legacy])).rows[0] ?? null;
}

async function setStep(db: pg.ClientBase, legacy: string, step: string): Promise<void> {
  await db.query(sql('set_step'), [legacy, step]);
}

/** Runs `fn` in a transaction under lock_timeout, retried on a lock timeout as migrate does. */
export async function lockStep(db: pg.ClientBase, opts: RunOptions, step: string, fn: () => Promise<void>): Promise<void> {
  await withLockRetry(
    {
      connectionString: opts.url,
      applicationName: opts.applicationName,
      lockTimeoutMs: opts.lockTimeoutMs,
      retryForMs: opts.retryForMs,
      step: async () => `adopt ${step}`,
      onRetry: (e: LockRetryEvent) =>
        opts.progress(`${step}: lock not granted within ${opts.lockTimeoutMs} ms, retrying in ${e.delayMs} ms (attempt ${e.attempt})`),
    },
    () =>
      inTransaction(db, async () => {
        await db.query(sql('lock_timeout'), [String(opts.lockTimeoutMs)]);
        await fn();
      }),
  );
}

/** Copies the legacy rows `where` selects (with their adopted events); refuses a row the guard would refuse. */
async function adoptRows(db: pg.ClientBase, map: AdoptionMap, where: string, params: unknown[]) {
  await db.query(sql('replica_role'));
  const { rows } = await db
    .query<{
      read: number;
      last_id: string | null;
      adopted: number;
      problems: Array<{ id: string; problems: string[] }> | null;
    }>(fill(sql('adopt_rows_template'), { ...templateVars(map), where }), params)
    .catch((e: unknown) => {
      // A Stripe id two legacy rows share (plan's shared_stripe_…): the table's unique constraint.
      const err = e as { code?: string; detail?: string; constraint?: string };
      if (err.code !== '23505') throw e;
      throw new CliError(
        `cannot adopt ${map.legacy} as it is: ${err.detail ?? err.constraint} (run \`seller-transfers adopt plan\` and fix it)`,
        3,
      );
    });
  const r = rows[0]!;
  if (r.problems?.length) {
    throw new CliError(
      `cannot adopt ${r.problems.length} row(s) of ${map.legacy} as they are: ` +
        r.problems
          .slice(0, 5)
          .map((p) => `${p.id} (${p.problems.join(', ')})`)
          .join('; ') +
        ' (run `seller-transfers adopt plan` and fix them)',
      3,
    );
  }
  return r;
}

/** Takes up to `limit` noted rows and brings marketplace.seller_transfers level with the legacy table for them. */
async function syncChanges(db: pg.ClientBase, map: AdoptionMap, legacyRelation: string, limit: number): Promise<number> {
  const ids = (await db.query<{ id: string }>(sql('take_changes'), [map.legacy, limit])).rows.map((r) => r.id);
  if (!ids.length) return 0;
  const vars = templateVars(map, legacyRelation);
  await adoptRows(db, map, 'l.id = any($1::uuid[])', [ids]);
  await db.query(sql('origin_role'));
  if (vars.direct) await db.query(fill(sql('sync_update_template'), vars), [ids]);
  await db.query(fill(sql('sync_delete_template'), vars), [ids]);
  return ids.length;
}

async function changesLeft(db: pg.ClientBase, legacy: string): Promise<number> {
  return Number((await db.query<{ count: string }>(sql('changes_left'), [legacy])).rows[0]!.count);
}

/** The view under the legacy name and its INSTEAD OF trigger, from the templates and the map. */
export function adoptedWriteFunction(map: AdoptionMap): string {
  const [schema, table] = splitName(map.legacy);
  return `${ident(schema)}.${ident(`${table}_adopted_write`)}`;
}

function viewStatements(map: AdoptionMap): string[] {
  const fn = adoptedWriteFunction(map);
  const project = new Map(map.project.map((c) => [c.name, c]));
  const insertable = map.entries.filter(([c]) => project.get(c)?.writer_inserts);
  const direct = map.placed.filter((p) => p.project !== null && p.project !== 'id');
  const touchesUpdatedAt = map.placed.some((p) => p.project === 'updated_at' && p.legacy.name === 'updated_at');
  return [
    fill(sql('view_template'), {
      legacy: map.legacy,
      columns: map.placed.map((p) => `t.${ident(p.project!)}::${p.legacy.type} as ${ident(p.legacy.name)}`).join(', '),
    }),
    ...map.placed
      .filter((p) => p.legacy.default_expr !== null)
      .map((p) =>
        fill(sql('view_default_template'), { legacy: map.legacy, column: ident(p.legacy.name), default: p.legacy.default_expr! }),
      ),
    fill(sql('view_function_template'), {
      function: fn,
      insert_columns: insertable.map(([c]) => ident(c)).join(', '),
      insert_values: insertable.map(([c, e]) => `${e} as ${ident(c)}`).join(', '),
      update_checks: direct
        .map(
          (p) =>
            `    if new.${ident(p.legacy.name)} is distinct from old.${ident(p.legacy.name)} then ` +
            `sets := sets || ${literal(`${ident(p.project!)} = ($1).${ident(p.legacy.name)}`)}::text; end if;`,
        )
        .join('\n'),
      // The legacy table's own trigger kept updated_at current; the view does the same.
      touch_updated_at: touchesUpdatedAt
        ? "      if new.updated_at is not distinct from old.updated_at then sets := sets || 'updated_at = now()'::text; new.updated_at := now(); end if;"
        : '',
    }),
    fill(sql('view_trigger_template'), { legacy: map.legacy, function: fn }),
    fill(sql('view_comment_template'), {
      legacy: map.legacy,
      comment: literal(
        `Adopted by seller-transfers adopt run: the rows of marketplace.seller_transfers under the legacy columns; writes go through the guard. The table before the adoption: ${map.kept}.`,
      ),
    }),
  ];
}

/**
 * Noted writes replayed per transaction before the switch. Small: a legacy writer touching a row
 * of the batch again waits for the batch's commit (its note conflicts with the one being taken).
 */
const SYNC_BATCH = 500;

const heldMs = (since: number) => `${Math.round(performance.now() - since)} ms`;

export async function runAdoption(db: pg.ClientBase, map: AdoptionMap, opts: RunOptions): Promise<string> {
  let state = await adoptionOf(db, map.legacy);
  if (state?.step === 'done') return `${map.legacy} is already adopted: nothing to do`;
  if (!state || state.step === 'undone') {
    await db.query(sql('start_adoption'), [map.legacy, map.kept, JSON.stringify([...map.entries, ...map.handover])]);
    state = (await adoptionOf(db, map.legacy))!;
  }
  const legacy = map.legacy;
  if (state.step !== 'switched') {
    const live = (await db.query<{ count: number }>(sql('live_workers'))).rows[0]!.count;
    if (live)
      opts.progress(
        `warning: ${live} seller-transfers worker(s) running; until the switch the legacy table is the truth (docs/adopting.md#handover)`,
      );
  }
  if (state.step === 'capture') {
    let captureLocked = 0;
    await lockStep(db, opts, 'capture', async () => {
      captureLocked = performance.now();
      const stmt = (await db.query<{ statement: string }>(sql('create_capture_trigger'), [legacy])).rows[0]?.statement;
      if (stmt) await db.query(stmt);
      await setStep(db, legacy, 'copy');
    });
    opts.progress(`capture: every legacy write from now on is noted (lock held ${heldMs(captureLocked)})`);
    state = (await adoptionOf(db, legacy))!;
  }
  if (state.step === 'copy') {
    const total = Number((await db.query<{ count: string }>(fill(sql('count_rows_template'), { legacy }))).rows[0]!.count);
    let done = Number(state.rows_copied);
    let cursor = state.copy_cursor ?? '00000000-0000-0000-0000-000000000000';
    for (;;) {
      const r = await inTransaction(db, async () => {
        const r = await adoptRows(db, map, `l.id > $1::uuid order by l.id limit $2`, [cursor, opts.batchRows]);
        if (r.last_id) await db.query(sql('set_cursor'), [legacy, r.last_id, r.read]);
        else await setStep(db, legacy, 'sync');
        return r;
      });
      if (!r.last_id) break;
      cursor = r.last_id;
      done += r.read;
      opts.progress(`copy: ${done} of ${Math.max(done, total)} rows`);
    }
    state = (await adoptionOf(db, legacy))!;
  }
  if (state.step === 'sync') {
    // Writers may keep noting rows: sync until few are left, then the switch copies those under its lock.
    // Batches shrink with what is left, so that the last ones are quick and the writers' new notes
    // few; when the writers note rows as fast as they are replayed, the switch takes what is left.
    let synced = 0;
    let best = Infinity;
    let stalled = 0;
    for (let left = await changesLeft(db, legacy); left >= opts.switchBelow && stalled < 5; left = await changesLeft(db, legacy)) {
      [best, stalled] = left < best ? [left, 0] : [best, stalled + 1];
      synced += await inTransaction(db, () => syncChanges(db, map, legacy, Math.min(SYNC_BATCH, Math.max(opts.switchBelow, left))));
      opts.progress(`sync: ${synced} legacy writes made during the copy replayed, ${await changesLeft(db, legacy)} left`);
    }
    const fks = (await db.query<{ name: string; table_name: string; definition: string }>(sql('foreign_keys_to'), [legacy])).rows;
    const grants = (await db.query<{ statement: string }>(sql('table_grants'), [legacy, legacy])).rows.map((g) => g.statement);
    const [, table] = splitName(map.kept);
    let switchLocked = 0;
    await lockStep(db, opts, 'switch', async () => {
      opts.progress(`switch: locking ${legacy} (ACCESS EXCLUSIVE, lock_timeout ${opts.lockTimeoutMs} ms)`);
      await db.query((await db.query<{ statement: string }>(sql('lock_exclusive'), [legacy])).rows[0]!.statement);
      switchLocked = performance.now();
      let last = 0;
      for (let n = await syncChanges(db, map, legacy, opts.batchRows); n > 0; n = await syncChanges(db, map, legacy, opts.batchRows))
        last += n;
      await db.query(sql('origin_role'));
      await db.query(fill(sql('drop_capture_template'), { legacy }));
      await db.query(fill(sql('rename_template'), { from: legacy, to: ident(table) }));
      for (const s of viewStatements(map)) await db.query(s);
      for (const g of grants) await db.query(g);
      for (const fk of fks)
        await db.query(
          fill(sql('repoint_fk_template'), {
            table: fk.table_name,
            name: ident(fk.name),
            definition: repointedTo(fk.definition, 'marketplace.seller_transfers'),
          }),
        );
      await setStep(db, legacy, 'switched');
      opts.progress(`switch: ${last} last legacy writes copied; ${legacy} is now a view over marketplace.seller_transfers`);
    });
    opts.progress(`switch: ACCESS EXCLUSIVE on ${legacy} held ${heldMs(switchLocked)}, until the commit`);
    state = (await adoptionOf(db, legacy))!;
  }
  if (state.step === 'switched') {
    const fks = (
      await db.query<{ name: string; table_name: string; validated: boolean }>(sql('foreign_keys_to'), ['marketplace.seller_transfers'])
    ).rows;
    for (const fk of fks.filter((f) => !f.validated)) {
      await lockStep(db, opts, `validate ${fk.table_name}.${fk.name}`, async () => {
        await db.query(fill(sql('validate_fk_template'), { table: fk.table_name, name: ident(fk.name) }));
      });
      opts.progress(`validate: ${fk.table_name}.${fk.name} holds for every row`);
    }
    await setStep(db, legacy, 'done');
  }
  return `${legacy} adopted: its rows are under the guard in marketplace.seller_transfers, and ${legacy} is a view over them (the table before: ${map.kept})`;
}
