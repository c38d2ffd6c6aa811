// Online migrations: every migration step runs with a short lock_timeout, so it never waits in a
// table's lock queue (where every writer would queue behind it) for longer than that. A step that
// timed out on a lock (SQLSTATE 55P03), or lost a deadlock with a writer (40P01: a migration file may
// raise its own lock_timeout past deadlock_timeout, and graphile-migrate keeps such a SET for the
// rest of the run), was rolled back by PostgreSQL; it is retried with jittered back-off until a
// total time is spent, and the sessions that held the lock are reported.
import { connect } from './connection.ts';
import { namedQueries } from './named-queries.ts';

const sql = namedQueries('src/db/queries.sql');

export interface LockRetryOptions {
  /** lock_timeout of the migrating session, in ms. */
  lockTimeoutMs: number;
  /** Give up (MigrationLockError) when the next attempt would start later than this after the first. */
  retryForMs: number;
  /** One call per lock timeout that will be retried. */
  onRetry?: (event: LockRetryEvent) => void;
}

export interface LockBlocker {
  pid: number;
  user: string | null;
  application: string | null;
  state: string | null;
  /** Seconds since the blocker's transaction (or, outside one, its query) started. */
  ageSeconds: number;
  query: string;
}

export interface LockRetryEvent {
  attempt: number;
  delayMs: number;
  step: string;
  blockers: LockBlocker[];
}

export class MigrationLockError extends Error {
  override name = 'MigrationLockError';
  constructor(
    message: string,
    readonly blockers: LockBlocker[],
  ) {
    super(message);
  }
}

export const LOCK_NOT_AVAILABLE = '55P03';
export const DEADLOCK_DETECTED = '40P01';

/**
 * Watches, from a second connection, which sessions block the backends named `applicationName`
 * while they wait for a lock, and keeps the last non-empty answer: once the wait has timed out,
 * pg_blocking_pids of the migration says nothing any more.
 */
export async function watchBlockers(
  connectionString: string,
  applicationName: string,
  intervalMs = 100,
): Promise<{ last(): LockBlocker[]; stop(): Promise<void> }> {
  const client = await connect(connectionString, { application_name: 'seller-transfers migrate (lock watcher)' });
  let last: LockBlocker[] = [];
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const { rows } = await client.query<LockBlocker>(sql('lock_blockers'), [applicationName]);
        if (rows.length) last = rows;
      } catch {
        return; // the watcher only informs; the migration's own error is what counts
      }
      await sleep(intervalMs);
    }
  })();
  return {
    last: () => last,
    stop: async () => {
      stopped = true;
      await loop;
      await client.end().catch(() => {});
    },
  };
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Full-jitter exponential back-off: uniform in [base/2, base * 2^(attempt-1)] capped at 5 s. */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(5_000, 250 * 2 ** (attempt - 1));
  return Math.round(125 + random() * (ceiling - 125));
}

export function describeBlocker(b: LockBlocker): string {
  return `pid ${b.pid} (user ${b.user ?? '?'}, application "${b.application ?? ''}", ${b.state ?? 'unknown state'} for ${b.ageSeconds} s): ${b.query}`;
}

/**
 * Runs `attempt` (which must leave nothing behind when it fails, as a migration in a rolled-back
 * transaction does) until it succeeds, retrying only lock timeouts and lost deadlocks. `step()` names what was
 * waiting, for the messages (e.g. the first pending migration).
 */
export async function withLockRetry(
  opts: LockRetryOptions & { connectionString: string; applicationName: string; step: () => Promise<string> },
  attempt: () => Promise<void>,
): Promise<void> {
  const started = Date.now();
  for (let n = 1; ; n++) {
    const watcher = await watchBlockers(opts.connectionString, opts.applicationName);
    let error: unknown;
    try {
      await attempt();
      return;
    } catch (e) {
      error = e;
    } finally {
      await watcher.stop();
    }
    const code = (error as { code?: string }).code;
    if (code !== LOCK_NOT_AVAILABLE && code !== DEADLOCK_DETECTED) throw error;
    const blockers = watcher.last();
    const step = await opts.step();
    const delayMs = backoffMs(n);
    if (Date.now() - started + delayMs > opts.retryForMs) {
      const who = blockers.length
        ? `blocked by ${blockers.map(describeBlocker).join('; ')}`
        : 'the blocking session had gone before it could be seen';
      throw new MigrationLockError(
        `migration ${step} could not take its lock within lock_timeout ${opts.lockTimeoutMs} ms in ${n} attempt(s) over ${Math.round((Date.now() - started) / 1000)} s; ${who}`,
        blockers,
      );
    }
    opts.onRetry?.({ attempt: n, delayMs, step, blockers });
    await sleep(delayMs);
  }
}
