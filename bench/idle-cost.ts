// Idle cost of a worker process: CPU of the process and of its database backends over a window
// with nothing to do, from /proc; the dispatch function it polls with can be switched between
// migration 000011's (a round reads the table only after a transaction ended or a retry time
// came) and 000007's (five index probes every round), so both are measured in one run,
// interleaved. And the floor: a backend that does nothing but sleep one poll interval at a time.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from '../src/paths/project.ts';
import { processTicks } from './cpu.ts';
import { sleep, type BenchContext } from './lib.ts';

const WORKER_APP = 'seller-transfers-worker';
const HZ = 100; // Linux USER_HZ; cpu.ts reads CLK_TCK, which is 100 on every Linux this runs on
const IDLE_DISPATCH = '000011-idle-dispatch.sql';

export type DispatchVariant = 'idle check (000011)' | 'probes every round (000007)';

export interface IdleCpu {
  variant: DispatchVariant;
  seconds: number;
  worker: number;
  backends: number;
  backendCount: number;
  /** dispatch_seller_transfers calls per second (pg_stat_user_functions). */
  callsPerSecond: number;
  /** Reads of the transfers table per second (index and sequential scans): what the polls cost in probes. */
  scansPerSecond: number;
}

async function workerBackends(ctx: BenchContext): Promise<number[]> {
  const { rows } = await ctx.pool.query<{ pid: number }>(
    `select pid from pg_stat_activity where datname = current_database() and application_name = $1 and backend_type = 'client backend'`, [WORKER_APP]);
  return rows.map((r) => r.pid);
}

async function counters(ctx: BenchContext): Promise<{ calls: number; scans: number }> {
  await ctx.pool.query('select pg_stat_clear_snapshot()');
  const { rows: [r] } = await ctx.pool.query<{ calls: string; scans: string }>(
    `select (select coalesce(sum(calls), 0) from pg_stat_user_functions where funcname = 'dispatch_seller_transfers') as calls,
            (select coalesce(idx_scan, 0) + seq_scan from pg_stat_user_tables where relid = 'marketplace.seller_transfers'::regclass) as scans`);
  return { calls: Number(r!.calls), scans: Number(r!.scans) };
}

/** Installs one of the two dispatch functions (a CREATE OR REPLACE; the worker's next call uses it). */
export async function useDispatch(ctx: BenchContext, variant: DispatchVariant): Promise<void> {
  const dir = variant === 'idle check (000011)' ? 'committed' : 'rollback';
  const sql = readFileSync(path.join(projectRoot, 'migrations', dir, IDLE_DISPATCH), 'utf8').replace(/^--!.*\n/gm, '');
  await ctx.pool.query(`begin; ${sql}; commit; reset lock_timeout`);
}

/** CPU (% of one core) of the worker process and its backends over `seconds`. */
export async function idleCpu(ctx: BenchContext, pid: number, seconds: number, variant: DispatchVariant): Promise<IdleCpu> {
  await useDispatch(ctx, variant);
  await sleep(1500); // the worker's current call (up to 1 s) ends; the next one runs this variant
  const pids0 = await workerBackends(ctx);
  const start = new Map<number, number>(pids0.map((p) => [p, processTicks(p) ?? 0]));
  const w0 = processTicks(pid) ?? 0;
  const c0 = await counters(ctx);
  const t0 = Date.now();
  await sleep(seconds * 1000);
  const elapsed = (Date.now() - t0) / 1000;
  const w1 = processTicks(pid) ?? w0;
  const pids1 = await workerBackends(ctx);
  let backendTicks = 0;
  for (const p of new Set([...pids0, ...pids1])) {
    const now = processTicks(p);
    if (now === null) continue;
    backendTicks += now - (start.get(p) ?? 0); // a backend first seen at the end started inside the window
  }
  await sleep(600); // backends flush their statistics about once a second
  const c1 = await counters(ctx);
  return {
    variant,
    seconds: elapsed,
    worker: (100 * (w1 - w0)) / HZ / elapsed,
    backends: (100 * backendTicks) / HZ / elapsed,
    backendCount: new Set([...pids0, ...pids1]).size,
    callsPerSecond: (c1.calls - c0.calls) / elapsed,
    scansPerSecond: (c1.scans - c0.scans) / elapsed,
  };
}

/** CPU (% of one core) of a backend that only sleeps `intervalMs` at a time for `seconds`: the cost of the wake-ups alone. */
export async function sleepFloor(ctx: BenchContext, seconds: number, intervalMs: number): Promise<number> {
  const c = await ctx.pool.connect();
  try {
    const { rows: [r] } = await c.query<{ pid: number }>(`select pg_backend_pid() as pid`);
    const pid = r!.pid;
    const t0 = processTicks(pid) ?? 0;
    const started = Date.now();
    await c.query(`do $$ declare slept text; begin
                     for i in 1..${Math.round((seconds * 1000) / intervalMs)} loop slept := pg_sleep(${intervalMs / 1000})::text; end loop;
                   end $$`);
    return (100 * ((processTicks(pid) ?? t0) - t0)) / HZ / ((Date.now() - started) / 1000);
  } finally {
    c.release();
  }
}
