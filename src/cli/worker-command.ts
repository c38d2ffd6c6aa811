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
      // Listen before anything starts: a signal during start-up still means a graceful stop
      // (Node's default would end the process at once).
      const stopRequested = new Promise<void>((resolve) => {
        const onSignal = (signal: NodeJS.Signals) => {
          logger.info({ signal }, 'signal received');
          resolve();
        };
        process.once('SIGTERM', onSignal);
        process.once('SIGINT', onSignal);
      });
      const runtime = await resolveRuntime(config, logger, { stripe: true });
      try {
        if (opts.migrate) await migrateDatabase(runtime.databaseUrl);
        const worker = await startWorker({ config, logger, databaseUrl: runtime.databaseUrl, stripe: runtime.stripe });
        await Promise.race([
          stopRequested,
          worker.runner.promise.catch((err: unknown) => logger.error({ err }, 'worker crashed')),
        ]);
        await worker.stop();
      } finally {
        await runtime.close();
      }
    });
}
