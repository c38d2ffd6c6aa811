import type { Command } from 'commander';
import { parseMajor } from '../money.ts';
import { ACTION_USAGE, printAdminResult, reasonOption, requiredReason, runAdminAction } from './admin-action.ts';
import { CliError } from './context.ts';
import { operatorContext, transferId, withOperatorDb } from './operator-db.ts';
import { transferDetail } from '../core/read-model.ts';

export function registerReverseCommand(program: Command): void {
  program
    .command('reverse')
    .description(
      'request the reversal of a paid transfer (completed -> reversal_pending); the worker creates the Stripe reversal. ' +
        'A payout carries one reversal (reversed is terminal): a second refund is refused',
    )
    .usage(ACTION_USAGE)
    .argument('<id>', 'seller transfer id (UUID)')
    .option(
      '--amount <amount>',
      "reverse only this much, written in the transfer's currency as a person would: " +
        '12.50 for USD, 500 for JPY (no decimals: zero-decimal), 1.250 for KWD (three decimals); ' +
        'the decimals come from marketplace.currencies. Default: the whole transfer',
    )
    .addOption(reasonOption('recorded in the history'))
    .option('--json', 'print { transfer, event, dispatch, jobs } as JSON')
    .action(async (rawId: string, opts: { amount?: string; reason?: string; json?: boolean }) => {
      const id = transferId(rawId);
      const reason = requiredReason(opts.reason);
      const { config, logger } = operatorContext();
      const result = await withOperatorDb(config, logger, async (db) => {
        let minor: string | undefined;
        if (opts.amount !== undefined) {
          // The row's currency says how to read the amount; whether it fits is the database's call.
          const t = await transferDetail(db, id);
          const parsed = parseMajor(opts.amount, t.currency, t.currency_exponent);
          if ('error' in parsed) throw new CliError(`--amount ${parsed.error}`, 2);
          minor = parsed.minor;
        }
        return runAdminAction(db, 'reverse', id, reason, minor);
      });
      printAdminResult('reverse', result, opts.json);
    });
}
