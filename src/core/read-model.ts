// The read model both front ends show: one transfer (its row, history, jobs and dispatch state)
// and the per-status stats (the CLI's show, stats and demo; the console's transfer page). Every
// rule (due-ness, time in status, SLOs, job keys, dispatch state) is a SQL function or view from
// the migrations; these only select.
import type pg from 'pg';
import { TransferNotFound } from './errors.ts';

export type Queryable = Pick<pg.Client | pg.PoolClient | pg.Pool, 'query'>;

export interface TransferDetail {
  id: string; order_id: string; seller_id: string; stripe_account_id: string; amount_cents: number; currency: string;
  /** Decimals of the currency (marketplace.currencies); null when the table does not know it. */
  currency_exponent: number | null; source_transaction: string | null;
  status: string; status_description: string; is_terminal: boolean;
  stripe_transfer_id: string | null; stripe_reversal_id: string | null; reversal_amount_cents: number | null;
  retry_count: number; next_retry_at: Date | null; last_error: string | null;
  created_at: Date; updated_at: Date; status_since: Date | null; seconds_in_status: number | null;
  due_now: boolean; slo_seconds: number | null; past_slo: boolean;
}

export async function transferDetail(db: Queryable, id: string): Promise<TransferDetail> {
  const { rows: [row] } = await db.query<TransferDetail>(`
    select t.id, t.order_id, t.seller_id, t.stripe_account_id, t.amount_cents, t.currency,
           (select c.exponent from marketplace.currencies c where c.code = t.currency) as currency_exponent, t.source_transaction,
           t.status, s.description as status_description, s.is_terminal,
           t.stripe_transfer_id, t.stripe_reversal_id, t.reversal_amount_cents,
           t.retry_count, t.next_retry_at, t.last_error, t.created_at, t.updated_at,
           since.at as status_since, floor(extract(epoch from now() - since.at))::bigint as seconds_in_status,
           marketplace.seller_transfer_is_due(t.status, t.next_retry_at) as due_now,
           slo.max_seconds as slo_seconds,
           exists (select 1 from marketplace.seller_transfers_past_slo p where p.id = t.id) as past_slo
      from marketplace.seller_transfers t
      join marketplace.seller_transfer_statuses s on s.status = t.status
      left join marketplace.seller_transfer_status_slos slo on slo.status = t.status and not s.is_terminal
     cross join lateral (select marketplace.seller_transfer_status_since(t.id) as at) since
     where t.id = $1`, [id]);
  if (!row) throw new TransferNotFound(id);
  return row;
}

export interface HistoryEvent {
  id: number; occurred_at: Date; from_status: string | null; to_status: string;
  actor: string; requested_by: string | null; application_name: string | null; reason: string | null; xact_id: string;
}

export async function transferHistory(db: Queryable, id: string): Promise<HistoryEvent[]> {
  const { rows } = await db.query<HistoryEvent>(`
    select e.id, e.occurred_at, e.from_status, e.to_status, e.actor, e.requested_by, e.application_name, e.reason, e.xact_id::text
      from marketplace.seller_transfer_events e
     where e.transfer_id = $1
     order by e.id`, [id]);
  return rows;
}

export interface WorkerJob {
  job_id: number; task: string; job_key: string; run_at: Date; attempts: number; max_attempts: number;
  locked_at: Date | null; locked_by: string | null; last_error: string | null; created_at: Date;
  /** The lease the dispatcher gave this job (the row's next_retry_at while the job holds it). */
  lease: Date | null;
}

export async function transferJobs(db: Queryable, id: string): Promise<WorkerJob[]> {
  const { rows } = await db.query<WorkerJob>('select * from marketplace.seller_transfer_jobs($1)', [id]);
  return rows;
}

/**
 * Where a row stands with the worker, from marketplace.seller_transfer_dispatch_state():
 * idle (no worker task for its status), due (the next dispatch hands it to a job), handed (a job
 * holds it under a lease), scheduled (not due before next_retry_at). Job columns: its job, if any.
 */
export interface DispatchState {
  state: 'idle' | 'due' | 'handed' | 'scheduled';
  status: string; is_terminal: boolean; worker_task: string | null; due_now: boolean; next_retry_at: Date | null;
  job_id: number | null; job_task: string | null; lease: Date | null; run_at: Date | null;
  attempts: number | null; max_attempts: number | null; locked_at: Date | null; locked_by: string | null; last_error: string | null;
}

export async function transferDispatch(db: Queryable, id: string): Promise<DispatchState> {
  const { rows: [row] } = await db.query<DispatchState>('select * from marketplace.seller_transfer_dispatch_state($1)', [id]);
  if (!row) throw new TransferNotFound(id);
  return row;
}

export interface StatusStats {
  status: string; is_initial: boolean; is_terminal: boolean; worker_task: string | null;
  transfers: number; due_now: number; oldest_id: string | null; oldest_since: Date | null;
  oldest_seconds_in_status: number | null; slo_seconds: number | null; past_slo: number;
}

export interface PastSloRow {
  id: string; status: string; status_since: Date; seconds_in_status: number; slo_seconds: number;
  amount_cents: number; currency: string; stripe_account_id: string; retry_count: number;
  next_retry_at: Date | null; last_error: string | null;
}

/** Payouts waiting for the platform's balance (marketplace.seller_transfers_waiting_for_funds), per currency. */
export interface WaitingForFunds { currency: string; currency_exponent: number | null; payouts: string; amount_cents: string; most_attempts: number }

export async function statusStats(db: Queryable, pastSloLimit: number): Promise<{ statuses: StatusStats[]; pastSlo: PastSloRow[]; waitingForFunds: WaitingForFunds[] }> {
  const { rows: statuses } = await db.query<StatusStats>('select * from marketplace.seller_transfer_stats');
  const { rows: pastSlo } = await db.query<PastSloRow>(
    'select * from marketplace.seller_transfers_past_slo order by status_since, id limit $1', [pastSloLimit]);
  const { rows: waitingForFunds } = await db.query<WaitingForFunds>(`
    select w.currency, (select c.exponent from marketplace.currencies c where c.code = w.currency) as currency_exponent,
           count(*) as payouts, sum(w.amount_cents) as amount_cents, max(w.retry_count) as most_attempts
      from marketplace.seller_transfers_waiting_for_funds w group by w.currency order by w.currency`);
  return { statuses, pastSlo, waitingForFunds };
}
