import type { Command } from 'commander';
import { migrateDatabase, rollbackTo, appliedMigrations } from '../db/migrate.ts';
import { printDryRun } from './migrate-dry-run.ts';
import { migrationSummary } from './migrate-summary.ts';
import { migrateOptions } from './migrate-options.ts';
import { resolveDatabase } from '../runtime.ts';
import { CliError, cliConfig } from './context.ts';
import { withCliConnection } from './operator-db.ts';

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description(
      'apply pending migrations (graphile-worker schema, then migrations/committed) online: short lock_timeout, retried; or roll back',
    )
    .option('--rollback-to <n>', 'run migrations/rollback/ down scripts until only migrations <= n remain (0 = all)')
    .option('--dry-run', 'print the pending migrations and the locks each statement takes, without running them')
    .action(async (opts: { rollbackTo?: string; dryRun?: boolean }) => {
      const { config, logger } = cliConfig();
      const db = await resolveDatabase(config, logger);
      try {
        await withCliConnection(db.url, async () => {}); // an unreachable database: the same one line as every other command
        if (opts.dryRun) {
          if (opts.rollbackTo !== undefined) throw new CliError('--dry-run only shows what `migrate` would apply, not a rollback', 2);
          await printDryRun(db.url, config.MIGRATION_LOCK_TIMEOUT_MS);
          return;
        }
        if (opts.rollbackTo !== undefined) {
          if (!/^\d+$/.test(opts.rollbackTo))
            throw new CliError(`--rollback-to takes a migration number (0 or more), got "${opts.rollbackTo}"`, 2);
          const undone = await rollbackTo(db.url, Number(opts.rollbackTo));
          const left = await appliedMigrations(db.url);
          console.log(
            `${undone.length ? `rolled back: ${undone.join(', ')}` : 'nothing to roll back'} ` +
              `(${left.length ? `${left.length} migration${left.length === 1 ? '' : 's'} applied, the latest ${left.at(-1)!.filename}` : 'no migration applied'})`,
          );
        } else {
          const before = await appliedMigrations(db.url);
          await migrateDatabase(db.url, migrateOptions(config, logger));
          console.log(migrationSummary(before, await appliedMigrations(db.url)));
        }
      } finally {
        await db.close();
      }
    });
}
