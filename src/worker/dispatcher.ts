// The dispatcher: the table is the queue. One call to marketplace.dispatch_seller_transfers()
// after another turns due rows into graphile-worker jobs (and leases them), single-flight across
// worker processes; graphile-worker then runs them. Writers do nothing but write the row. With
// nothing due, the call itself waits in the database for up to WAIT_MS, looking every
// DISPATCH_INTERVAL_MS (a few index probes there, no round trip): an idle worker makes about one
// query a second, and a fresh row is seen within the interval.
//
// The database may go away (restart, failover): a failing tick is logged once, when it starts
// failing, and once when it recovers; the loop keeps going with a capped back-off.
import type pg from 'pg';
import { namedQueries } from '../db/named-queries.ts';
import type { AppLogger } from '../logger.ts';

const sql = namedQueries('src/worker/queries.sql');

export interface DispatchTick {
  dispatched: number;
  oldestDueSeconds: number | null;
}

export interface DispatcherOptions {
  pool: pg.Pool;
  logger: AppLogger;
  intervalMs: number;
  leaseSeconds: number;
  maxWaitingJobs: number;
  onTick?: (tick: DispatchTick) => void;
}

export interface Dispatcher {
  /** Runs one call now, waiting up to waitMs (default 0) in the database for due rows. */
  tick(waitMs?: number): Promise<DispatchTick>;
  /** When the last tick succeeded (readiness, metrics). */
  lastSuccess(): Date | undefined;
  stop(): Promise<void>;
}

const MAX_BACKOFF_MS = 5_000;
/** How long one call may wait in the database for due rows (also the longest a stop waits for it). */
const WAIT_MS = 1_000;

export function startDispatcher(opts: DispatcherOptions): Dispatcher {
  const { pool, logger } = opts;
  let stopped = false;
  let failingSince: Date | undefined;
  let lastSuccess: Date | undefined;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;

  // One connection of its own while it waits in the database, so a stop can cancel that wait
  // at once (a graceful stop takes no new work: nothing is dispatched after it begins).
  let client: pg.PoolClient | undefined;
  let waiting = false;

  const tick = async (waitMs = 0): Promise<DispatchTick> => {
    client ??= await pool.connect();
    const c = client;
    waiting = waitMs > 0;
    try {
      // A named (prepared) statement: a call is one Bind/Execute, no parse or plan.
      const {
        rows: [r],
      } = await c.query<{ dispatched: number; oldest_due_seconds: number | null }>({
        name: 'seller-transfers-dispatch',
        text: sql('dispatch'),
        values: [opts.maxWaitingJobs, opts.leaseSeconds, waitMs, opts.intervalMs],
      });
      const result = { dispatched: r?.dispatched ?? 0, oldestDueSeconds: r?.oldest_due_seconds ?? null };
      lastSuccess = new Date();
      opts.onTick?.(result);
      return result;
    } catch (e) {
      // A connection in doubt is not reused.
      client = undefined;
      c.release(e as Error);
      throw e;
    } finally {
      waiting = false;
    }
  };

  const loop = (async () => {
    let backoff = opts.intervalMs;
    while (!stopped) {
      let delay = opts.intervalMs;
      try {
        await tick(WAIT_MS);
        if (failingSince) {
          logger.info({ failingForMs: Date.now() - failingSince.getTime() }, 'dispatch recovered: the database answers again');
          failingSince = undefined;
        }
        backoff = opts.intervalMs;
        delay = 0; // the database did the waiting; and after a batch, more may be due
      } catch (err) {
        if (stopped) break; // the stop cancelled the waiting call
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
      // Cancel a call that is waiting for due rows (a call that is dispatching finishes: its
      // jobs and leases commit together or not at all either way).
      if (client && waiting) {
        // node-postgres keeps the server's process id (BackendKeyData) on the client, untyped.
        const pid = (client as unknown as { processID?: number }).processID;
        if (pid) await pool.query(sql('cancel_backend'), [pid]).catch(() => {});
      }
      await loop;
      client?.release();
      client = undefined;
    },
  };
}
