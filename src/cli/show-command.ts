import type { Command } from 'commander';
import {
  transferDetail,
  transferDispatch,
  transferHistory,
  transferJobs,
  type HistoryEvent,
  type TransferDetail,
  type WorkerJob,
} from '../core/read-model.ts';
import { eventWho, renderDispatch } from '../core/transfer-text.ts';
import { formatMinor } from '../money.ts';
import { duration, oneLineText, print, printJson, table, timestamp } from './format.ts';
import { CLI_READ_TIMEOUT, operatorContext, transferId, withOperatorDb } from './operator-db.ts';
import { inTransaction } from '../db/connection.ts';

export function renderTransfer(t: TransferDetail): string {
  const since = t.status_since ? `${timestamp(t.status_since)} (${duration(t.seconds_in_status)} ago)` : '-';
  const slo = t.slo_seconds === null ? 'none' : `${duration(t.slo_seconds)}${t.past_slo ? ' - PAST SLO' : ''}`;
  const fields: Array<[string, string | number | null]> = [
    ['id', t.id],
    ['status', `${t.status}${t.is_terminal ? ' (terminal)' : ''}: ${t.status_description}`],
    ['in status since', since],
    ['status SLO', slo],
    ['due for the worker now', t.due_now ? 'yes' : 'no'],
    ['operator actions', t.admin_actions.length ? t.admin_actions.join(', ') : 'none'],
    ['amount', `${formatMinor(t.amount_cents, t.currency, t.currency_exponent)} (amount_cents ${t.amount_cents})`],
    ['source_transaction', t.source_transaction ?? "none: paid from the platform's available balance"],
    ['stripe_account_id', t.stripe_account_id],
    ['stripe_transfer_id', t.stripe_transfer_id],
    ['stripe_reversal_id', t.stripe_reversal_id],
    [
      'reversal amount',
      t.reversal_amount_cents === null
        ? null
        : `${formatMinor(t.reversal_amount_cents, t.currency, t.currency_exponent)} (reversal_amount_cents ${t.reversal_amount_cents})`,
    ],
    ['retry_count', t.retry_count],
    ['next_retry_at', t.next_retry_at ? timestamp(t.next_retry_at) : null],
    ['last_error', t.last_error ? oneLineText(t.last_error, 200) : null],
    ['order_id', t.order_id],
    ['seller_id', t.seller_id],
    ['created_at', timestamp(t.created_at)],
    ['updated_at', timestamp(t.updated_at)],
  ];
  const width = Math.max(...fields.map(([k]) => k.length));
  return fields.map(([k, v]) => `${k.padEnd(width)}  ${v === null || v === undefined ? '-' : v}`).join('\n');
}

export function renderHistory(history: HistoryEvent[]): string {
  return table(
    ['when', 'from', 'to', 'who', 'application', 'why'],
    history.map((e) => [
      timestamp(e.occurred_at),
      e.from_status ?? '(created)',
      e.to_status,
      eventWho(e),
      e.application_name,
      oneLineText(e.reason, 120),
    ]),
  );
}

export function renderJobs(jobs: WorkerJob[]): string {
  if (!jobs.length) return 'no graphile-worker job for this transfer';
  return table(
    ['job', 'task', 'run_at', 'lease', 'attempts', 'locked_at', 'last_error'],
    jobs.map((j) => [
      j.job_id,
      j.task,
      timestamp(j.run_at),
      j.lease ? timestamp(j.lease) : null,
      `${j.attempts}/${j.max_attempts}`,
      j.locked_at ? `${timestamp(j.locked_at)} by ${j.locked_by}` : null,
      oneLineText(j.last_error, 60),
    ]),
  );
}

export function registerShowCommand(program: Command): void {
  program
    .command('show')
    .description('show one transfer: the row, its history (when, who, why), its dispatch state and worker job, Stripe ids and retry state')
    .argument('<id>', 'seller transfer id (UUID)')
    .option('--json', 'print { transfer, history, dispatch, jobs } as JSON')
    .action(async (rawId: string, opts: { json?: boolean }) => {
      const id = transferId(rawId);
      const { config, logger } = operatorContext();
      await withOperatorDb(
        config,
        logger,
        async (db) => {
          const { transfer, history, dispatch, jobs } = await inTransaction(
            db,
            async () => ({
              transfer: await transferDetail(db, id),
              history: await transferHistory(db, id),
              dispatch: await transferDispatch(db, id),
              jobs: await transferJobs(db, id),
            }),
            { readOnly: true },
          );
          if (opts.json) return printJson({ transfer, history, dispatch, jobs });
          print(renderTransfer(transfer));
          print();
          print('history');
          print(renderHistory(history));
          print();
          print('worker');
          for (const line of renderDispatch(dispatch)) print(`dispatch: ${line}`);
          print(renderJobs(jobs));
        },
        { statementTimeout: CLI_READ_TIMEOUT },
      );
    });
}
