// The dispatcher: the table is the queue. Every DISPATCH_INTERVAL_MS one call to
// marketplace.dispatch_seller_transfers() turns due rows into graphile-worker jobs (and leases
// them), single-flight across worker processes; graphile-worker then runs them. Writers do
// nothing but write the row. A full batch means more is due: the next tick runs at once.
//
// The database may go away (restart, failover): a failing tick is logged once, when it starts
// failing, and once when it recovers; the loop keeps going with a capped back-off.
import type pg from 'pg';
import type { AppLogger } from '../logger.ts';

export interface DispatchTick { dispatched: number; oldestDueSeconds: number | null }

export interface DispatcherOptions {
  pool: pg.Pool;
  logger: AppLogger;
  intervalMs: number;
  leaseSeconds: number;
  maxWaitingJobs: number;
  onTick?: (tick: DispatchTick) => void;
}

export interface Dispatcher {
  /** Runs one tick now (tests, and a worker's first look at start-up). */
  tick(): Promise<DispatchTick>;
  /** When the last tick succeeded (readiness, metrics). */
  lastSuccess(): Date | undefined;
  stop(): Promise<void>;
}

const MAX_BACKOFF_MS = 5_000;

export function startDispatcher(opts: DispatcherOptions): Dispatcher {
  const { pool, logger } = opts;
  let stopped = false;
  let failingSince: Date | undefined;
  let lastSuccess: Date | undefined;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;

  const tick = async (): Promise<DispatchTick> => {
    // A named (prepared) statement: an idle tick is one Bind/Execute, no parse or plan.
    const { rows: [r] } = await pool.query<{ dispatched: number; oldest_due_seconds: number | null }>({
      name: 'seller-transfers-dispatch',
      text: 'select dispatched, oldest_due_seconds from marketplace.dispatch_seller_transfers($1, $2)',
      values: [opts.maxWaitingJobs, opts.leaseSeconds],
    });
    const result = { dispatched: r?.dispatched ?? 0, oldestDueSeconds: r?.oldest_due_seconds ?? null };
    lastSuccess = new Date();
    opts.onTick?.(result);
    return result;
  };

  const loop = (async () => {
    let backoff = opts.intervalMs;
    while (!stopped) {
      let delay = opts.intervalMs;
      try {
        const { dispatched } = await tick();
        if (failingSince) {
          logger.info({ failingForMs: Date.now() - failingSince.getTime() }, 'dispatch recovered: the database answers again');
          failingSince = undefined;
        }
        backoff = opts.intervalMs;
        if (dispatched > 0) delay = 0; // more may be due: look again at once
      } catch (err) {
        if (!failingSince) {
          failingSince = new Date();
          logger.warn({ err: (err as Error).message }, 'dispatch failing (database unavailable?); retrying quietly until it recovers');
        }
        backoff = Math.min(MAX_BACKOFF_MS, backoff * 2);
        delay = backoff;
      }
      if (stopped) break;
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, delay);
      });
    }
  })();

  return {
    tick,
    lastSuccess: () => lastSuccess,
    async stop() {
      stopped = true;
      if (timer) clearTimeout(timer);
      wake?.();
      await loop;
    },
  };
}
