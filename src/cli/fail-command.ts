import type { Command } from 'commander';
import { printAdminResult, runAdminAction } from './admin-action.ts';
import { operatorContext, transferId, withOperatorDb } from './operator-db.ts';

export function registerFailCommand(program: Command): void {
  program
    .command('fail')
    .description('give a transfer up (failed or reversal_pending -> permanently_failed) with the reason as last_error')
    .argument('<id>', 'seller transfer id (UUID)')
    .requiredOption('--reason <text>', 'why (recorded in the history and as last_error)')
    .option('--json', 'print { transfer, event, dispatch, jobs } as JSON')
    .action(async (rawId: string, opts: { reason: string; json?: boolean }) => {
      const id = transferId(rawId);
      const { config, logger } = operatorContext();
      const result = await withOperatorDb(config, logger, (db) => runAdminAction(db, 'fail', id, opts.reason));
      printAdminResult('fail', result, opts.json);
    });
}
