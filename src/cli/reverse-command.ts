import type { Command } from 'commander';
import { printAdminResult, runAdminAction } from './admin-action.ts';
import { operatorContext, transferId, wholeCents, withOperatorDb } from './operator-db.ts';

export function registerReverseCommand(program: Command): void {
  program
    .command('reverse')
    .description('request the reversal of a paid transfer (completed -> reversal_pending); the worker creates the Stripe reversal')
    .argument('<id>', 'seller transfer id (UUID)')
    .option('--amount <cents>', 'reverse only this many cents (0 < amount <= amount_cents); default: the whole transfer')
    .requiredOption('--reason <text>', 'why (recorded in the history)')
    .option('--json', 'print { transfer, event, dispatch, jobs } as JSON')
    .action(async (rawId: string, opts: { amount?: string; reason: string; json?: boolean }) => {
      const id = transferId(rawId);
      const amount = opts.amount === undefined ? undefined : wholeCents(opts.amount, '--amount');
      const { config, logger } = operatorContext();
      const result = await withOperatorDb(config, logger, (db) => runAdminAction(db, 'reverse', id, opts.reason, amount));
      printAdminResult('reverse', result, opts.json);
    });
}
