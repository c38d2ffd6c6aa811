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
