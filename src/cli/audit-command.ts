import type { Command } from 'commander';
import { AUDIT_LIST_LIMIT, auditFindings, unrecordedFactsNote, type AuditProblem } from '../core/audit.ts';
import { oneLineText, print, printJson, table } from './format.ts';
import { operatorContext, parseSince, withOperatorDb } from './operator-db.ts';
import { inTransaction } from '../db/connection.ts';

/** Exit code while problems exist (like reconcile: 0 = every history proves its row). */
export const AUDIT_PROBLEM_EXIT_CODE = 3;

export function renderAudit(problems: AuditProblem[], since: Date | null, unrecordedFacts = 0): string {
  const scope = since ? `transfers created or changed since ${since.toISOString()}` : 'every transfer';
  const note = unrecordedFactsNote(unrecordedFacts);
  if (!problems.length) {
    return [
      `audited ${scope}: every history starts with the insert in an initial status, takes only legal steps and ends in the row's status, ` +
        'and every row still holds the money facts it was created with',
      ...(note ? [note] : []),
    ].join('\n');
  }
  const transfers = new Set(problems.map((p) => p.transfer_id)).size;
  const listed = problems.slice(0, AUDIT_LIST_LIMIT);
  return [
    table(
      ['seller transfer', 'problem', 'detail'],
      listed.map((p) => [p.transfer_id, p.problem, oneLineText(p.detail, 110)]),
    ),
    ...(problems.length > listed.length ? [`(first ${listed.length} of ${problems.length} problems listed; --json prints them all)`] : []),
    `audited ${scope}: ${problems.length} problem(s) on ${transfers} transfer(s). A write went past the guard or the history ` +
      '(session_replication_role = replica, a disabled trigger, or the owner editing the history); see docs/runbook.md#audit',
    ...(note ? [note] : []),
  ].join('\n');
}

export function registerAuditCommand(program: Command): void {
  program
    .command('audit')
    .description(
      "prove that every transfer's history leads, by legal steps from an initial status, to its current status, " +
        'and that it still holds the money facts it was created with; ' +
        `list the rows where it does not (exit code ${AUDIT_PROBLEM_EXIT_CODE} while any exist). Reads only.`,
    )
    .option('--since <date>', 'only transfers created, or with a history event, since this ISO date/time')
    .option('--json', 'print { since, problems: [{ transfer_id, problem, detail }], transfers_without_recorded_facts } as JSON')
    .action(async (opts: { since?: string; json?: boolean }) => {
      const since = opts.since === undefined ? null : parseSince(opts.since);
      const { config, logger } = operatorContext();
      const { problems, unrecordedFacts } = await withOperatorDb(config, logger, (db) =>
        inTransaction(db, () => auditFindings(db, since), { readOnly: true }),
      );
      if (opts.json) printJson({ since: since?.toISOString() ?? null, problems, transfers_without_recorded_facts: unrecordedFacts });
      else print(renderAudit(problems, since, unrecordedFacts));
      if (problems.length) process.exitCode = AUDIT_PROBLEM_EXIT_CODE;
    });
}
