import type { Command } from 'commander';
import { simulatorRecordPath, stripeOfRunningWorker } from '../runtime.ts';
import { createStripeClient } from '../stripe/client.ts';
import { CliError } from './context.ts';
import { oneLineText, print, printJson, table } from './format.ts';
import { operatorContext, parseSince, withOperatorDb } from './operator-db.ts';
import { reconcile, type ReconcileReport } from './reconcile.ts';

/** Exit code when disagreements remain (like diff: 0 = same, non-zero = different). */
export const DISAGREEMENT_EXIT_CODE = 3;

function render(r: ReconcileReport): string {
  const lines: string[] = [];
  const scope = r.since
    ? `${r.checked.rows} rows (created since ${r.since}, or named by a Stripe transfer since then)`
    : `all ${r.checked.rows} rows`;
  lines.push(
    `checked ${scope} against ${r.checked.stripe_transfers} Stripe transfers` +
      `${r.checked.stripe_transfers_ignored ? ` (${r.checked.stripe_transfers_ignored} not ours, ignored)` : ''}` +
      ` and ${r.checked.reversal_lists} reversal lists`,
  );
  if (!r.disagreements.length) {
    lines.push('the database and Stripe agree');
    return lines.join('\n');
  }
  lines.push(
    table(
      ['kind', 'seller transfer', 'status', 'stripe', 'detail', 'fix'],
      r.disagreements.map((d) => [d.kind, d.transfer_id, d.row_status, d.stripe_id, oneLineText(d.detail, 90), oneLineText(d.fix, 90)]),
    ),
  );
  lines.push(
    `${r.disagreements.length} disagreement(s), ${r.fixed} fixed, ${r.remaining} remaining` +
      (!r.fix && r.disagreements.some((d) => d.fix.startsWith('would')) ? '; run with --fix to adopt what Stripe proves' : ''),
  );
  return lines.join('\n');
}

export function registerReconcileCommand(program: Command): void {
  program
    .command('reconcile')
    .description(
      'compare the database with Stripe and list every disagreement; --fix adopts what Stripe proves ' +
        `(exit code ${DISAGREEMENT_EXIT_CODE} while disagreements remain)`,
    )
    .option('--since <date>', 'only rows created since this ISO date/time (and Stripe transfers created since then)')
    .option('--fix', 'adopt transfers and reversals that Stripe has but the rows do not record (nothing else is changed)')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { since?: string; fix?: boolean; json?: boolean }) => {
      const since = opts.since === undefined ? null : parseSince(opts.since);
      const { config, logger } = operatorContext();
      const stripe = stripeOfRunningWorker(config, logger);
      if (!stripe) {
        throw new CliError(
          config.DATABASE_URL
            ? 'reconcile needs the Stripe to compare with: set STRIPE_SECRET_KEY (or STRIPE_API_BASE for a Stripe-compatible server)'
            : `reconcile needs the Stripe to compare with: no STRIPE_SECRET_KEY, and no worker of this checkout is running the Stripe simulator ` +
                `(its record: ${simulatorRecordPath(config)}): start \`npm start\`, or set STRIPE_SECRET_KEY (or STRIPE_API_BASE for a Stripe-compatible server)`,
          2,
        );
      }
      const report = await withOperatorDb(config, logger, (db) => reconcile(db, createStripeClient(stripe), { since, fix: !!opts.fix }));
      if (opts.json) printJson(report);
      else print(render(report));
      if (report.remaining > 0) process.exitCode = DISAGREEMENT_EXIT_CODE;
    });
}
