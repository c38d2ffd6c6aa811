// The read model both front ends show: one transfer (its row, history, jobs and dispatch state)
// and the per-status stats (the CLI's show, stats and demo; the console's transfer page). Every
// rule (due-ness, time in status, SLOs, job keys, dispatch state, admin actions) is a SQL function or view from
// the migrations; these only select.
import type { Queryable } from '../db/connection.ts';
import { namedQueries } from '../db/named-queries.ts';
import { encodeCursor, type Cursor } from './cursor.ts';
import { TransferNotFound } from './errors.ts';

const sql = namedQueries('src/core/queries.sql');

/** An operator's action on one transfer (admin-actions.ts runs it). */
export type AdminAction = 'reverse' | 'retry' | 'fail';

export interface TransferDetail {
  id: string;
  order_id: string;
  seller_id: string;
  stripe_account_id: string;
  amount_cents: number;
  currency: string;
  /** Decimals of the currency (marketplace.currencies); null when the table does not know it. */
  currency_exponent: number | null;
  source_transaction: string | null;
  status: string;
  status_description: string;
  is_terminal: boolean;
  stripe_transfer_id: string | null;
  stripe_reversal_id: string | null;
  reversal_amount_cents: number | null;
  retry_count: number;
  next_retry_at: Date | null;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
  status_since: Date | null;
  seconds_in_status: number | null;
  due_now: boolean;
  /** What an operator may do to it now (marketplace.seller_transfer_admin_actions, from the matrix). */
  admin_actions: AdminAction[];
  slo_seconds: number | null;
  past_slo: boolean;
}

export async function transferDetail(db: Queryable, id: string): Promise<TransferDetail> {
  const {
    rows: [row],
  } = await db.query<TransferDetail>(sql('transfer_detail'), [id]);
  if (!row) throw new TransferNotFound(id);
  return row;
}

export interface HistoryEvent {
  id: number;
  occurred_at: Date;
  from_status: string | null;
  to_status: string;
  actor: string;
  requested_by: string | null;
  application_name: string | null;
  reason: string | null;
  xact_id: string;
}

export async function transferHistory(db: Queryable, id: string): Promise<HistoryEvent[]> {
  const { rows } = await db.query<HistoryEvent>(sql('transfer_history'), [id]);
  return rows;
}

export interface WorkerJob {
  job_id: number;
  task: string;
  job_key: string;
  run_at: Date;
  attempts: number;
  max_attempts: number;
  locked_at: Date | null;
  locked_by: string | null;
  last_error: string | null;
  created_at: Date;
  /** The lease the dispatcher gave this job (the row's next_retry_at while the job holds it). */
  lease: Date | null;
}

export async function transferJobs(db: Queryable, id: string): Promise<WorkerJob[]> {
  const { rows } = await db.query<WorkerJob>(sql('transfer_jobs'), [id]);
  return rows;
}

/**
 * Where a row stands with the worker, from marketplace.seller_transfer_dispatch_state():
 * idle (no worker task for its status), due (the next dispatch hands it to a job), handed (a job
 * holds it under a lease), scheduled (not due before next_retry_at). Job columns: its job, if any.
 */
export interface DispatchState {
  state: 'idle' | 'due' | 'handed' | 'scheduled';
  status: string;
  is_terminal: boolean;
  worker_task: string | null;
  due_now: boolean;
  next_retry_at: Date | null;
  job_id: number | null;
  job_task: string | null;
  lease: Date | null;
  run_at: Date | null;
  attempts: number | null;
  max_attempts: number | null;
  locked_at: Date | null;
  locked_by: string | null;
  last_error: string | null;
}

export async function transferDispatch(db: Queryable, id: string): Promise<DispatchState> {
  const {
    rows: [row],
  } = await db.query<DispatchState>(sql('transfer_dispatch'), [id]);
  if (!row) throw new TransferNotFound(id);
  return row;
}

export interface StatusStats {
  status: string;
  is_initial: boolean;
  is_terminal: boolean;
  worker_task: string | null;
  transfers: number;
  due_now: number;
  oldest_id: string | null;
  oldest_since: Date | null;
  oldest_seconds_in_status: number | null;
  slo_seconds: number | null;
  past_slo: number;
  /** When `transfers` was counted: now for the worker statuses, the last full count for the others. */
  counted_at: Date;
  counted_seconds_ago: number;
}

export interface PastSloRow {
  id: string;
  status: string;
  status_since: Date;
  seconds_in_status: number;
  slo_seconds: number;
  amount_cents: number;
  currency: string;
  stripe_account_id: string;
  retry_count: number;
  next_retry_at: Date | null;
  last_error: string | null;
}

/** Payouts waiting for the platform's balance (marketplace.seller_transfers_waiting_for_funds), per currency. */
export interface WaitingForFunds {
  currency: string;
  currency_exponent: number | null;
  payouts: string;
  amount_cents: string;
  most_attempts: number;
}

export async function statusStats(
  db: Queryable,
  pastSloLimit: number,
): Promise<{ statuses: StatusStats[]; pastSlo: PastSloRow[]; waitingForFunds: WaitingForFunds[] }> {
  const { rows: statuses } = await db.query<StatusStats>(sql('status_stats'));
  const { rows: pastSlo } = await db.query<PastSloRow>(sql('past_slo'), [pastSloLimit]);
  const { rows: waitingForFunds } = await db.query<WaitingForFunds>(sql('waiting_for_funds'));
  return { statuses, pastSlo, waitingForFunds };
}

/** What `list` narrows to; null: no filter. */
export interface TransferListFilter {
  statuses: string[] | null;
  seller: string | null;
  account: string | null;
  currency: string | null;
  createdBefore: Date | null;
  createdSince: Date | null;
  after: Cursor | null;
  limit: number;
}

export interface TransferListRow {
  id: string;
  order_id: string;
  seller_id: string;
  stripe_account_id: string;
  amount_cents: number | string;
  currency: string;
  currency_exponent: number | null;
  status: string;
  stripe_transfer_id: string | null;
  stripe_reversal_id: string | null;
  reversal_amount_cents: number | string | null;
  retry_count: number;
  next_retry_at: Date | null;
  last_error: string | null;
  created_at: Date;
  updated_at: Date;
}

/** One page of transfers, newest first, and the cursor of the next page (null: this is the last). */
export async function listTransfers(db: Queryable, f: TransferListFilter): Promise<{ rows: TransferListRow[]; next: string | null }> {
  const { rows } = await db.query<TransferListRow & { cursor_at: string | null }>(sql('list_transfers'), [
    f.after?.at ?? null,
    f.after?.id ?? null,
    f.statuses,
    f.seller,
    f.account,
    f.currency,
    f.createdBefore,
    f.createdSince,
    f.limit + 1,
  ]);
  const page = rows.slice(0, f.limit);
  const last = page.at(-1);
  const next = rows.length > f.limit && last?.cursor_at ? encodeCursor(last.cursor_at, last.id) : null;
  for (const row of page) delete (row as Partial<typeof row>).cursor_at;
  return { rows: page, next };
}

/** The currency codes marketplace.currencies knows. */
export async function currencyCodes(db: Queryable): Promise<string[]> {
  return (await db.query<{ code: string }>(sql('currency_codes'))).rows.map((r) => r.code);
}

/** The status names, in the table's order. */
export async function statusNames(db: Queryable): Promise<string[]> {
  return (await db.query<{ status: string }>(sql('statuses'))).rows.map((r) => r.status);
}
