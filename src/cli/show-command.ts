import type { Command } from 'commander';
import { duration, oneLineText, print, printJson, table, timestamp } from './format.ts';
import { inSnapshot, operatorContext, transferId, withOperatorDb } from './operator-db.ts';
import { transferDetail, transferHistory, transferJobs, type HistoryEvent, type TransferDetail, type WorkerJob } from './queries.ts';

export function renderTransfer(t: TransferDetail): string {
  const since = t.status_since ? `${timestamp(t.status_since)} (${duration(t.seconds_in_status)} ago)` : '-';
  const slo = t.slo_seconds === null ? 'none' : `${duration(t.slo_seconds)}${t.past_slo ? ' - PAST SLO' : ''}`;
  const fields: Array<[string, string | number | null]> = [
    ['id', t.id],
    ['status', `${t.status}${t.is_terminal ? ' (terminal)' : ''}: ${t.status_description}`],
    ['in status since', since],
    ['status SLO', slo],
    ['due for the worker now', t.due_now ? 'yes' : 'no'],
    ['amount_cents', `${t.amount_cents} ${t.currency}`],
    ['stripe_account_id', t.stripe_account_id],
    ['stripe_transfer_id', t.stripe_transfer_id],
    ['stripe_reversal_id', t.stripe_reversal_id],
    ['reversal_amount_cents', t.reversal_amount_cents],
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
  return table(['when', 'from', 'to', 'who', 'application', 'why'], history.map((e) => [
    timestamp(e.occurred_at), e.from_status ?? '(created)', e.to_status, e.actor, e.application_name, oneLineText(e.reason, 120),
  ]));
}

export function renderJobs(jobs: WorkerJob[]): string {
  if (!jobs.length) return 'no graphile-worker job for this transfer';
  return table(['task', 'run_at', 'attempts', 'locked_at', 'last_error'], jobs.map((j) => [
    j.task, timestamp(j.run_at), `${j.attempts}/${j.max_attempts}`, j.locked_at ? `${timestamp(j.locked_at)} by ${j.locked_by}` : null,
    oneLineText(j.last_error, 60),
  ]));
}

export function registerShowCommand(program: Command): void {
  program
    .command('show')
    .description('show one transfer: the row, its history (when, who, why), its worker jobs, Stripe ids and retry state')
    .argument('<id>', 'seller transfer id (UUID)')
    .option('--json', 'print { transfer, history, jobs } as JSON')
    .action(async (rawId: string, opts: { json?: boolean }) => {
      const id = transferId(rawId);
      const { config, logger } = operatorContext();
      await withOperatorDb(config, logger, async (db) => {
        const { transfer, history, jobs } = await inSnapshot(db, async () => ({
          transfer: await transferDetail(db, id),
          history: await transferHistory(db, id),
          jobs: await transferJobs(db, id),
        }));
        if (opts.json) return printJson({ transfer, history, jobs });
        print(renderTransfer(transfer));
        print();
        print('history');
        print(renderHistory(history));
        print();
        print('worker jobs');
        print(renderJobs(jobs));
      });
    });
}
