import type { Command } from 'commander';
import { ACTION_USAGE, printAdminResult, reasonOption, requiredReason, runAdminAction } from './admin-action.ts';
import { operatorContext, transferId, withOperatorDb } from './operator-db.ts';

export function registerFailCommand(program: Command): void {
  program
    .command('fail')
    .description(
      'give a transfer up: pending (cancelled before it is paid: pending -> failed -> permanently_failed, both steps in the history), failed or reversal_pending -> permanently_failed; refused while the worker holds the row or its last Stripe request is in doubt',
    )
    .usage(ACTION_USAGE)
    .argument('<id>', 'seller transfer id (UUID)')
    .addOption(reasonOption('recorded in the history and as last_error'))
    .option('--json', 'print { transfer, event, dispatch, jobs } as JSON')
    .action(async (rawId: string, opts: { reason?: string; json?: boolean }) => {
      const id = transferId(rawId);
      const reason = requiredReason(opts.reason);
      const { config, logger } = operatorContext();
      const result = await withOperatorDb(config, logger, (db) => runAdminAction(db, 'fail', id, reason));
      printAdminResult('fail', result, opts.json);
    });
}
