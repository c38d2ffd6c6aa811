// The console's chart of payouts and failures per hour reads the closed hours from
// marketplace.seller_transfer_outcome_hours, which the worker keeps: every intervalMs this process
// asks refresh_seller_transfer_outcome_hours to store the hours that became final (one session of
// the fleet does the work, the others return at once), so no console page counts 24 hours of
// history. A refresh that fails (database down, a schema without the table yet) is logged once and
// tried again at the next tick (a lost connection is the runner's to report); it never throws,
// and the console then counts for itself.
import type pg from 'pg';
import { namedQueries } from '../db/named-queries.ts';
import type { AppLogger } from '../logger.ts';

const sql = namedQueries('src/worker/queries.sql');

export const DEFAULT_OUTCOME_HOURS_INTERVAL_MS = 60_000;

export interface OutcomeHours {
  /** Stops the timer and waits for a refresh in flight. */
  stop(): Promise<void>;
}

export interface OutcomeHoursOptions {
  intervalMs?: number;
  /** A lost database connection: not logged here (the runner reports the outage once). */
  isConnectionError?: (err: unknown) => boolean;
}

export function startOutcomeHours(pool: pg.Pool, logger: AppLogger, opts: OutcomeHoursOptions = {}): OutcomeHours {
  const intervalMs = opts.intervalMs ?? DEFAULT_OUTCOME_HOURS_INTERVAL_MS;
  let failing = false;
  let inFlight: Promise<void> = Promise.resolve();
  const refresh = () =>
    pool.query(sql('refresh_outcome_hours')).then(
      () => {
        if (failing) logger.info('hourly outcome counts refreshed again');
        failing = false;
      },
      (err: unknown) => {
        if (!failing && !opts.isConnectionError?.(err))
          logger.warn(
            { err: (err as Error).message },
            'hourly outcome counts could not be refreshed (the console counts for itself); retrying',
          );
        failing = true;
      },
    );
  const tick = () => {
    inFlight = inFlight.then(refresh);
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  return {
    stop: async () => {
      clearInterval(timer);
      await inFlight;
    },
  };
}
