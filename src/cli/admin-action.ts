// `seller-transfers reverse / retry / fail`: the shared admin action (src/core/admin-actions.ts)
// in one transaction of its own. The committed row is the work item: the worker's dispatcher
// finds it when it is due; what the worker will do next is read back
// (seller_transfer_dispatch_state) after the commit. A refusal is the database's error, printed
// in one line by main.ts; nothing is half-written.
import { Option } from 'commander';
import type pg from 'pg';
import { reasonProblem } from '../core/reason.ts';
import { adminActionInTransaction, type AdminAction, type AdminResult } from '../core/admin-actions.ts';
import { transferDispatch, transferJobs } from '../core/read-model.ts';
import { renderDispatch } from '../core/transfer-text.ts';
import { formatMinor } from '../money.ts';
import { CliError } from './context.ts';
import { print, printJson, timestamp } from './format.ts';
import { cliRequester } from './operator-db.ts';
import { inTransaction } from '../db/connection.ts';

export type { AdminAction, AdminResult };

/**
 * `--reason <text>`, which every action needs. Checked in the action, after the transfer id,
 * not by commander (which checks a mandatory option before any argument): `reverse not-a-uuid`
 * is told about the id first. Help marks it required, in the usage line and beside the option.
 */
export function reasonOption(what: string): Option {
  return new Option('--reason <text>', `required: why, ${what}`);
}

/** The usage line of an action: the id and --reason first, as they are required. */
export const ACTION_USAGE = '<id> --reason <text> [options]';

/** The reason given, or the usage error a missing one is; a blank one is the database's refusal. */
export function requiredReason(reason: string | undefined): string {
  if (reason === undefined) throw new CliError("required option '--reason <text>' not specified", 2);
  const problem = reason.trim() ? reasonProblem(reason) : null;
  if (problem) throw new CliError(`--reason: ${problem}`, 2);
  return reason;
}

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

/** The action's result: the move (or the retry), the reversal asked for, what the worker does next. */
export function printAdminResult(action: AdminAction, r: AdminResult, json: boolean | undefined): void {
  if (json) return printJson(r);
  const t = r.transfer;
  // The amount in the currency's unit: the exponent came back with the row (src/core/queries.sql).
  const money = (minor: unknown) => formatMinor(String(minor), String(t.currency), t.currency_exponent as number | null);
  if (r.event) print(`seller transfer ${t.id}: ${r.event.from_status} -> ${r.event.to_status} (reason: ${r.event.reason ?? '-'})`);
  else print(`seller transfer ${t.id}: still ${t.status}; next attempt due ${timestamp(t.next_retry_at as Date | null)}`);
  if (action === 'reverse') print(`reversal of ${money(t.reversal_amount_cents ?? t.amount_cents)} requested`);
  if (action === 'fail') print(`last_error: ${t.last_error}`);
  for (const line of renderDispatch(r.dispatch)) print(`worker: ${line}`);
}
