import type { Command } from 'commander';
import { CliError } from './context.ts';
import { duration, oneLineText, print, printJson, table } from './format.ts';
import { CLI_READ_TIMEOUT, operatorContext, withOperatorDb } from './operator-db.ts';
import { formatMinor } from '../money.ts';
import { statusStats, type PastSloRow, type StatusStats, type WaitingForFunds } from '../core/read-model.ts';
import { inTransaction } from '../db/connection.ts';
import { pauseLine, pauseState, type PauseState } from '../core/pause.ts';

export function renderStats(
  statuses: StatusStats[],
  pastSlo: PastSloRow[],
  waitingForFunds: WaitingForFunds[] = [],
  pause: PauseState | null = null,
): string {
  const lines = [
    // The fleet's pause switch first: while it is on, nothing below moves (docs/runbook.md#sellertransferspaused).
    ...(pause?.paused
      ? [`PAUSED: ${pauseLine(pause)}; no Stripe call is made, rows wait (seller-transfers resume --reason "...")`, '']
      : []),
    table(
      ['status', 'transfers', 'due now', 'longest in status', 'SLO', 'past SLO'],
      statuses.map((s) => [
        `${s.status}${s.is_terminal ? ' (terminal)' : ''}`,
        // A count older than the statement is the last full count of a resting status (refreshed
        // every 5 minutes by the worker): say how old.
        Number(s.counted_seconds_ago) >= 1 ? `${s.transfers} (counted ${duration(s.counted_seconds_ago)} ago)` : s.transfers,
        s.worker_task ? s.due_now : '-',
        s.oldest_id ? `${duration(s.oldest_seconds_in_status)} ${s.oldest_id}` : '-',
        s.slo_seconds === null ? '-' : duration(s.slo_seconds),
        s.slo_seconds === null ? '-' : s.past_slo,
      ]),
    ),
  ];
  const sum = (k: 'transfers' | 'due_now' | 'past_slo') => statuses.reduce((n, s) => n + Number(s[k]), 0);
  lines.push(`total: ${sum('transfers')} transfers, ${sum('due_now')} due for the worker now, ${sum('past_slo')} past their status SLO`);
  if (waitingForFunds.length) {
    lines.push('', "waiting for the platform's Stripe balance (balance_insufficient; docs/runbook.md#sellertransferswaitingforfunds):");
    lines.push(
      table(
        ['currency', 'payouts', 'amount', 'most attempts'],
        waitingForFunds.map((w) => [
          w.currency.toUpperCase(),
          w.payouts,
          formatMinor(w.amount_cents, w.currency, w.currency_exponent),
          w.most_attempts,
        ]),
      ),
    );
  }
  if (pastSlo.length) {
    lines.push('', `past their SLO (longest first, at most ${pastSlo.length} shown):`);
    lines.push(
      table(
        ['id', 'status', 'in status', 'SLO', 'retry_count', 'last_error'],
        pastSlo.map((p) => [
          p.id,
          p.status,
          duration(p.seconds_in_status),
          duration(p.slo_seconds),
          p.retry_count,
          oneLineText(p.last_error, 50),
        ]),
      ),
    );
  }
  return lines.join('\n');
}

export function registerStatsCommand(program: Command): void {
  program
    .command('stats')
    .description(
      'whether the fleet is paused, counts per status, rows due now, the row longest in each non-terminal status, and rows past their status SLO',
    )
    .option('--limit <n>', 'list at most this many rows past their SLO', '20')
    .option('--json', 'print { pause, statuses, past_slo, waiting_for_funds } as JSON')
    .action(async (opts: { limit: string; json?: boolean }) => {
      if (!/^\d+$/.test(opts.limit) || Number(opts.limit) > 100_000)
        throw new CliError(`--limit takes a whole number from 0 to 100000, got "${opts.limit}"`, 2);
      const { config, logger } = operatorContext();
      const { statuses, pastSlo, waitingForFunds, pause } = await withOperatorDb(
        config,
        logger,
        (db) =>
          inTransaction(db, async () => ({ ...(await statusStats(db, Number(opts.limit))), pause: await pauseState(db) }), {
            readOnly: true,
          }),
        { statementTimeout: CLI_READ_TIMEOUT },
      );
      if (opts.json) return printJson({ pause, statuses, past_slo: pastSlo, waiting_for_funds: waitingForFunds });
      print(renderStats(statuses, pastSlo, waitingForFunds, pause));
    });
}
