import type { Command } from 'commander';
import { migrateDatabase } from '../db/migrate.ts';
import { migrateOptions } from './migrate-options.ts';
import { resolveRuntime } from '../runtime.ts';
import { isDatabaseConnectionError, startWorker, type WorkerHandle } from '../worker/runner.ts';
import { cliConfig } from './context.ts';

export function registerWorkerCommand(program: Command): void {
  program
    .command('worker')
    .description('run the worker: migrate if needed, then process transfers, retries and reversals until SIGTERM/SIGINT')
    .option('--no-migrate', 'do not apply pending migrations first')
    .action(async (opts: { migrate: boolean }) => {
      const { config, logger } = cliConfig();
      // Listen before anything starts: a signal during start-up still means a graceful stop
      // (Node's default would end the process at once). Later signals change nothing and must
      // not end the process half-way either: a Ctrl-C under `npm start` arrives twice (from the
      // terminal to the process group, and forwarded by npm), and a supervisor may repeat its
      // SIGTERM. The hard stop is SIGKILL.
      let stopping = false;
      const stopRequested = new Promise<void>((resolve) => {
        const onSignal = (signal: NodeJS.Signals) => {
          if (stopping) return logger.debug({ signal }, 'signal received again: already stopping');
          stopping = true;
          logger.info({ signal }, 'signal received');
          resolve();
        };
        process.on('SIGTERM', onSignal);
        process.on('SIGINT', onSignal);
      });
      // Last resort, for a promise some library leaves unawaited (graphile-worker's job
      // completion did, unbatched): a lost database connection there is part of an outage the
      // worker recovers from (logged once, with the rest of it); anything else is a bug, and the
      // process stops as Node would have stopped it, only gracefully and saying why.
      let worker: WorkerHandle | undefined;
      let fatal: ((err: unknown) => void) | undefined;
      const crashed = new Promise<void>((resolve) => {
        fatal = (err) => {
          logger.fatal({ err }, 'unhandled promise rejection (a bug): stopping the worker');
          process.exitCode = 1;
          resolve();
        };
      });
      process.on('unhandledRejection', (reason) => {
        if (isDatabaseConnectionError(reason)) {
          if (worker) worker.noteDatabaseError('unhandled rejection', reason);
          else logger.warn({ err: (reason as Error)?.message ?? String(reason) }, 'database connection error during start-up');
        } else fatal?.(reason);
      });
      const runtime = await resolveRuntime(config, logger, { stripe: true, recordSimulator: true, announceReuse: true });
      try {
        if (opts.migrate) await migrateDatabase(runtime.databaseUrl, migrateOptions(config, logger));
        worker = await startWorker({ config, logger, databaseUrl: runtime.databaseUrl, stripe: runtime.stripe });
        // graphile-worker's runner is restarted in-process if it ends (see startWorker); the
        // worker runs until a signal, or a bug.
        await Promise.race([stopRequested, crashed]);
        await worker.stop();
      } finally {
        await runtime.close();
      }
    });
}
