import type { Command } from 'commander';
import { migrateDatabase } from '../db/migrate.ts';
import { resolveRuntime } from '../runtime.ts';
import { startWorker } from '../worker/runner.ts';
import { cliConfig } from './context.ts';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run the worker: migrate if needed, then process transfers, retries and reversals until SIGTERM/SIGINT')
    .option('--no-migrate', 'do not apply pending migrations first')
    .action(async (opts: { migrate: boolean }) => {
      const { config, logger } = cliConfig();
      const runtime = await resolveRuntime(config, logger, { stripe: true });
      try {
        if (opts.migrate) await migrateDatabase(runtime.databaseUrl);
        const worker = await startWorker({ config, logger, databaseUrl: runtime.databaseUrl, stripe: runtime.stripe });
        await new Promise<void>((resolve) => {
          const onSignal = (signal: NodeJS.Signals) => {
            logger.info({ signal }, 'signal received');
            resolve();
          };
          process.once('SIGTERM', onSignal);
          process.once('SIGINT', onSignal);
          worker.runner.promise.then(resolve, (err) => {
            logger.error({ err }, 'worker crashed');
            resolve();
          });
        });
        await worker.stop();
      } finally {
        await runtime.close();
      }
    });
}
