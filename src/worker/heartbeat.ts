// The worker's heartbeat: every intervalMs the process records itself in
// marketplace.seller_transfer_worker_heartbeats (doctor: "workers seen recently"), and the last
// success feeds /readyz and the seller_transfers_worker_heartbeat_timestamp_seconds gauge. A
// beat that fails (database down) is logged and retried at the next tick; it never throws.
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import type pg from 'pg';
import { namedQueries } from '../db/named-queries.ts';
import type { AppLogger } from '../logger.ts';

const sql = namedQueries('src/worker/queries.sql');

export interface Heartbeat {
  workerId: string;
  /** Stops the timer, waits for a beat in flight, and records the stop (best effort). */
  stop(): Promise<void>;
  /** When the database last accepted a beat; undefined before the first. */
  lastSuccess(): Date | undefined;
}

export interface HeartbeatOptions {
  intervalMs?: number;
  /** Called after each successful beat with the database's time of it. */
  onBeat?: (at: Date) => void;
}

export const DEFAULT_HEARTBEAT_INTERVAL_MS = 10_000;

export function startHeartbeat(pool: pg.Pool, logger: AppLogger, opts: HeartbeatOptions = {}): Heartbeat {
  const intervalMs = opts.intervalMs ?? DEFAULT_HEARTBEAT_INTERVAL_MS;
  const workerId = `${os.hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  const startedAt = new Date();
  let last: Date | undefined;
  let failing = false;
  let inFlight: Promise<void> = Promise.resolve();

  const beat = (stopping: boolean) =>
    pool.query<{ at: Date }>(sql('heartbeat'), [workerId, os.hostname(), process.pid, startedAt, stopping]).then(
      ({ rows: [row] }) => {
        // Local clock: "how long ago" is measured here, whatever the database clock says.
        last = new Date();
        if (failing) logger.info({ workerId }, 'heartbeat recorded again');
        failing = false;
        opts.onBeat?.(row?.at ?? last);
      },
      (err: unknown) => {
        if (!failing) logger.warn({ err, workerId }, 'heartbeat failed (the database did not answer); retrying');
        failing = true;
      },
    );

  const tick = () => {
    inFlight = inFlight.then(() => beat(false));
  };
  tick();
  const timer = setInterval(tick, intervalMs);
  timer.unref();
  let stopped: Promise<void> | undefined;
  return {
    workerId,
    lastSuccess: () => last,
    stop: () =>
      (stopped ??= (async () => {
        clearInterval(timer);
        await inFlight;
        await beat(true);
      })()),
  };
}
