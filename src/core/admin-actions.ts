// reverse / retry / fail: one call to the migration's SQL function, so the guard trigger and the
// history (actor + reason) apply as for any writer. The same call for the CLI (in a transaction
// it commits) and the console (committed, or rolled back to preview what it would do).
import type { DispatchState, Queryable, WorkerJob } from './read-model.ts';

export type AdminAction = 'reverse' | 'retry' | 'fail';

const SQL: Record<AdminAction, string> = {
  reverse: 'select * from marketplace.reverse_seller_transfer($1, $2, $3::bigint)',
  retry: 'select * from marketplace.retry_seller_transfer($1, $2)',
  fail: 'select * from marketplace.fail_seller_transfer($1, $2)',
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
export async function adminActionInTransaction(db: Queryable, action: AdminAction, id: string, reason: string, amountCents: string | undefined, requestedBy: string): Promise<Pick<AdminResult, 'transfer' | 'event'>> {
  await db.query(`select set_config('marketplace.requested_by', $1, true)`, [requestedBy]);
  const params: unknown[] = action === 'reverse' ? [id, reason, amountCents ?? null] : [id, reason];
  const { rows: [transfer] } = await db.query<AdminResult['transfer']>(SQL[action], params);
  const { rows: [event] } = await db.query<NonNullable<AdminResult['event']>>(`
    select e.from_status, e.to_status, e.reason from marketplace.seller_transfer_events e
     where e.transfer_id = $1 and e.xact_id = pg_current_xact_id() order by e.id desc limit 1`, [id]);
  return { transfer: transfer!, event: event ?? null };
}
