import type { Command } from 'commander';
import { ACTION_USAGE, printAdminResult, reasonOption, requiredReason, runAdminAction } from './admin-action.ts';
import { operatorContext, transferId, withOperatorDb } from './operator-db.ts';

export function registerRetryCommand(program: Command): void {
  program
    .command('retry')
    .description("make the worker's next attempt due now (next_retry_at = now()); terminal transfers are refused by the matrix")
    .usage(ACTION_USAGE)
    .argument('<id>', 'seller transfer id (UUID)')
    .addOption(reasonOption('recorded in the history when the status changes'))
    .option('--json', 'print { transfer, event, dispatch, jobs } as JSON')
    .action(async (rawId: string, opts: { reason?: string; json?: boolean }) => {
      const id = transferId(rawId);
      const reason = requiredReason(opts.reason);
      const { config, logger } = operatorContext();
      const result = await withOperatorDb(config, logger, (db) => runAdminAction(db, 'retry', id, reason));
      printAdminResult('retry', result, opts.json);
    });
}
