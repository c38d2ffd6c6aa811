// CPU attribution while a figure runs: the machine as a whole (/proc/stat), the PostgreSQL
// processes serving the bench database plus the server's WAL writer / checkpointer / background
// writer, the worker child processes, and this process (simulator + orchestration).
// Reported in "% of one core" (200% = both cores of a 2-core machine fully busy).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type pg from 'pg';

let clockTicks = 0;
function ticksPerSecond(): number {
  if (!clockTicks) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** utime + stime of a process in clock ticks, or null when it is gone or unreadable. */
export function processTicks(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return null;
  }
}

function machineTicks(): { busy: number; total: number } | null {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!;
    const v = line.trim().split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0); // user..steal
    const idle = (v[3] ?? 0) + (v[4] ?? 0); // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return null;
  }
}

/** Which of the given pids exist in this machine's /proc as postgres processes. */
export function isLocalPostgres(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'postgres';
  } catch {
    return false;
  }
}

export interface CpuReport {
  seconds: number;
  /** % of one core. */
  postgres: number | null;
  workers: number;
  /** The simulator process, when it runs in one of its own. */
  sim: number;
  bench: number;
  /** Whole machine, % of one core (cores * 100 = saturated). */
  machine: number | null;
  /** The machine minus everything above: other users' processes (noise). */
  other: number | null;
  cores: number;
}

class Tracked {
  private seen = new Map<number, { first: number; last: number }>();
  add(pid: number, atStart: boolean): void {
    if (this.seen.has(pid)) return;
    const t = processTicks(pid);
    if (t === null) return;
    // A process first seen mid-run started mid-run: all its CPU belongs to the run.
    this.seen.set(pid, { first: atStart ? t : 0, last: t });
  }
  refresh(): void {
    for (const [pid, v] of this.seen) {
      const t = processTicks(pid);
      if (t !== null) v.last = t;
    }
  }
  ticks(): number {
    let n = 0;
    for (const v of this.seen.values()) n += v.last - v.first;
    return n;
  }
}

export class CpuSampler {
  private pg = new Tracked();
  private workers = new Tracked();
  private sims = new Tracked();
  private timer: NodeJS.Timeout | undefined;
  private t0 = 0;
  private machine0: { busy: number; total: number } | null = null;
  private self0: NodeJS.CpuUsage = process.cpuUsage();
  private polling = Promise.resolve();

  constructor(private pool: pg.Pool, private local: boolean, private workerPids: () => number[] = () => [], private simPids: () => number[] = () => []) {}

  /** Most client connections to the bench database seen at once (sampled every second). */
  maxConnections = 0;

  private async postgresPids(): Promise<number[]> {
    const { rows } = await this.pool.query<{ pid: number; ours: boolean }>(
      `select pid, datname = current_database() and backend_type = 'client backend' as ours from pg_stat_activity
        where datname = current_database() or backend_type in ('walwriter', 'checkpointer', 'background writer')`);
    this.maxConnections = Math.max(this.maxConnections, rows.filter((r) => r.ours).length);
    return this.local ? rows.map((r) => r.pid) : [];
  }

  async start(): Promise<void> {
    for (const pid of await this.postgresPids()) this.pg.add(pid, true);
    for (const pid of this.workerPids()) this.workers.add(pid, true);
    for (const pid of this.simPids()) this.sims.add(pid, true);
    this.machine0 = machineTicks();
    this.self0 = process.cpuUsage();
    this.t0 = Date.now();
    let n = 0;
    this.timer = setInterval(() => {
      this.polling = this.polling.then(async () => {
        // New backends are discovered every second; known ones are re-read every tick.
        if (n++ % 4 === 0) for (const pid of await this.postgresPids().catch(() => [])) this.pg.add(pid, false);
        for (const pid of this.workerPids()) this.workers.add(pid, false);
        this.pg.refresh();
        this.workers.refresh();
        this.sims.refresh();
      });
    }, 250);
  }

  async stop(): Promise<CpuReport> {
    clearInterval(this.timer);
    await this.polling;
    this.pg.refresh();
    this.workers.refresh();
    this.sims.refresh();
    const seconds = (Date.now() - this.t0) / 1000;
    const hz = ticksPerSecond();
    const pct = (ticks: number) => (100 * ticks) / hz / seconds;
    const m1 = machineTicks();
    const self = process.cpuUsage(this.self0);
    const cores = os.cpus().length;
    const postgres = this.local ? pct(this.pg.ticks()) : null;
    const workers = pct(this.workers.ticks());
    const sim = pct(this.sims.ticks());
    const bench = (100 * (self.user + self.system)) / 1e6 / seconds;
    const machine = m1 && this.machine0 ? (cores * 100 * (m1.busy - this.machine0.busy)) / Math.max(1, m1.total - this.machine0.total) : null;
    const other = machine !== null && postgres !== null ? Math.max(0, machine - postgres - workers - sim - bench) : null;
    return { seconds, postgres, workers, sim, bench, machine, other, cores };
  }
}

export function cpuText(v: number | null): string {
  return v === null || !Number.isFinite(v) ? 'n/a' : `${v.toFixed(0)}%`;
}

/** Mean of the "other processes" CPU over several measured windows (null when unknown). */
export function meanOther(reports: CpuReport[]): number | null {
  const xs = reports.map((r) => r.other).filter((x): x is number => x !== null);
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null;
}

/**
 * Who had the CPU during a window: 'ours' when the machine was saturated and the benchmark's
 * own processes used most of it, 'others' when it was saturated by something else (the
 * numbers are then CPU-starved lower bounds), 'busy' when it was mostly but not fully used,
 * 'none' when there was plenty to spare.
 */
export function cpuVerdict(r: CpuReport): 'ours' | 'others' | 'busy' | 'none' | 'unknown' {
  if (r.machine === null || r.postgres === null) return 'unknown';
  const cap = r.cores * 100;
  if (r.machine < 0.6 * cap) return 'none';
  if (r.machine < 0.85 * cap) return 'busy';
  return (r.other ?? 0) > 0.35 * cap ? 'others' : 'ours';
}
