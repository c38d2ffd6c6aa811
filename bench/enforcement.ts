// Figure 1: single-row transactions per second on the 1M-row copy table, at 2 and 8 clients,
// with pgbench and custom scripts, for three writers of the same change:
//
//   plain         the UPDATE alone, no user triggers (what the row costs)
//   hand-written  no user triggers, one statement that updates the row AND inserts its history
//                 row (WITH u AS (UPDATE ... RETURNING) INSERT INTO seller_transfer_events ...)
//   real          the UPDATE alone, with marketplace.seller_transfers' own triggers on the copy
//   no-write-once real without the write-once trigger (what that rule costs on its own)
//   checks        the guard before migration 000010 (couplings as CHECKs, no write-once)
//
// Status changes (pending -> failed, completed -> reversal_pending, pending -> completed, each
// with the coupling columns it needs): target real >= 0.90x of hand-written. Same-state
// bumps that move next_retry_at (what the worker and the dispatcher write), with and without
// `status = status` in the SET list: nothing to record, target real >= 0.95x of plain.
//
// Every transaction touches a row no other transaction of the run touched: row k = lo + (base +
// client_id * stride + n) % size, where n counts the client's transactions (pgbench variables
// persist across a client's transactions) and base advances from run to run. Checked after each
// run: rows that changed (status counts, or sum(retry_count) for bumps) = transactions
// processed, and history rows = status changes.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { CpuSampler, cpuText, meanOther, type CpuReport } from './cpu.ts';
import { COPY, describeRealVariant, extendCopy, handWritten, idOf, resetSideTables, setVariant, type Variant } from './copy-table.ts';
import {
  check, fmt, median, ms, NOISY_CPU, progress, ratio, rowsLabel, secondsLeft, settle, sleep, stopwatch, sum,
  type BenchContext, type Check, type FigureResult,
} from './lib.ts';

type Writer = 'plain' | 'hand-written' | 'real' | 'no-write-once' | 'checks';
type Pool = 'pending' | 'completed' | 'failed';

interface Case {
  key: string;
  label: string;
  pool: Pool;
  /** The status rows leave (status changes), or null for same-state bumps. */
  from: string | null;
  /** The UPDATE for row k (a SQL expression yielding the row number as text). */
  update: (k: string) => string;
  /** What counts the changed rows: a status whose count grows, or retries. */
  counter: 'failed' | 'reversal_pending' | 'completed' | 'retries';
}

const CASES: Case[] = [
  {
    key: 'pending-failed', label: 'pending -> failed', pool: 'pending', from: 'pending', counter: 'failed',
    update: (k) => `update ${COPY} set status = 'failed', retry_count = retry_count + 1, next_retry_at = now() + interval '1 hour', last_error = 'bench: transfer attempt failed', updated_at = now() where id = ${idOf(k)} and status = 'pending'`,
  },
  {
    key: 'completed-reversal', label: 'completed -> reversal_pending', pool: 'completed', from: 'completed', counter: 'reversal_pending',
    update: (k) => `update ${COPY} set status = 'reversal_pending', updated_at = now() where id = ${idOf(k)} and status = 'completed'`,
  },
  {
    key: 'pending-completed', label: 'pending -> completed', pool: 'pending', from: 'pending', counter: 'completed',
    update: (k) => `update ${COPY} set status = 'completed', stripe_transfer_id = 'tr_b' || ${k}, next_retry_at = null, updated_at = now() where id = ${idOf(k)} and status = 'pending'`,
  },
  {
    key: 'bump-status', label: 'failed bump, SET status = status', pool: 'failed', from: null, counter: 'retries',
    update: (k) => `update ${COPY} set status = status, retry_count = retry_count + 1, next_retry_at = now() + interval '1 hour', updated_at = now() where id = ${idOf(k)} and status = 'failed'`,
  },
  {
    key: 'bump', label: 'failed bump, status not in SET', pool: 'failed', from: null, counter: 'retries',
    update: (k) => `update ${COPY} set retry_count = retry_count + 1, next_retry_at = now() + interval '1 hour', updated_at = now() where id = ${idOf(k)} and status = 'failed'`,
  },
];

const writersOf = (c: Case): Writer[] => (c.from ? ['plain', 'hand-written', 'real', 'no-write-once', 'checks'] : ['plain', 'real', 'no-write-once', 'checks']);
const baselineOf = (c: Case): Writer => (c.from ? 'hand-written' : 'plain');
/** Status changes must stay within 10 % of writing the history row by hand, bumps within 5 % of plain. */
const targetOf = (c: Case): number => (c.from ? 0.9 : 0.95);
const variantOf = (w: Writer): Variant => (w === 'hand-written' ? 'plain' : w);

function statement(c: Case, w: Writer, k: string): string {
  return w === 'hand-written' ? handWritten(c.update(k), c.from!) : c.update(k);
}

function pgbenchScript(c: Case, w: Writer): string {
  return `\\set n :n + 1\n\\set k :lo + ((:base + :client_id * :stride + :n) % :size)\n${statement(c, w, ':k::text').replace(/\n/g, ' ')};\n`;
}

interface RunResult { tps: number; processed: number; failed: number; latencyMs: number; changed: number; events: number; cpu?: CpuReport }

interface RunSpec { c: Case; w: Writer; clients: number; seconds: number; defines: Record<string, number> }

async function runPgbench(ctx: BenchContext, dir: string, spec: RunSpec, running: { pid?: number } = {}): Promise<Omit<RunResult, 'changed' | 'events'>> {
  const file = path.join(dir, `${spec.c.key}-${spec.w}.sql`);
  await writeFile(file, pgbenchScript(spec.c, spec.w));
  const args = ['-n', '-M', 'prepared', '-c', String(spec.clients), '-j', String(Math.min(spec.clients, os.cpus().length)),
    '-T', String(spec.seconds), ...Object.entries(spec.defines).flatMap(([k, v]) => ['-D', `${k}=${v}`]), '-f', file, ctx.url];
  const out = await new Promise<string>((resolve, reject) => {
    const child = spawn(ctx.pgbench!, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    running.pid = child.pid;
    let text = '';
    child.stdout.on('data', (d: Buffer) => (text += d));
    child.stderr.on('data', (d: Buffer) => (text += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(text) : reject(new Error(`pgbench exited ${code}: ${text.slice(-2000)}`))));
  });
  const num = (re: RegExp) => Number(re.exec(out)?.[1] ?? NaN);
  return {
    tps: num(/tps = ([\d.]+) \(without initial connection time\)/),
    processed: num(/number of transactions actually processed: (\d+)/),
    failed: num(/number of failed transactions: (\d+)/) || 0,
    latencyMs: num(/latency average = ([\d.]+) ms/),
  };
}

/** The same workload through node-postgres clients, when no pgbench binary is available. */
async function runNodeLoop(ctx: BenchContext, spec: RunSpec): Promise<Omit<RunResult, 'changed' | 'events'>> {
  const clients = await Promise.all(Array.from({ length: spec.clients }, async () => {
    const c = new pg.Client({ connectionString: ctx.url, application_name: 'seller-transfers-bench-loop' });
    await c.connect();
    return c;
  }));
  const latencies: number[] = [];
  let failed = 0;
  const t = stopwatch();
  const deadline = Date.now() + spec.seconds * 1000;
  const d = spec.defines;
  await Promise.all(clients.map(async (c, clientId) => {
    for (let n = 1; Date.now() < deadline; n++) {
      const k = d.lo! + ((d.base! + clientId * d.stride! + n) % d.size!);
      const q = stopwatch();
      try {
        await c.query({ name: `${spec.c.key}-${spec.w}`, text: statement(spec.c, spec.w, '$1::text'), values: [k] });
        latencies.push(q());
      } catch {
        failed++;
      }
    }
  }));
  const elapsed = t() / 1000;
  await Promise.all(clients.map((c) => c.end()));
  return { tps: latencies.length / elapsed, processed: latencies.length, failed, latencyMs: sum(latencies) / latencies.length };
}

type Counters = Record<Case['counter'], number>;

async function counters(pool: pg.Pool): Promise<Counters> {
  const { rows: [r] } = await pool.query<Record<string, string>>(
    `select count(*) filter (where status = 'failed') as failed, count(*) filter (where status = 'reversal_pending') as reversal_pending,
            count(*) filter (where status = 'completed') as completed, coalesce(sum(retry_count), 0) as retries from ${COPY}`);
  return { failed: Number(r!.failed), reversal_pending: Number(r!.reversal_pending), completed: Number(r!.completed), retries: Number(r!.retries) };
}

interface StatementCost { exec: number; walRecords: number; triggers: string }

/**
 * Server-side cost of one single-row statement: EXPLAIN ANALYZE of `n` of them (rows k0..k0+n)
 * in one transaction that is rolled back (no commit, no client), median execution time. The
 * first six are not counted (function compilation, plpgsql's first custom plans).
 */
async function statementCost(ctx: BenchContext, c: Case, w: Writer, k0: number, n: number): Promise<StatementCost> {
  const client = new pg.Client({ connectionString: ctx.url, application_name: 'seller-transfers-bench' });
  await client.connect();
  const exec: number[] = [];
  const wal: number[] = [];
  const triggers = new Map<string, number[]>();
  try {
    await client.query('begin');
    for (let i = 0; i < n + 6; i++) {
      const { rows } = await client.query(`explain (analyze, wal, format json) ${statement(c, w, `'${k0 + i}'`)}`);
      const e = (rows[0]['QUERY PLAN'] as { 'Execution Time': number; Plan: { 'WAL Records'?: number }; Triggers?: { 'Trigger Name': string; Time: number; Calls: number }[] }[])[0]!;
      if (i < 6) continue;
      exec.push(e['Execution Time']);
      wal.push(e.Plan['WAL Records'] ?? NaN);
      for (const t of e.Triggers ?? []) triggers.set(t['Trigger Name'], [...(triggers.get(t['Trigger Name']) ?? []), t.Time]);
    }
    await client.query('rollback');
  } finally {
    await client.end();
  }
  return {
    exec: median(exec), walRecords: median(wal),
    triggers: [...triggers].map(([name, xs]) => `${name.replace(/^RI_ConstraintTrigger.*/, 'status FK')} ${ms(median(xs))}`).join(', ') || '-',
  };
}

const spread = (xs: number[], f: (x: number) => string) => (xs.length > 1 ? `${f(Math.min(...xs))}–${f(Math.max(...xs))}` : f(xs[0] ?? NaN));

export async function enforcementFigure(ctx: BenchContext): Promise<FigureResult> {
  const { pool, sizes } = ctx;
  const rows = sizes.singleRowRows;
  if (rows > sizes.enforcementRows) {
    progress(`enforcement: growing bench.transfers to ${rowsLabel(rows)} rows`);
    await setVariant(pool, 'plain');
    await extendCopy(pool, sizes.enforcementRows + 1, rows);
  }
  // Row pools: 50% pending (pending -> failed / completed), 30% completed (-> reversal_pending), 20% failed (bumps).
  const ranges: Record<Pool, { lo: number; size: number }> = {
    pending: { lo: 1, size: Math.floor(rows * 0.5) },
    completed: { lo: Math.floor(rows * 0.5) + 1, size: Math.floor(rows * 0.3) },
    failed: { lo: Math.floor(rows * 0.8) + 1, size: rows - Math.floor(rows * 0.8) },
  };
  progress('enforcement: preparing the completed and failed row pools');
  await setVariant(pool, 'plain');
  await pool.query(`update ${COPY} set status = 'pending', retry_count = 0, next_retry_at = null, stripe_transfer_id = null where status <> 'pending'`);
  await pool.query(`update ${COPY} set status = 'completed', stripe_transfer_id = 'tr_c' || k
                     from generate_series($1::int, $2::int) k where id = ${idOf('k::text')}`, [ranges.completed.lo, ranges.completed.lo + ranges.completed.size - 1]);
  await pool.query(`update ${COPY} set status = 'failed', retry_count = 1, next_retry_at = now() + interval '1 hour'
                     from generate_series($1::int, $2::int) k where id = ${idOf('k::text')}`, [ranges.failed.lo, ranges.failed.lo + ranges.failed.size - 1]);
  await settle(pool, [COPY]);
  const realNote = await describeRealVariant(pool);

  // Server-side statement cost (rolled back, so the rows stay as they are): two passes, mirrored.
  const costCases = CASES.filter((c) => c.key === 'pending-failed' || c.key === 'bump-status');
  const costs = new Map<string, StatementCost[]>();
  for (const pass of [0, 1]) {
    for (const c of costCases) {
      const ws = pass === 0 ? writersOf(c) : [...writersOf(c)].reverse();
      for (const w of ws) {
        await setVariant(pool, variantOf(w));
        await resetSideTables(pool);
        const key = `${c.key}/${w}`;
        costs.set(key, [...(costs.get(key) ?? []), await statementCost(ctx, c, w, ranges[c.pool].lo, 100)]);
      }
    }
  }

  let repeats = sizes.pgbenchRepeats;
  const clientCounts = [2, 8];
  const runsPerRepeat = sum(CASES.map((c) => writersOf(c).length * clientCounts.length));
  const perRunSeconds = sizes.pgbenchSeconds + 1.5;
  if (Number.isFinite(ctx.deadline) && repeats > 2 && secondsLeft(ctx) - repeats * runsPerRepeat * perRunSeconds < 420) {
    repeats = 2;
    progress('enforcement: behind the run budget, two repeats instead of three');
  }
  // Each pool is split into one slice per run that draws from it; each client walks its own part.
  const drawing = (p: Pool) => repeats * clientCounts.length * sum(CASES.filter((c) => c.pool === p).map((c) => writersOf(c).length));
  const cursor: Record<Pool, number> = { pending: 0, completed: 0, failed: 0 };
  const dir = await mkdtemp(path.join(os.tmpdir(), 'seller-transfers-bench-'));
  const results = new Map<string, RunResult[]>();
  const cpus: CpuReport[] = [];
  const driver = ctx.pgbench ? 'pgbench' : 'node-pg loop (no pgbench binary found)';
  try {
    for (let r = 0; r < repeats; r++) {
      for (const c of CASES) {
        for (const clients of clientCounts) {
          const ws = writersOf(c);
          // Rotate the order every repeat, so no writer always runs first or last.
          const order = ws.map((_, i) => ws[(i + r) % ws.length]!);
          for (const w of order) {
            await setVariant(pool, variantOf(w));
            await resetSideTables(pool);
            await pool.query('checkpoint');
            const slice = Math.floor(ranges[c.pool].size / drawing(c.pool));
            const defines = { n: 0, lo: ranges[c.pool].lo, base: cursor[c.pool], stride: Math.floor(slice / clients), size: ranges[c.pool].size };
            cursor[c.pool] += slice;
            const before = await counters(pool);
            const spec: RunSpec = { c, w, clients, seconds: sizes.pgbenchSeconds, defines };
            const running: { pid?: number } = {};
            const sampler = new CpuSampler(pool, ctx.localServer, () => (running.pid ? [running.pid] : []));
            await sampler.start();
            const res = ctx.pgbench ? await runPgbench(ctx, dir, spec, running) : await runNodeLoop(ctx, spec);
            const cpu = await sampler.stop();
            cpus.push(cpu);
            await sleep(100); // let pgbench's backends finish exiting
            const after = await counters(pool);
            const changed = after[c.counter] - before[c.counter];
            const { rows: [ev] } = await pool.query<{ n: string }>('select count(*) as n from marketplace.seller_transfer_events');
            const run = { ...res, changed, events: Number(ev!.n), cpu };
            const key = `${c.key}/${clients}/${w}`;
            results.set(key, [...(results.get(key) ?? []), run]);
            progress(`enforcement: ${r + 1}/${repeats} ${c.label}, ${clients} clients, ${w}: ${fmt(res.tps)} tps, ${fmt(changed)} rows changed of ${fmt(res.processed)} transactions, ${fmt(run.events)} history rows`);
          }
        }
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const runsOf = (c: Case, clients: number, w: Writer) => results.get(`${c.key}/${clients}/${w}`) ?? [];
  const checks: Check[] = [];
  const tableRows: string[][] = [];
  const ratioRows: string[][] = [];
  let allReal = true;
  let historyOk = true;
  for (const c of CASES) {
    for (const clients of clientCounts) {
      const base = baselineOf(c);
      for (const w of writersOf(c)) {
        const rs = runsOf(c, clients, w);
        const tps = rs.map((x) => x.tps);
        const expectEvents = (x: RunResult) => (c.from && w !== 'plain' ? x.changed : 0);
        if (!rs.every((x) => x.changed === x.processed && x.failed === 0)) allReal = false;
        if (!rs.every((x) => x.events === expectEvents(x))) historyOk = false;
        tableRows.push([c.label, String(clients), w, fmt(median(tps)), rs.map((x) => fmt(x.tps)).join(', '),
          ms(median(rs.map((x) => x.latencyMs))),
          `${fmt(sum(rs.map((x) => x.changed)))}/${fmt(sum(rs.map((x) => x.processed)))}${sum(rs.map((x) => x.failed)) ? ` (${sum(rs.map((x) => x.failed))} failed)` : ''}`,
          fmt(sum(rs.map((x) => x.events))),
          cpuText(median(rs.map((x) => x.cpu?.postgres ?? NaN))), cpuText(meanOther(rs.map((x) => x.cpu!)))]);
      }
      // Ratios per repeat (runs of one repeat are neighbours in time), then their median and range.
      const real = runsOf(c, clients, 'real');
      const b = runsOf(c, clients, base);
      const perRepeat = real.map((x, i) => x.tps / (b[i]?.tps ?? NaN));
      const ofPlain = c.from ? real.map((x, i) => x.tps / (runsOf(c, clients, 'plain')[i]?.tps ?? NaN)) : [];
      const handOfPlain = c.from ? runsOf(c, clients, 'hand-written').map((x, i) => x.tps / (runsOf(c, clients, 'plain')[i]?.tps ?? NaN)) : [];
      // The new checks on their own: the write-once rule (real vs the same without it), and the
      // couplings as a trigger instead of CHECKs (no-write-once vs the pre-000010 guard).
      const of = (a: Writer, bw: Writer) => runsOf(c, clients, a).map((x, i) => x.tps / (runsOf(c, clients, bw)[i]?.tps ?? NaN));
      const writeOnce = of('real', 'no-write-once');
      const couplings = of('no-write-once', 'checks');
      const vsBefore = of('real', 'checks');
      ratioRows.push([c.label, String(clients), `real / ${base}`, ratio(median(perRepeat)), spread(perRepeat, ratio),
        c.from ? `${ratio(median(handOfPlain))} (${spread(handOfPlain, ratio)})` : '-', c.from ? `${ratio(median(ofPlain))} (${spread(ofPlain, ratio)})` : '-',
        `${ratio(median(writeOnce))} (${spread(writeOnce, ratio)})`, `${ratio(median(couplings))} (${spread(couplings, ratio)})`, `${ratio(median(vsBefore))} (${spread(vsBefore, ratio)})`]);
      const chk = check('1. single-row', `${c.label} tps at ${clients} clients, real triggers vs ${base}`, median(perRepeat), 'x', '>=', targetOf(c),
        `median of ${perRepeat.length} per-repeat ratios (range ${spread(perRepeat, ratio)}); ${fmt(median(real.map((x) => x.tps)))} vs ${fmt(median(b.map((x) => x.tps)))} tps`);
      chk.noisy = [...real, ...b].some((x) => (x.cpu?.other ?? 0) > NOISY_CPU);
      checks.push(chk);
    }
  }
  const notes: string[] = [];
  if (repeats < sizes.pgbenchRepeats) notes.push(`**${repeats} repeats instead of ${sizes.pgbenchRepeats}:** the run was behind its time budget (slow or shared machine) when this figure started.`);
  notes.push(allReal
    ? 'Every measured transaction changed exactly one row (rows changed = transactions processed, for every run).'
    : '**Not every transaction changed a row** (see the rows changed column): a client ran past its slice of rows, so some transactions matched nothing. Those runs overstate throughput.');
  notes.push(historyOk
    ? 'History rows = status changes for the hand-written and real writers in every run, and none for the bumps (the real history trigger\'s WHEN lets only status changes through).'
    : '**History rows did not match the status changes in every run** (history rows column).');
  const cost = (c: string, w: Writer) => {
    const xs = costs.get(`${c}/${w}`) ?? [];
    return { exec: sum(xs.map((x) => x.exec)) / xs.length, wal: sum(xs.map((x) => x.walRecords)) / xs.length, triggers: xs[0]?.triggers ?? '-' };
  };
  const costRows = costCases.flatMap((c) => writersOf(c).map((w) => {
    const x = cost(c.key, w);
    return [c.label, w, ms(x.exec), ms(x.exec - cost(c.key, 'plain').exec), fmt(x.wal, 1), x.triggers];
  }));
  const missed = checks.filter((x) => !x.met);
  if (missed.length) {
    const pf = (w: Writer) => cost('pending-failed', w).exec;
    const bs = (w: Writer) => cost('bump-status', w).exec;
    notes.push(`**Missed: ${missed.map((m) => `${m.label} ${ratio(m.measured)} (target >= ${ratio(m.target)})`).join('; ')}.** ` +
      `What the statement-cost table shows (server side, no commit): a pending -> failed UPDATE costs ${ms(pf('plain'))} alone, ${ms(pf('hand-written'))} hand-written ` +
      `and ${ms(pf('real'))} with the real triggers, so the triggers cost ${ms(pf('real') - pf('hand-written'))} per statement more than writing the history row by hand ` +
      `(the AFTER ROW guard's WHEN is false for a legal move and queues nothing; the history trigger is one plpgsql call and one INSERT). ` +
      `A same-state bump costs ${ms(bs('plain'))} plain and ${ms(bs('real'))} with the triggers. ` +
      'A single-row transaction is mostly its commit (a WAL flush) and the round trip: where the per-repeat ratios straddle the target (range column), the miss is within the run-to-run spread of this shared machine rather than a cost the statement-cost table can show.');
  }
  const method = [
    `Driver: ${driver}${ctx.pgbench ? ` (\`${ctx.pgbench}\`, -M prepared, -j min(clients, cores), ${sizes.pgbenchSeconds} s per run)` : ''}.`,
    `Table: \`bench.transfers\`, a copy of \`marketplace.seller_transfers\` made with \`CREATE TABLE ... (LIKE marketplace.seller_transfers INCLUDING ALL)\` plus the status foreign key`,
    `(same columns, defaults, CHECK constraints and indexes), ${rowsLabel(rows)} rows: half pending, 30% completed (with stripe_transfer_id), 20% failed (with next_retry_at).`,
    'Writers: **plain** = the UPDATE with no user triggers (dropped, not disabled; the FK and CHECKs stay; since 000010 the column couplings are a trigger, so plain has none); **hand-written** = no user triggers, one statement that updates the row and inserts its history row:',
    `\`${handWritten(CASES[0]!.update(':k::text'), 'pending').replace(/\s+/g, ' ')}\`; **real** = the UPDATE with ${realNote.replace(/^the "real" variant carries /, '')};`,
    '**no-write-once** = real without seller_transfer_write_once; **checks** = the guard before migration 000010: real without the write-once and column-coupling triggers, the couplings as the four CHECK constraints they were.',
    `Transactions: ${CASES.map((c) => `${c.label}: \`${c.update(':k::text')}\``).join('; ')}.`,
    'Row k = lo + (base + client_id * stride + n) % size, n the client\'s transaction count: every transaction touches a row no other transaction touched (the bumps\' 200k failed rows wrap only across runs).',
    `Order: ${repeats} repeats; in each, per transaction and client count, the writers back to back in an order rotated every repeat; before every run the history and jobs tables are truncated and a CHECKPOINT is taken (the copy is vacuumed once, before the first run).`,
    'Ratios are computed per repeat (neighbouring runs) and their median and range reported; targets: status changes real >= 0.90x hand-written, bumps real >= 0.95x plain. synchronous_commit as configured on the server.',
  ].join(' ');
  return {
    key: 'enforcement',
    title: `1. Enforcement, single-row writes (${rowsLabel(rows)}-row table)`,
    method,
    tables: [{
      title: 'Ratios (median of per-repeat ratios, range)',
      head: ['transaction', 'clients', 'ratio', 'median', 'range', 'hand-written / plain', 'real / plain',
        'write-once: real / no-write-once', 'couplings trigger vs CHECKs: no-write-once / checks', 'real / before 000010 (checks)'],
      rows: ratioRows,
    }, {
      title: `Single-row transactions/s on ${rowsLabel(rows)} rows (${driver})`,
      head: ['transaction', 'clients', 'writer', 'tps (median)', 'runs', 'latency (median)', 'rows changed / txns', 'history rows', 'postgres CPU', 'other CPU'],
      rows: tableRows,
    }, {
      title: 'Server-side cost of one statement (EXPLAIN ANALYZE in a rolled-back transaction: median of 100 statements after 6 warm-up ones, two passes in mirrored order, averaged)',
      head: ['transaction', 'writer', 'execution time', 'added vs plain', 'WAL records', 'time per trigger'],
      rows: costRows,
    }],
    checks,
    notes,
    seconds: 0,
    otherCpu: meanOther(cpus),
  };
}
