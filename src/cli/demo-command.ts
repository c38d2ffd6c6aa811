// A guided end-to-end run: migrate, start the worker in-process against the Stripe simulator,
// pay a few transfers, refund some, watch the matrix refuse an illegal move, print the history
// and the stats, stop cleanly. Uses the embedded defaults, or DATABASE_URL.
import { randomBytes, randomUUID } from 'node:crypto';
import type { Command } from 'commander';
import type pg from 'pg';
import { appliedMigrations, migrateDatabase } from '../db/migrate.ts';
import { migrationSummary } from './migrate-summary.ts';
import { resolveRuntime } from '../runtime.ts';
import { startWorker } from '../worker/runner.ts';
import { printAdminResult, runAdminAction, type AdminAction } from './admin-action.ts';
import { CliError } from './context.ts';
import { print } from './format.ts';
import { formatMinor } from '../money.ts';
import { detailForPeople } from '../core/refusal.ts';
import { operatorContext, stderrLogger, withCliConnection } from './operator-db.ts';
import { statusStats, transferHistory } from '../core/read-model.ts';
import { renderHistory } from './show-command.ts';
import { renderStats } from './stats-command.ts';
import { namedQueries } from '../db/named-queries.ts';

const sql = namedQueries('src/cli/queries.sql');

/** The payouts, in the currency's minor unit (25.00 USD, 2,500 JPY, 2.500 KWD). */
const AMOUNTS = [2500, 1200, 800];
/** The partial refund, in minor units (5.00 USD). */
const PARTIAL = 500;

async function waitForStatus(
  db: pg.Client,
  ids: string[],
  status: string,
  timeoutMs: number,
): Promise<Array<{ id: string; status: string; stripe_transfer_id: string | null; stripe_reversal_id: string | null }>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const { rows } = await db.query<{ id: string; status: string; stripe_transfer_id: string | null; stripe_reversal_id: string | null }>(
      sql('demo_rows'),
      [ids],
    );
    if (rows.every((r) => r.status === status)) return rows;
    if (Date.now() > deadline) {
      throw new CliError(
        `demo: not every transfer reached ${status} within ${timeoutMs / 1000} s (${rows.map((r) => `${r.id}: ${r.status}`).join(', ')}); see \`seller-transfers show <id>\``,
      );
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function refused(db: pg.Client, what: string, action: AdminAction, id: string, amount?: string): Promise<void> {
  try {
    await runAdminAction(db, action, id, `demo: ${what}`, amount);
  } catch (e) {
    const err = e as { code?: string; message?: string; detail?: string };
    if (err.code !== '23514') throw e;
    print(`  ${what}: refused by the database: ${err.message} [SQLSTATE ${err.code}]`);
    const detail = detailForPeople(err.detail);
    if (detail) print(`    ${detail}`);
    return;
  }
  throw new CliError(`demo: ${what} was accepted, but the matrix should have refused it`);
}

export function registerDemoCommand(program: Command): void {
  program
    .command('demo')
    .description(
      'guided end-to-end run on the embedded defaults (or DATABASE_URL) with the Stripe simulator: pay, refund, refusal, history, stats',
    )
    .option('--timeout <seconds>', 'how long to wait for the worker at each step', '60')
    .option('--currency <code>', 'the currency of the demo payouts, one of marketplace.currencies (usd, jpy, kwd, ...)', 'usd')
    .action(async (opts: { timeout: string; currency: string }) => {
      const timeoutMs = Number(opts.timeout) * 1000;
      if (!/^\d+$/.test(opts.timeout) || timeoutMs <= 0)
        throw new CliError(`--timeout takes a whole number of seconds, got "${opts.timeout}"`, 2);
      if (!/^[A-Za-z]{3}$/.test(opts.currency))
        throw new CliError(`--currency takes a three-letter currency code (usd, jpy, kwd), got "${opts.currency.slice(0, 40)}"`, 2);
      const { config } = operatorContext();
      if (config.NODE_ENV === 'production') throw new CliError('demo writes made-up transfers: refused with NODE_ENV=production', 2);
      if (config.STRIPE_SECRET_KEY?.includes('_live_'))
        throw new CliError('demo refuses a live STRIPE_SECRET_KEY: it would move real money', 2);
      // Logs (runtime, worker) go to stderr, quiet unless LOG_LEVEL asks for them: the demo narrates on stdout.
      const logger = stderrLogger(process.env.LOG_LEVEL ? config.LOG_LEVEL : 'warn', config.LOG_FORMAT);

      const runtime = await resolveRuntime(config, logger, { stripe: true });
      try {
        print(`== 1. migrate ${runtime.databaseUrl.replace(/:[^:@/]*@/, ':***@')}`);
        const before = await appliedMigrations(runtime.databaseUrl);
        await migrateDatabase(runtime.databaseUrl);
        print(`  ${migrationSummary(before, await appliedMigrations(runtime.databaseUrl))}`);
        const currency = await withCliConnection(runtime.databaseUrl, async (db) => {
          const { rows: running } = await db.query<{ hostname: string; pid: number; seen_seconds_ago: number }>(
            sql('demo_running_workers'),
          );
          if (running[0])
            throw new CliError(
              `a worker is running on this database (${running[0].hostname} pid ${running[0].pid}, seen ${running[0].seen_seconds_ago}s ago${running.length > 1 ? `, and ${running.length - 1} more` : ''}): ` +
                'the demo starts its own worker and Stripe simulator, and two workers would race over its payouts. Stop it (Ctrl-C in `npm start`) or set DATABASE_URL to another database',
              2,
            );
          const { rows } = await db.query<{ code: string; exponent: number }>(sql('demo_currency'), [opts.currency]);
          if (!rows[0]) throw new CliError(`--currency ${opts.currency.toUpperCase()} is not in marketplace.currencies`, 2);
          return rows[0];
        });

        print(`== 2. start the worker (Stripe at ${runtime.stripe.apiBase ?? 'api.stripe.com'})`);
        const worker = await startWorker({ config, logger, databaseUrl: runtime.databaseUrl, stripe: runtime.stripe });
        try {
          await withCliConnection(runtime.databaseUrl, async (db) => {
            print(`== 3. a service creates ${AMOUNTS.length} seller transfers (plain INSERTs; they start pending)`);
            const ids: string[] = [];
            // Amounts in the currency's unit, with the exponent the database gives for it.
            const money = (minor: number | string) => formatMinor(minor, currency.code, currency.exponent);
            for (const amount of AMOUNTS) {
              const {
                rows: [row],
              } = await db.query<{ id: string; status: string; currency: string; currency_exponent: number | null }>(sql('demo_insert'), [
                randomUUID(),
                randomUUID(),
                `acct_demo${randomBytes(4).toString('hex')}`,
                amount,
                currency.code,
              ]);
              ids.push(row!.id);
              print(`  ${row!.id}  ${money(amount)}  ${row!.status}`);
            }

            print('== 4. the worker pays them');
            for (const r of await waitForStatus(db, ids, 'completed', timeoutMs)) print(`  ${r.id}  ${r.status}  ${r.stripe_transfer_id}`);

            const [full, partial, kept] = ids as [string, string, string];
            print(`== 5. two orders are refunded: one whole, ${money(PARTIAL)} of another`);
            printAdminResult('reverse', await runAdminAction(db, 'reverse', full, 'demo: order refunded'), false);
            printAdminResult('reverse', await runAdminAction(db, 'reverse', partial, 'demo: partial refund', String(PARTIAL)), false);
            for (const r of await waitForStatus(db, [full, partial], 'reversed', timeoutMs))
              print(`  ${r.id}  ${r.status}  ${r.stripe_reversal_id}`);

            print('== 6. illegal moves are refused by the matrix, whoever asks');
            await refused(db, `reverse ${full} a second time`, 'reverse', full);
            await refused(db, `give up the paid transfer ${kept}`, 'fail', kept);

            print(`== 7. history of ${partial}`);
            print(renderHistory(await transferHistory(db, partial)));

            print('== 8. stats');
            const { statuses, pastSlo } = await statusStats(db, 10);
            print(renderStats(statuses, pastSlo));
            const {
              rows: [totals],
            } = await db.query<{ paid: string; paid_cents: string; reversed: string; reversed_cents: string }>(sql('demo_totals'), [ids]);
            print(
              `  the demo's payouts: paid ${totals!.paid} payout(s), ${money(totals!.paid_cents)}; reversed ${totals!.reversed} payout(s), ${money(totals!.reversed_cents)}`,
            );
          });
        } finally {
          print('== 9. stop the worker');
          await worker.stop();
        }
        print(
          `done. Look around: seller-transfers show <id>, seller-transfers stats${config.DATABASE_URL ? '' : ' (the embedded database keeps the demo rows under DATA_DIR)'}`,
        );
      } finally {
        await runtime.close();
      }
    });
}
