// The audit both front ends show (`seller-transfers audit`, the console's /audit page): every
// history must lead, by legal steps from an initial status, to its row's status, and every row
// must still hold the money facts it was created with. The judgement is the database's
// (marketplace.audit_seller_transfers); this reads it.
import type { Queryable } from '../db/connection.ts';
import { namedQueries } from '../db/named-queries.ts';

const sql = namedQueries('src/core/queries.sql');

export interface AuditProblem {
  transfer_id: string;
  problem: string;
  detail: string;
}

/** Rows listed in the text table; the summary counts all of them and --json prints all. */
export const AUDIT_LIST_LIMIT = 500;

/** Said whenever some rows in scope predate the recording of money facts (migration 000010). */
export function unrecordedFactsNote(unrecorded: number): string | null {
  return unrecorded > 0
    ? `${unrecorded} transfer(s) were created before their money facts were recorded in the history (migration 000010): their amount, currency and destination are judged by what they hold today`
    : null;
}

/** The audit's findings, and how many rows in scope predate recorded money facts: for the CLI and the console. */
export async function auditFindings(db: Queryable, since: Date | null): Promise<{ problems: AuditProblem[]; unrecordedFacts: number }> {
  return {
    problems: (await db.query<AuditProblem>(sql('audit_problems'), [since])).rows,
    unrecordedFacts: Number((await db.query<{ n: string }>(sql('unrecorded_facts'), [since])).rows[0]!.n),
  };
}

/** What one run of the incremental audit did (marketplace.run_seller_transfer_audit). */
export interface AuditRun {
  was_full: boolean;
  transfers_audited: number;
  problems_found: number;
  findings_new: number;
  findings_fixed: number;
  findings_open: number;
  started_at: Date;
}

/** A finding the audit stored, kept until the row is fixed or the finding acknowledged. */
export interface StoredFinding extends AuditProblem {
  first_found_at: Date;
  last_found_at: Date;
  acknowledged_at: Date | null;
  acknowledged_by: string | null;
  acknowledge_reason: string | null;
}

/** When the incremental audit last ran (null: never). */
export interface AuditState {
  started_at: Date | null;
  finished_at: Date | null;
  was_full: boolean | null;
  transfers_audited: number | null;
  problems_found: number | null;
}

export interface StoredFindings {
  state: AuditState | null;
  findings: StoredFinding[];
  open: number;
  openTransfers: number;
  acknowledged: number;
}

/** Runs the incremental audit (full: every transfer, as the first run does) and stores what it finds. */
export async function runIncrementalAudit(db: Queryable, full: boolean): Promise<AuditRun> {
  const row = (await db.query<AuditRun>(sql('audit_run'), [full])).rows[0]!;
  return {
    ...row,
    transfers_audited: Number(row.transfers_audited),
    problems_found: Number(row.problems_found),
    findings_new: Number(row.findings_new),
    findings_fixed: Number(row.findings_fixed),
    findings_open: Number(row.findings_open),
  };
}

/** The stored findings (open first, at most `limit`), how many there are, and when the audit last ran. */
export async function storedFindings(db: Queryable, limit = AUDIT_LIST_LIMIT): Promise<StoredFindings> {
  const state = (await db.query<AuditState>(sql('audit_state'))).rows[0] ?? null;
  const findings = (await db.query<StoredFinding>(sql('audit_stored_findings'), [limit])).rows;
  const counts = (await db.query<{ open: string; acknowledged: string; open_transfers: string }>(sql('audit_stored_counts'))).rows[0]!;
  return {
    state: state && { ...state, transfers_audited: state.transfers_audited === null ? null : Number(state.transfers_audited) },
    findings,
    open: Number(counts.open),
    openTransfers: Number(counts.open_transfers),
    acknowledged: Number(counts.acknowledged),
  };
}

/** An operator acknowledges a transfer's open findings (one problem, or all of them); returns how many. */
export async function acknowledgeFindings(
  db: Queryable,
  transferId: string,
  problem: string | null,
  reason: string,
  by: string,
): Promise<number> {
  return Number((await db.query<{ n: string }>(sql('audit_acknowledge'), [transferId, problem, reason, by])).rows[0]!.n);
}
