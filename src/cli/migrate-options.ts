// The lock timeout and retry budget of `migrate` (and `worker --migrate`) from the configuration,
// with one warning per lock timeout naming the sessions that held the lock.
import type { Config } from '../config.ts';
import { describeBlocker } from '../db/lock-retry.ts';
import type { MigrateOptions } from '../db/migrate.ts';
import type { AppLogger } from '../logger.ts';

export function migrateOptions(config: Config, logger: AppLogger): MigrateOptions {
  return {
    lockTimeoutMs: config.MIGRATION_LOCK_TIMEOUT_MS,
    retryForMs: config.MIGRATION_LOCK_RETRY_SECONDS * 1000,
    onRetry: (e) =>
      logger.warn(
        { step: e.step, attempt: e.attempt, retryInMs: e.delayMs, blockers: e.blockers },
        `migration ${e.step} timed out waiting for a lock (lock_timeout ${config.MIGRATION_LOCK_TIMEOUT_MS} ms), retrying in ${e.delayMs} ms; ` +
          (e.blockers.length ? `held by ${e.blockers.map(describeBlocker).join('; ')}` : 'blocker not seen'),
      ),
    onInvalidIndexDropped: (index) =>
      logger.warn({ index }, `dropped the invalid index ${index} an interrupted concurrent build left; the migration builds it again`),
  };
}
