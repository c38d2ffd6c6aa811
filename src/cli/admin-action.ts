// `seller-transfers reverse / retry / fail`: the shared admin action (src/core/admin-actions.ts)
// in one transaction of its own. The committed row is the work item: the worker's dispatcher
// finds it when it is due; what the worker will do next is read back
// (seller_transfer_dispatch_state) after the commit. A refusal is the database's error, printed
// in one line by main.ts; nothing is half-written.
import type pg from 'pg';
import { adminActionInTransaction, type AdminAction, type AdminResult } from '../core/admin-actions.ts';
import { transferDispatch, transferJobs } from '../core/read-model.ts';
import { renderDispatch } from '../core/transfer-text.ts';
import { formatMinor, type Exponent } from '../money.ts';
import { print, printJson, timestamp } from './format.ts';
import { cliRequester } from './operator-db.ts';
import { inTransaction } from '../db/connection.ts';

export type { AdminAction, AdminResult };

export async function runAdminAction(
  db: pg.ClientBase,
  action: AdminAction,
  id: string,
  reason: string,
  amountCents?: string,
  requestedBy: string = cliRequester(),
): Promise<AdminResult> {
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
  if (action === 'reverse')
    print(`reversal of ${formatMinor(String(t.reversal_amount_cents ?? t.amount_cents), String(t.currency), exponent)} requested`);
  if (action === 'fail') print(`last_error: ${t.last_error}`);
  for (const line of renderDispatch(r.dispatch)) print(`worker: ${line}`);
}
