// Shared plumbing for the benchmarks: run modes and sizes, the result model every figure
// returns, statistics, table printing and progress output.
import Table from 'cli-table3';
import type pg from 'pg';

export type Mode = 'quick' | 'default' | 'full';

export interface Sizes {
  /** Figure 2 (then 1): rows in the enforcement copy table, all pending; the bulk UPDATE changes them all. */
  enforcementRows: number;
  /**
   * Figure 1: rows in the copy table (grown after figure 2 when larger): 90% pending, consumed by
   * the transition runs, 10% failed for the bumps. Must outlast the fastest client.
   */
  singleRowRows: number;
  /** Figure 1: seconds per pgbench run. */
  pgbenchSeconds: number;
  /** Figure 1: repeats (every writer once per repeat, order rotated); ratios are taken per repeat. */
  pgbenchRepeats: number;
  /** Figure 2: measured runs per variant (the UPDATE changes every row of the copy table). */
  bulkRuns: number;
  /** Figure 3: table sizes the hot-path queries are measured at (the table grows between them). */
  hotSizes: number[];
  hotExplainRuns: number;
  hotTimedRuns: number;
  /** Figure 4: reversals per configuration, no-op jobs per run, trickled rows for latency. */
  reversalsAt0ms: number;
  secondsAt100ms: number;
  noopJobs: number;
  trickleRows: number;
  /** Figure 5: reversals per process count, at 0 ms and 100 ms Stripe latency (0 = skip). */
  scaleRowsAt0ms: number;
  scaleRowsAt100ms: number;
  /** Dispatch figure: rows queued (leased, jobs waiting) per measured state, and timed ticks per state. */
  dispatchQueued: number[];
  dispatchTicks: number;
  /** Latency figure: fresh rows inserted one at a time, and seconds of idle CPU measurement. */
  latencyRows: number;
  idleSeconds: number;
}

export function sizesFor(mode: Mode): Sizes {
  if (mode === 'quick') {
    return {
      enforcementRows: 100_000, singleRowRows: 400_000, pgbenchSeconds: 2, pgbenchRepeats: 1,
      bulkRuns: 1,
      hotSizes: [100_000], hotExplainRuns: 15, hotTimedRuns: 100,
      reversalsAt0ms: 300, secondsAt100ms: 1.5, noopJobs: 1000, trickleRows: 30,
      scaleRowsAt0ms: 300, scaleRowsAt100ms: 0,
      dispatchQueued: [0, 1000, 10_000], dispatchTicks: 50, latencyRows: 40, idleSeconds: 8,
    };
  }
  const base: Sizes = {
    enforcementRows: 500_000, singleRowRows: 1_000_000, pgbenchSeconds: 2, pgbenchRepeats: 3,
    bulkRuns: 3,
    hotSizes: [100_000, 1_000_000], hotExplainRuns: 40, hotTimedRuns: 300,
    reversalsAt0ms: 1000, secondsAt100ms: 3, noopJobs: 2000, trickleRows: 100,
    scaleRowsAt0ms: 600, scaleRowsAt100ms: 400,
    dispatchQueued: [0, 1000, 10_000], dispatchTicks: 200, latencyRows: 150, idleSeconds: 20,
  };
  return mode === 'full' ? { ...base, enforcementRows: 1_000_000, hotSizes: [100_000, 1_000_000, 10_000_000] } : base;
}

export interface BenchContext {
  mode: Mode;
  sizes: Sizes;
  /** Maintenance connection string on the server (creates/drops the bench database). */
  adminUrl: string;
  /** The bench database, migrated. */
  url: string;
  dbName: string;
  serverKind: string;
  /** Orchestration pool on the bench database (superuser). */
  pool: pg.Pool;
  /** The pgbench binary, or null (figure 1 then falls back to a node-pg loop). */
  pgbench: string | null;
  /** True when the server's processes are visible in this machine's /proc (CPU attribution). */
  localServer: boolean;
  /**
   * Epoch ms by which the default run should be done (about 14 minutes on the 2-core machine);
   * Infinity for --quick and --full. Figures with repeats trim them (and say so) when behind.
   */
  deadline: number;
}

/** Seconds left before the run's deadline (Infinity when there is none). */
export function secondsLeft(ctx: Pick<BenchContext, 'deadline'>): number {
  return (ctx.deadline - Date.now()) / 1000;
}

/** A target from the issue, judged on one measured number. */
export interface Check {
  figure: string;
  label: string;
  measured: number;
  /** 'bool': measured is 1 (yes) or 0 (no), target 1. */
  unit: 'x' | 'ms' | '%' | 'bool';
  op: '>=' | '<=' | '<';
  target: number;
  met: boolean;
  /** One line: what was compared with what, and what limits it when missed. */
  detail: string;
  /**
   * Processes outside the benchmark used more than NOISY_CPU of a core during the runs behind
   * this number: the verdict could flip on a quiet machine.
   */
  noisy?: boolean;
}

/** "Other processes" CPU (% of one core) above which a measurement is flagged as noisy. */
export const NOISY_CPU = 30;

export function verdictText(c: Pick<Check, 'met' | 'noisy'>): string {
  return `${c.met ? 'yes' : 'no'}${c.noisy ? ' (noisy)' : ''}`;
}

export function check(figure: string, label: string, measured: number, unit: Check['unit'], op: Check['op'], target: number, detail: string): Check {
  const met = Number.isFinite(measured) && (op === '>=' ? measured >= target : op === '<=' ? measured <= target : measured < target);
  return { figure, label, measured, unit, op, target, met, detail };
}

export interface TableSpec {
  title: string;
  head: string[];
  rows: string[][];
}

export interface FigureResult {
  key: string;
  title: string;
  /** Markdown: how it was measured (method, baseline, what "ratio" means). */
  method: string;
  tables: TableSpec[];
  checks: Check[];
  /** Markdown paragraphs: findings, limits, misses explained. */
  notes: string[];
  seconds: number;
  /** Extra bars for the SVG chart (absolute numbers that have no target of their own). */
  chart?: { title: string; unit: string; bars: { label: string; value: number; baseline?: boolean }[] };
  /** Mean CPU (% of one core) used by processes outside the benchmark during the measured windows. */
  otherCpu?: number | null;
  error?: string;
}

// ---------------------------------------------------------------- statistics

export function median(xs: number[]): number {
  return percentile(xs, 50);
}

/** Nearest-rank percentile (p in 0..100) of an unsorted sample; NaN when empty. */
export function percentile(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))]!;
}

export const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

// ---------------------------------------------------------------- formatting

export function fmt(n: number, digits = 0): string {
  if (!Number.isFinite(n)) return 'n/a';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Milliseconds with a precision that suits the magnitude. */
export function ms(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (n < 1) return `${n.toFixed(3)} ms`;
  if (n < 100) return `${n.toFixed(1)} ms`;
  if (n < 10_000) return `${fmt(n)} ms`;
  return `${(n / 1000).toFixed(1)} s`;
}

export function ratio(n: number): string {
  return Number.isFinite(n) ? `${n.toFixed(2)}x` : 'n/a';
}

export function bytes(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} kB`;
  if (n < 1024 ** 3) return `${(n / 1024 / 1024).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

export function rowsLabel(n: number): string {
  if (n >= 1_000_000 && n % 1_000_000 === 0) return `${n / 1_000_000}M`;
  if (n >= 1000 && n % 1000 === 0) return `${n / 1000}k`;
  return String(n);
}

export function targetText(c: Pick<Check, 'op' | 'target' | 'unit'>): string {
  if (c.unit === 'bool') return 'yes';
  const v = c.unit === 'x' ? `${c.target}x` : c.unit === 'ms' ? `${c.target} ms` : `${c.target}%`;
  return `${c.op} ${v}`;
}

export function measuredText(c: Pick<Check, 'measured' | 'unit'> & Partial<Pick<Check, 'target'>>): string {
  if (c.unit === 'bool') return c.measured >= 1 ? 'yes' : 'no';
  // Near the threshold, one more digit so "0.80x" never reads as both met and missed.
  if (c.unit === 'x' && c.target !== undefined && Math.abs(c.measured - c.target) < 0.005) return `${c.measured.toFixed(3)}x`;
  return c.unit === 'x' ? ratio(c.measured) : c.unit === 'ms' ? ms(c.measured) : `${fmt(c.measured, 0)}%`;
}

export function printTable(t: TableSpec): void {
  const table = new Table({ head: t.head, style: { head: [], border: [] } });
  for (const r of t.rows) table.push(r);
  console.log(`\n${t.title}`);
  console.log(table.toString());
}

// ---------------------------------------------------------------- progress

const started = Date.now();

/** Progress on stderr, so stdout carries only the result tables. */
export function progress(message: string): void {
  const s = ((Date.now() - started) / 1000).toFixed(1).padStart(6);
  process.stderr.write(`[bench ${s}s] ${message}\n`);
}

export const sleep = (msec: number) => new Promise<void>((r) => setTimeout(r, msec));

export async function waitUntil<T>(what: string, probe: () => Promise<T | null | undefined | false>, timeoutMs: number, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** A high-resolution stopwatch in milliseconds. */
export function stopwatch(): () => number {
  const t0 = process.hrtime.bigint();
  return () => Number(process.hrtime.bigint() - t0) / 1e6;
}

/** VACUUM and CHECKPOINT so every measured run starts from the same physical state. */
export async function settle(pool: pg.Pool, tables: string[]): Promise<void> {
  for (const t of tables) await pool.query(`vacuum (analyze) ${t}`);
  await pool.query('checkpoint');
}

/**
 * Runs `load` with the table's indexes and unique/primary-key constraints dropped, then
 * recreates them from their own definitions (pg_get_indexdef / pg_get_constraintdef): loading a
 * million rows and building each index once is several times faster than maintaining six
 * btrees row by row, and the indexes end up identical (and freshly built).
 */
export async function withoutIndexes(pool: pg.Pool, table: string, load: () => Promise<void>): Promise<void> {
  const { rows: constraints } = await pool.query<{ name: string; def: string }>(
    `select conname as name, pg_get_constraintdef(oid) as def from pg_constraint
      where conrelid = $1::regclass and contype in ('p', 'u') order by contype, conname`, [table]);
  const { rows: indexes } = await pool.query<{ name: string; def: string }>(
    `select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as def from pg_index i
      where i.indrelid = $1::regclass and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)`, [table]);
  for (const i of indexes) await pool.query(`drop index ${i.name}`);
  for (const c of constraints) await pool.query(`alter table ${table} drop constraint ${JSON.stringify(c.name)}`);
  await load();
  for (const c of constraints) await pool.query(`alter table ${table} add constraint ${JSON.stringify(c.name)} ${c.def}`);
  for (const i of indexes) await pool.query(i.def);
}
