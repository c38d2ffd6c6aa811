import type { Command } from 'commander';
import {
  AUDIT_LIST_LIMIT,
  acknowledgeFindings,
  auditFindings,
  runIncrementalAudit,
  storedFindings,
  unrecordedFactsNote,
  type AuditProblem,
  type AuditRun,
  type StoredFindings,
} from '../core/audit.ts';
import { oneLineText, print, printJson, table, timestamp } from './format.ts';
import { cliRequester, operatorContext, parseSince, transferId, withOperatorDb } from './operator-db.ts';
import { CliError } from './context.ts';
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

/** The stored findings (`--findings`, and after `--since-last`): open ones, then acknowledged ones. */
export function renderStoredFindings(stored: StoredFindings, run: AuditRun | null = null): string {
  const lines: string[] = [];
  if (run) {
    lines.push(
      `${run.was_full ? 'full' : 'incremental'} audit: ${run.transfers_audited} transfer(s) audited, ${run.problems_found} problem(s) found ` +
        `(${run.findings_new} new, ${run.findings_fixed} fixed since the last run)`,
    );
  } else if (stored.state?.finished_at) {
    lines.push(
      `the incremental audit last ran at ${timestamp(stored.state.finished_at)} (${stored.state.was_full ? 'full' : 'incremental'}, ` +
        `${stored.state.transfers_audited} transfer(s) audited)`,
    );
  } else {
    lines.push('the incremental audit has never run: `seller-transfers audit --since-last` runs it (the first run audits every transfer)');
  }
  if (stored.findings.length) {
    lines.push(
      table(
        ['seller transfer', 'problem', 'detail', 'found', 'acknowledged'],
        stored.findings.map((f) => [
          f.transfer_id,
          f.problem,
          oneLineText(f.detail, 90),
          timestamp(f.first_found_at),
          f.acknowledged_at
            ? `${timestamp(f.acknowledged_at)} by ${f.acknowledged_by}: ${oneLineText(f.acknowledge_reason ?? '', 40)}`
            : '',
        ]),
      ),
    );
    if (stored.open + stored.acknowledged > stored.findings.length)
      lines.push(`(first ${stored.findings.length} of ${stored.open + stored.acknowledged} findings listed; --json prints them all)`);
  }
  lines.push(
    stored.open
      ? `${stored.open} open finding(s) on ${stored.openTransfers} transfer(s)${stored.acknowledged ? `, ${stored.acknowledged} acknowledged` : ''}: ` +
          'a write went past the guard or the history; fix the row or acknowledge the finding (docs/runbook.md#audit)'
      : `no open findings${stored.acknowledged ? ` (${stored.acknowledged} acknowledged)` : ''}`,
  );
  return lines.join('\n');
}

export function registerAuditCommand(program: Command): void {
  program
    .command('audit')
    .description(
      "prove that every transfer's history leads, by legal steps from an initial status, to its current status, " +
        'and that it still holds the money facts it was created with; ' +
        `list the rows where it does not (exit code ${AUDIT_PROBLEM_EXIT_CODE} while any exist). Reads only, ` +
        'but for --since-last (stores its findings and watermark) and --acknowledge.',
    )
    .option('--since <date>', 'only transfers created, or with a history event, since this ISO date/time')
    .option(
      '--since-last',
      'the incremental audit: audit only the transfers with history since the last --since-last run (the first run audits every transfer), ' +
        'store the findings, and list every open one (run it every few minutes: docs/operating.md#audit)',
    )
    .option('--full', 'with --since-last: audit every transfer this time (stored findings of fixed rows are forgotten)')
    .option('--findings', 'list the stored findings and when the incremental audit last ran, without auditing')
    .option('--acknowledge <transfer-id>', "acknowledge a transfer's open findings (with --reason; --problem for one of them)")
    .option('--problem <name>', 'with --acknowledge: only this problem (e.g. status_mismatch)')
    .option('--reason <text>', 'with --acknowledge: why the finding needs no fix (recorded with your name)')
    .option(
      '--json',
      'print { since, problems: [{ transfer_id, problem, detail }], transfers_without_recorded_facts } as JSON ' +
        '(--since-last, --findings: { run, last_run, open, acknowledged, findings })',
    )
    .action(
      async (opts: {
        since?: string;
        sinceLast?: boolean;
        full?: boolean;
        findings?: boolean;
        acknowledge?: string;
        problem?: string;
        reason?: string;
        json?: boolean;
      }) => {
        const modes = [opts.since !== undefined, !!opts.sinceLast, !!opts.findings, opts.acknowledge !== undefined].filter(Boolean).length;
        if (modes > 1) throw new CliError('use one of --since, --since-last, --findings and --acknowledge', 2);
        if (opts.full && !opts.sinceLast) throw new CliError('--full goes with --since-last', 2);
        if ((opts.problem !== undefined || opts.reason !== undefined) && opts.acknowledge === undefined)
          throw new CliError('--problem and --reason go with --acknowledge', 2);
        if (opts.sinceLast || opts.findings || opts.acknowledge !== undefined) return storedAudit(opts);
        return liveAudit(opts);
      },
    );
}

async function storedAudit(opts: {
  sinceLast?: boolean;
  full?: boolean;
  acknowledge?: string;
  problem?: string;
  reason?: string;
  json?: boolean;
}) {
  const { config, logger } = operatorContext();
  if (opts.acknowledge !== undefined) {
    const id = transferId(opts.acknowledge);
    if (!opts.reason?.trim()) throw new CliError('--acknowledge needs --reason <text>', 2);
    const n = await withOperatorDb(config, logger, (db) => acknowledgeFindings(db, id, opts.problem ?? null, opts.reason!, cliRequester()));
    if (!n) throw new CliError(`no open finding of ${id}${opts.problem ? ` with problem ${opts.problem}` : ''} to acknowledge`, 1);
    if (opts.json) printJson({ transfer_id: id, acknowledged: n });
    else print(`${n} open finding(s) of ${id} acknowledged`);
    return;
  }
  const { run, stored } = await withOperatorDb(config, logger, async (db) => {
    const run = opts.sinceLast ? await runIncrementalAudit(db, !!opts.full) : null;
    return { run, stored: await storedFindings(db, opts.json ? 1_000_000 : AUDIT_LIST_LIMIT) };
  });
  if (opts.json)
    printJson({ run, last_run: stored.state, open: stored.open, acknowledged: stored.acknowledged, findings: stored.findings });
  else print(renderStoredFindings(stored, run));
  if (stored.open) process.exitCode = AUDIT_PROBLEM_EXIT_CODE;
}

async function liveAudit(opts: { since?: string; json?: boolean }) {
  const since = opts.since === undefined ? null : parseSince(opts.since);
  const { config, logger } = operatorContext();
  const { problems, unrecordedFacts } = await withOperatorDb(config, logger, (db) =>
    inTransaction(db, () => auditFindings(db, since), { readOnly: true }),
  );
  if (opts.json) printJson({ since: since?.toISOString() ?? null, problems, transfers_without_recorded_facts: unrecordedFacts });
  else print(renderAudit(problems, since, unrecordedFacts));
  if (problems.length) process.exitCode = AUDIT_PROBLEM_EXIT_CODE;
}
