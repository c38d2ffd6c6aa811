import type { Command } from 'commander';
import { migrateDatabase, rollbackTo, appliedMigrations } from '../db/migrate.ts';
import { resolveDatabase } from '../runtime.ts';
import { CliError, cliConfig } from './context.ts';
import { withConnection } from './operator-db.ts';

export function registerMigrateCommand(program: Command): void {
  program
    .command('migrate')
    .description('apply pending migrations (graphile-worker schema, then migrations/committed), or roll back')
    .option('--rollback-to <n>', 'run migrations/rollback/ down scripts until only migrations <= n remain (0 = all)')
    .action(async (opts: { rollbackTo?: string }) => {
      const { config, logger } = cliConfig();
      const db = await resolveDatabase(config, logger);
      try {
        await withConnection(db.url, async () => {}); // an unreachable database: the same one line as every other command
        if (opts.rollbackTo !== undefined) {
          if (!/^\d+$/.test(opts.rollbackTo)) throw new CliError(`--rollback-to takes a migration number (0 or more), got "${opts.rollbackTo}"`, 2);
          const undone = await rollbackTo(db.url, Number(opts.rollbackTo));
          console.log(undone.length ? `rolled back: ${undone.join(', ')}` : 'nothing to roll back');
        } else {
          await migrateDatabase(db.url);
        }
        const applied = await appliedMigrations(db.url);
        console.log(`applied migrations: ${applied.map((m) => m.filename).join(', ') || 'none'}`);
      } finally {
        await db.close();
      }
    });
}
