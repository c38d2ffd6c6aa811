// Shared plumbing for the benchmarks: run modes and sizes, the result every figure returns,
// statistics, formatting, progress output and the server CPU probe.
import { readFileSync } from 'node:fs';
import Table from 'cli-table3';
import type pg from 'pg';

export type Mode = 'quick' | 'default' | 'full';

export interface Sizes {
  /** Bulk: rows in the copy table, all pending; the UPDATE moves them all. Runs per writer. */
  bulkRows: number;
  bulkRuns: number;
  /** Hot paths: table sizes the queries are measured at (the table grows between them). */
  hotSizes: number[];
  hotExplainRuns: number;
  hotTimedRuns: number;
  /** Dispatch: rows handed out (leased, jobs waiting) per measured state, and timed ticks per state. */
  dispatchQueued: number[];
  dispatchTicks: number;
  /** Adopt: legacy rows adopted per round, and rounds (each: writers alone, then adopt run under them). */
  adoptRows: number;
  adoptRounds: number;
}

export function sizesFor(mode: Mode): Sizes {
  if (mode === 'quick') {
    return {
      bulkRows: 100_000,
      bulkRuns: 1,
      hotSizes: [100_000],
      hotExplainRuns: 15,
      hotTimedRuns: 100,
      dispatchQueued: [0, 1000, 10_000],
      dispatchTicks: 50,
      adoptRows: 100_000,
      adoptRounds: 1,
    };
  }
  const base: Sizes = {
    bulkRows: 500_000,
    bulkRuns: 3,
    hotSizes: [100_000, 1_000_000],
    hotExplainRuns: 40,
    hotTimedRuns: 300,
    dispatchQueued: [0, 1000, 10_000],
    dispatchTicks: 200,
    adoptRows: 1_000_000,
    adoptRounds: 3,
  };
  return mode === 'full' ? { ...base, bulkRows: 1_000_000, hotSizes: [100_000, 1_000_000, 10_000_000] } : base;
}

export interface BenchContext {
  mode: Mode;
  sizes: Sizes;
  /** Maintenance connection string on the server (creates/drops the bench databases). */
  adminUrl: string;
  /** The bench database, migrated. */
  url: string;
  /** Orchestration pool on the bench database (superuser). */
  pool: pg.Pool;
  /** True when the server's processes are visible in this machine's /proc (server CPU per statement). */
  localServer: boolean;
}

export interface TableSpec {
  title: string;
  head: string[];
  rows: string[][];
}

/** A ratio of two variants measured side by side, one sample per round (or repeat). */
export interface Ratio {
  label: string;
  samples: number[];
  /** How a sample reads; a ratio ("1.05x") unless given. */
  format?: (x: number) => string;
}

export interface FigureResult {
  key: string;
  title: string;
  /** Markdown: how it was measured (method, baseline, what "ratio" means). */
  method: string;
  /** The figure's headline ratios, summarised (median, spread) at the top of the report. */
  ratios: Ratio[];
  tables: TableSpec[];
  /** Markdown paragraphs: what the run proved it did (rows changed, history written), findings. */
  notes: string[];
  seconds: number;
  error?: string;
}

// ---------------------------------------------------------------- statistics and formatting

/** Nearest-rank percentile (p in 0..100) of an unsorted sample, NaN ignored; NaN when empty. */
export function percentile(all: number[], p: number): number {
  const s = all.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export const median = (xs: number[]) => percentile(xs, 50);
export const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

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

export const ratio = (n: number) => (Number.isFinite(n) ? `${n.toFixed(2)}x` : 'n/a');

export function bytes(n: number): string {
  if (!Number.isFinite(n)) return 'n/a';
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(0)} kB`;
  return n < 1024 ** 3 ? `${(n / 1024 / 1024).toFixed(1)} MB` : `${(n / 1024 ** 3).toFixed(2)} GB`;
}

export function rowsLabel(n: number): string {
  if (n >= 1_000_000 && n % 1_000_000 === 0) return `${n / 1_000_000}M`;
  if (n >= 1000 && n % 1000 === 0) return `${n / 1000}k`;
  return String(n);
}

/** "median (min–max)" of a sample; just the value for one sample. */
export function spread(all: number[], f: (x: number) => string): string {
  const xs = all.filter((x) => Number.isFinite(x));
  if (xs.length === 0) return 'n/a';
  if (xs.length === 1) return f(xs[0]!);
  return `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})`;
}

/** Per-round ratios a[i] / b[i] (rounds are neighbours in time). */
export const perRound = (a: number[], b: number[]) => a.map((x, i) => x / b[i]!);

export function printTable(t: TableSpec): void {
  const table = new Table({ head: t.head, style: { head: [], border: [] } });
  for (const r of t.rows) table.push(r);
  console.log(`\n${t.title}`);
  console.log(table.toString());
}

// ---------------------------------------------------------------- progress and waiting

const started = Date.now();

/** Progress on stderr, so stdout carries only the result tables. */
export function progress(message: string): void {
  process.stderr.write(`[bench ${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${message}\n`);
}

export const sleep = (msec: number) => new Promise<void>((r) => setTimeout(r, msec));

/** A high-resolution stopwatch in milliseconds. */
export function stopwatch(): () => number {
  const t0 = process.hrtime.bigint();
  return () => Number(process.hrtime.bigint() - t0) / 1e6;
}

// ---------------------------------------------------------------- the server

/** On-CPU nanoseconds of a process (/proc/<pid>/schedstat, field 1), or null when unreadable. */
export function onCpuNs(pid: number): number | null {
  try {
    return Number(readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
}

/** Whether a backend's pid is a postgres process in this machine's /proc. */
export function isLocalPostgres(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
  } catch {
    return false;
  }
}

/** VACUUM and CHECKPOINT so every measured run starts from the same physical state. */
export async function settle(pool: pg.Pool, tables: string[]): Promise<void> {
  for (const t of tables) await pool.query(`vacuum (analyze) ${t}`);
  await pool.query('checkpoint');
}

/**
 * Runs `load` with the table's indexes and unique/primary-key constraints dropped, then
 * recreates them from their own definitions (pg_get_indexdef / pg_get_constraintdef): building
 * each index once after a large load is several times faster, and the indexes end up identical.
 * A key another table's foreign key references stays (it cannot be dropped without that key).
 */
export async function withoutIndexes(pool: pg.Pool, table: string, load: () => Promise<void>): Promise<void> {
  const { rows: constraints } = await pool.query<{ name: string; def: string }>(
    `select conname as name, pg_get_constraintdef(oid) as def from pg_constraint
      where conrelid = $1::regclass and contype in ('p', 'u')
        and not exists (select 1 from pg_constraint f where f.contype = 'f' and f.conindid = pg_constraint.conindid) order by contype, conname`,
    [table],
  );
  const { rows: indexes } = await pool.query<{ name: string; def: string }>(
    `select i.indexrelid::regclass::text as name, pg_get_indexdef(i.indexrelid) as def from pg_index i
      where i.indrelid = $1::regclass and not exists (select 1 from pg_constraint c where c.conindid = i.indexrelid)`,
    [table],
  );
  for (const i of indexes) await pool.query(`drop index ${i.name}`);
  for (const c of constraints) await pool.query(`alter table ${table} drop constraint ${JSON.stringify(c.name)}`);
  try {
    await load();
  } finally {
    for (const c of constraints) await pool.query(`alter table ${table} add constraint ${JSON.stringify(c.name)} ${c.def}`);
    for (const i of indexes) await pool.query(i.def);
  }
}

/**
 * Empties the payouts table between figures. Paid payouts are never truncated (the
 * seller_transfer_kept trigger); the bench runs as a superuser on its own database, so it does
 * what only a superuser can: TRUNCATE with session_replication_role = replica (no trigger fires).
 */
export async function emptyPayoutTables(
  pool: import('pg').Pool,
  tables = 'marketplace.seller_transfers, marketplace.seller_transfer_events',
): Promise<void> {
  await pool.query(`begin; set local session_replication_role = replica; truncate ${tables} cascade; commit`);
}

/**
 * A hand-written copy of marketplace.seller_transfers carries every foreign key the real table
 * has (status and currency): a copy made with LIKE ... INCLUDING ALL has none, and the checks a
 * foreign key costs an INSERT are not the guard's to answer for. One DO statement for `target`.
 */
export const copySellerTransferForeignKeys = (target: string) => `do $$
declare
  c record;
begin
  for c in select pg_get_constraintdef(oid) as def from pg_constraint
            where conrelid = 'marketplace.seller_transfers'::regclass and contype = 'f' order by conname loop
    execute format('alter table ${target} add %s', c.def);
  end loop;
end $$`;
