// reverse / retry / fail: one call to the migration's SQL function, so the guard trigger and the
// history (actor + reason) apply as for any writer. The same call for the CLI (in a transaction
// it commits) and the console (committed, or rolled back to preview what it would do).
import type { Queryable } from '../db/connection.ts';
import { namedQueries } from '../db/named-queries.ts';
import type { AdminAction, DispatchState, WorkerJob } from './read-model.ts';

const sql = namedQueries('src/core/queries.sql');

export type { AdminAction };

const SQL: Record<AdminAction, () => string> = {
  reverse: () => sql('admin_reverse'),
  retry: () => sql('admin_retry'),
  fail: () => sql('admin_fail'),
};

export interface AdminResult {
  transfer: Record<string, unknown> & { id: string; status: string };
  /** The status change this action wrote to the history (none when the status stayed). */
  event: { from_status: string | null; to_status: string; reason: string | null } | null;
  /** Where the row stands with the worker after the commit (due, handed, scheduled, idle). */
  dispatch: DispatchState;
  jobs: WorkerJob[];
}

/**
 * The action inside the caller's transaction: the SQL function, then the history row it wrote.
 * requestedBy: the person the action is for, recorded in the history's requested_by (the CLI:
 * the OS user; the console: the signed-in user), next to the database role as actor. The
 * console also calls this in a transaction it rolls back, to show what an action would do.
 */
export async function adminActionInTransaction(
  db: Queryable,
  action: AdminAction,
  id: string,
  reason: string,
  amountCents: string | undefined,
  requestedBy: string,
): Promise<Pick<AdminResult, 'transfer' | 'event'>> {
  await db.query(sql('set_requested_by'), [requestedBy]);
  const params: unknown[] = action === 'reverse' ? [id, reason, amountCents ?? null] : [id, reason];
  const {
    rows: [transfer],
  } = await db.query<AdminResult['transfer']>(SQL[action](), params);
  const {
    rows: [event],
  } = await db.query<NonNullable<AdminResult['event']>>(sql('admin_event'), [id]);
  return { transfer: transfer!, event: event ?? null };
}
