// reverse / retry / fail: one call to the migration's SQL function in one transaction, so the
// guard trigger and the history (actor + reason) apply as for any writer. The committed row is
// the work item: the worker's dispatcher finds it when it is due; what the worker will do next is
// read back (seller_transfer_dispatch_state) after the commit. A refusal is the database's
// error, printed in one line by main.ts; nothing is half-written.
import type pg from 'pg';
import { formatMinor, type Exponent } from '../money.ts';
import { print, printJson, timestamp } from './format.ts';
import { cliRequester, inTransaction } from './operator-db.ts';
import { transferDispatch, transferJobs, type DispatchState, type Queryable, type WorkerJob } from './queries.ts';
import { renderDispatch } from './show-command.ts';

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

export async function runAdminAction(db: pg.ClientBase, action: AdminAction, id: string, reason: string, amountCents?: string,
  requestedBy: string = cliRequester()): Promise<AdminResult> {
  const result = await inTransaction(db, () => adminActionInTransaction(db, action, id, reason, amountCents, requestedBy));
  // After the commit: the action wrote no job; the row is due (or scheduled) and a running
  // worker's dispatcher hands it to one. Say which, and show the row's job if it has one.
  return { ...result, dispatch: await transferDispatch(db, id), jobs: await transferJobs(db, id) };
}

export function printAdminResult(action: AdminAction, r: AdminResult, json: boolean | undefined, exponent?: Exponent): void {
  if (json) return printJson(r);
  const t = r.transfer;
  if (r.event) print(`seller transfer ${t.id}: ${r.event.from_status} -> ${r.event.to_status} (reason: ${r.event.reason ?? '-'})`);
  else print(`seller transfer ${t.id}: still ${t.status}; next attempt due ${timestamp(t.next_retry_at as Date | null)}`);
  if (action === 'reverse') print(`reversal of ${formatMinor(String(t.reversal_amount_cents ?? t.amount_cents), String(t.currency), exponent)} requested`);
  if (action === 'fail') print(`last_error: ${t.last_error}`);
  for (const line of renderDispatch(r.dispatch)) print(`worker: ${line}`);
}
