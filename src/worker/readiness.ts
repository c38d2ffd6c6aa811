// /readyz for the worker: ready only when the database answers within a short timeout, its
// schema is at the migration this build expects, the heartbeat succeeded recently and the
// worker is not stopping. Each failure is one short reason (the 503 body).
import type pg from 'pg';
import { namedQueries } from '../db/named-queries.ts';
import { committedMigrations, migrationNumber } from '../db/migrate.ts';
import type { Heartbeat } from './heartbeat.ts';

const sql = namedQueries('src/worker/queries.sql');

export type Readiness = { ready: true } | { ready: false; reason: string };
export type ReadinessProbe = () => Promise<Readiness>;

export interface ReadinessOptions {
  pool: pg.Pool;
  heartbeat: Pick<Heartbeat, 'lastSuccess'>;
  isStopping: () => boolean;
  /** A heartbeat older than this means the worker is not taking work. */
  maxHeartbeatAgeMs: number;
  /** How long the database may take to answer. */
  timeoutMs?: number;
}

export async function createReadinessProbe(opts: ReadinessOptions): Promise<ReadinessProbe> {
  const expected = Math.max(0, ...(await committedMigrations()).map(migrationNumber));
  const timeoutMs = opts.timeoutMs ?? 2_000;
  return async () => {
    if (opts.isStopping()) return { ready: false, reason: 'worker is stopping' };
    let timer: NodeJS.Timeout | undefined;
    try {
      const query = opts.pool.query<{ latest: string | null }>(sql('readiness'));
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      });
      query.catch(() => {}); // settled after the timeout won: nobody is waiting for it
      const {
        rows: [row],
      } = await Promise.race([query, timeout]);
      const latest = row?.latest ? migrationNumber(row.latest) : 0;
      if (latest !== expected) return { ready: false, reason: `database schema at migration ${latest}, this build expects ${expected}` };
    } catch (e) {
      return { ready: false, reason: `database: ${(e instanceof Error ? e.message : String(e)).split('\n')[0]}` };
    } finally {
      clearTimeout(timer);
    }
    const last = opts.heartbeat.lastSuccess();
    if (!last) return { ready: false, reason: 'no heartbeat recorded yet' };
    const age = Date.now() - last.getTime();
    if (age > opts.maxHeartbeatAgeMs) return { ready: false, reason: `last heartbeat ${Math.round(age / 1000)} s ago` };
    return { ready: true };
  };
}
