// Figure 1: single-row transactions per second on the 1M-row copy table, per trigger variant,
// at 2 and 8 clients, with pgbench and custom scripts.
//
// Every transaction is a real change:
// - "transition": pending -> failed (retry_count + 1, next_retry_at, last_error), the row picked
//   from a range of pending rows no other run or client uses: row k = base + client_id * stride
//   + n, where n counts the client's transactions (pgbench variables persist across a client's
//   transactions). Checked afterwards: the number of rows that became failed equals the number
//   of transactions pgbench reports.
// - "bump": a same-state update of a random failed row (status = 'failed', retry_count + 1,
//   next_retry_at moved), what the worker writes after a failed retry. Checked: sum(retry_count)
//   grows by exactly the number of transactions.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { CpuSampler, cpuText, meanOther, type CpuReport } from './cpu.ts';
import { COPY, describeRealVariant, extendCopy, resetSideTables, setVariant, type Variant } from './copy-table.ts';
import {
  check, fmt, median, ms, NOISY_CPU, progress, ratio, rowsLabel, secondsLeft, settle, sleep, stopwatch, sum,
  type BenchContext, type Check, type FigureResult,
} from './lib.ts';

type Script = 'transition' | 'bump';

const SQL: Record<Script, (k: string) => string> = {
  transition: (k) => `update ${COPY} set status = 'failed', retry_count = retry_count + 1, next_retry_at = now() + interval '1 hour', last_error = 'bench: transfer attempt failed', updated_at = now() where id = md5('st' || ${k})::uuid and status = 'pending'`,
  bump: (k) => `update ${COPY} set status = 'failed', retry_count = retry_count + 1, next_retry_at = now() + interval '1 hour', last_error = 'bench: retry failed again', updated_at = now() where id = md5('st' || ${k})::uuid and status = 'failed'`,
};

const PGBENCH_SCRIPT: Record<Script, string> = {
  transition: `\\set n :n + 1\n\\set k :base + :client_id * :stride + :n\n${SQL.transition(':k::text')};\n`,
  bump: `\\set k random(:lo, :hi)\n${SQL.bump(':k::text')};\n`,
};

// Why enqueueing in the writer's transaction costs what it costs: graphile_worker.add_jobs calls
// pg_notify, and a transaction that has notified takes a cluster-wide lock at commit and holds it
// through its WAL flush, so notifying commits cannot share a flush (no group commit).
const PROBE_SCRIPT = {
  'probe-commit': 'insert into bench.commit_probe values (1);\n',
  'probe-notify': "begin;\ninsert into bench.commit_probe values (1);\nselect pg_notify('bench_probe', random()::text);\ncommit;\n",
};

interface RunResult { tps: number; processed: number; failed: number; latencyMs: number; changed: number; cpu?: CpuReport }

interface RunSpec {
  script: Script | 'probe-commit' | 'probe-notify';
  clients: number;
  seconds: number;
  defines: Record<string, number>;
}

async function runPgbench(ctx: BenchContext, dir: string, spec: RunSpec, running: { pid?: number } = {}): Promise<Omit<RunResult, 'changed'>> {
  const file = path.join(dir, `${spec.script}.sql`);
  await writeFile(file, spec.script === 'probe-commit' || spec.script === 'probe-notify' ? PROBE_SCRIPT[spec.script] : PGBENCH_SCRIPT[spec.script]);
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
async function runNodeLoop(ctx: BenchContext, spec: RunSpec & { script: Script }): Promise<Omit<RunResult, 'changed'>> {
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
      const k = spec.script === 'transition' ? d.base! + clientId * d.stride! + n : d.lo! + Math.floor(Math.random() * (d.hi! - d.lo! + 1));
      const q = stopwatch();
      try {
        await c.query({ name: spec.script, text: SQL[spec.script]('$1::text'), values: [k] });
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

async function counters(pool: pg.Pool): Promise<{ failed: number; retries: number }> {
  const { rows: [r] } = await pool.query<{ failed: string; retries: string }>(
    `select count(*) filter (where status = 'failed') as failed, coalesce(sum(retry_count), 0) as retries from ${COPY}`);
  return { failed: Number(r!.failed), retries: Number(r!.retries) };
}

interface StatementCost { exec: number; triggers: Map<string, number>; walRecords: number }

/**
 * Server-side cost of one single-row pending -> failed UPDATE with the current trigger set:
 * EXPLAIN ANALYZE of `n` such statements in one transaction that is rolled back (no commit, no
 * client), median execution time and median time per trigger. The first six statements are
 * not counted: function compilation, and plpgsql's first five executions of each statement,
 * which are planned afresh (custom plans) before the cached generic plan takes over.
 */
async function statementCost(ctx: BenchContext, n: number): Promise<StatementCost> {
  const c = new pg.Client({ connectionString: ctx.url, application_name: 'seller-transfers-bench' });
  await c.connect();
  const exec: number[] = [];
  const wal: number[] = [];
  const triggers = new Map<string, number[]>();
  try {
    await c.query('begin');
    for (let k = 1; k <= n + 6; k++) {
      const { rows } = await c.query(`explain (analyze, wal, format json) ${SQL.transition(`'${k}'`)}`);
      const e = (rows[0]['QUERY PLAN'] as { 'Execution Time': number; Plan: { 'WAL Records'?: number }; Triggers?: { 'Trigger Name': string; Time: number }[] }[])[0]!;
      if (k <= 6) continue;
      exec.push(e['Execution Time']);
      wal.push(e.Plan['WAL Records'] ?? NaN);
      for (const t of e.Triggers ?? []) triggers.set(t['Trigger Name'], [...(triggers.get(t['Trigger Name']) ?? []), t.Time]);
    }
    await c.query('rollback');
  } finally {
    await c.end();
  }
  return { exec: median(exec), walRecords: median(wal), triggers: new Map([...triggers].map(([name, xs]) => [name, median(xs)])) };
}

export async function enforcementFigure(ctx: BenchContext): Promise<FigureResult> {
  const { pool, sizes } = ctx;
  const rows = sizes.singleRowRows;
  if (rows > sizes.enforcementRows) {
    progress(`enforcement: growing bench.transfers to ${rowsLabel(rows)} rows`);
    await setVariant(pool, 'plain');
    await extendCopy(pool, sizes.enforcementRows + 1, rows);
  }
  const bumpLo = Math.floor(rows * 0.9) + 1;
  progress(`enforcement: rows ${fmt(bumpLo)}..${fmt(rows)} -> failed (the pool for same-state bumps)`);
  await setVariant(pool, 'plain');
  await pool.query(`update ${COPY} set status = 'failed', retry_count = 1, next_retry_at = now() + interval '1 hour'
                     where id in (select md5('st' || k)::uuid from generate_series($1::int, $2::int) k)`, [bumpLo, rows]);
  await settle(pool, [COPY]);
  const mean = (xs: number[]) => sum(xs) / xs.length;
  const realNote = await describeRealVariant(pool);
  // Two passes in mirrored order, 100 statements each; the medians of both passes are averaged.
  const passes = new Map<Variant, StatementCost[]>();
  for (const v of ['plain', 'guard', 'guard+history', 'real', 'real', 'guard+history', 'guard', 'plain'] as Variant[]) {
    await setVariant(pool, v);
    await resetSideTables(pool);
    passes.set(v, [...(passes.get(v) ?? []), await statementCost(ctx, 100)]);
  }
  const costs = new Map<Variant, StatementCost>([...passes].map(([v, cs]) => [v, {
    exec: mean(cs.map((c) => c.exec)),
    walRecords: mean(cs.map((c) => c.walRecords)),
    triggers: new Map([...cs[0]!.triggers.keys()].map((name) => [name, mean(cs.map((c) => c.triggers.get(name) ?? 0))])),
  }]));
  progress(`enforcement: server-side cost of one transition: ${[...costs].map(([v, c]) => `${v} ${ms(c.exec)}`).join(', ')}`);

  // Per script and client count: baseline and project twice in ABBA order (drift cancels), the
  // guard-only and guard+history breakdown once each in the middle.
  // Behind schedule (a slow, shared machine): one run per variant instead of ABBA pairs.
  const repeats = sizes.pgbenchRepeats === 2 && secondsLeft(ctx) < 200 ? 1 : sizes.pgbenchRepeats;
  if (repeats < sizes.pgbenchRepeats) progress('enforcement: behind the 10-minute budget, one run per variant');
  const sequences: Record<Script, Variant[]> = repeats === 2
    ? { transition: ['plain', 'real', 'guard', 'guard+history', 'real', 'plain'], bump: ['plain', 'real', 'real', 'plain'] }
    : { transition: ['plain', 'real', 'guard', 'guard+history'], bump: ['plain', 'real'] };
  const clientCounts = [2, 8];
  const scripts: Script[] = ['transition', 'bump'];
  const transitionRuns = clientCounts.length * sequences.transition.length;
  const pendingPool = bumpLo - 1;
  const budget = Math.floor(pendingPool / transitionRuns);
  let cursor = 0;
  const dir = await mkdtemp(path.join(os.tmpdir(), 'seller-transfers-bench-'));
  const results = new Map<string, RunResult[]>();
  const probes = new Map<string, number[]>();
  const cpus: CpuReport[] = [];
  const driver = ctx.pgbench ? 'pgbench' : 'node-pg loop (no pgbench binary found)';
  try {
    for (const script of scripts) {
      for (const clients of clientCounts) {
        for (const variant of sequences[script]) {
          await setVariant(pool, variant);
          await resetSideTables(pool);
          await pool.query('checkpoint');
          const defines: Record<string, number> = script === 'transition'
            ? { n: 0, base: cursor, stride: Math.floor(budget / clients) }
            : { lo: bumpLo, hi: rows };
          if (script === 'transition') cursor += budget;
          const before = await counters(pool);
          const spec = { script, clients, seconds: sizes.pgbenchSeconds, defines };
          // CPU while it runs; the pgbench process counts as the load generator ("workers").
          const running: { pid?: number } = {};
          const sampler = new CpuSampler(pool, ctx.localServer, () => (running.pid ? [running.pid] : []));
          await sampler.start();
          const r = ctx.pgbench ? await runPgbench(ctx, dir, spec, running) : await runNodeLoop(ctx, spec);
          const cpu = await sampler.stop();
          cpus.push(cpu);
          await sleep(100); // let pgbench's backends finish exiting
          const after = await counters(pool);
          const changed = script === 'transition' ? after.failed - before.failed : after.retries - before.retries;
          const run = { ...r, changed, cpu };
          const key = `${script}/${clients}/${variant}`;
          results.set(key, [...(results.get(key) ?? []), run]);
          progress(`enforcement: ${script} ${clients} clients ${variant}: ${fmt(r.tps)} tps, ${fmt(changed)} rows changed of ${fmt(r.processed)} transactions`);
        }
      }
    }
    if (ctx.pgbench) {
      await pool.query('create table if not exists bench.commit_probe (x int)');
      for (const clients of clientCounts) {
        for (const script of ['probe-commit', 'probe-notify', 'probe-notify', 'probe-commit'] as const) {
          await pool.query('truncate bench.commit_probe');
          await pool.query('checkpoint');
          const r = await runPgbench(ctx, dir, { script, clients, seconds: Math.min(2, sizes.pgbenchSeconds), defines: {} });
          const key = `${script}/${clients}`;
          probes.set(key, [...(probes.get(key) ?? []), r.tps]);
        }
        progress(`enforcement: commit probe at ${clients} clients: ${fmt(mean(probes.get(`probe-commit/${clients}`)!))} tps plain, ${fmt(mean(probes.get(`probe-notify/${clients}`)!))} tps with pg_notify`);
      }
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }

  const agg = (script: Script, clients: number, v: Variant) => {
    const rs = results.get(`${script}/${clients}/${v}`) ?? [];
    return {
      tps: sum(rs.map((r) => r.tps)) / rs.length,
      latency: sum(rs.map((r) => r.latencyMs)) / rs.length,
      processed: sum(rs.map((r) => r.processed)),
      changed: sum(rs.map((r) => r.changed)),
      failed: sum(rs.map((r) => r.failed)),
      runs: rs.map((r) => fmt(r.tps)).join(', '),
      other: meanOther(rs.map((r) => r.cpu!).filter(Boolean)),
      pg: rs.reduce((a, r) => a + (r.cpu?.postgres ?? 0), 0) / rs.length,
    };
  };
  const checks: Check[] = [];
  const tableRows: string[][] = [];
  const label: Record<Script, string> = { transition: 'pending -> failed', bump: 'failed -> failed (bump)' };
  for (const script of scripts) {
    for (const clients of clientCounts) {
      const base = agg(script, clients, 'plain');
      for (const v of (['plain', 'guard', 'guard+history', 'real'] as Variant[]).filter((x) => sequences[script].includes(x))) {
        const a = agg(script, clients, v);
        tableRows.push([label[script], String(clients), v === 'real' ? 'real (guard + history + enqueue)' : v, fmt(a.tps), a.runs,
          `${a.latency.toFixed(2)} ms`, v === 'plain' ? '1.00x' : ratio(a.tps / base.tps),
          `${fmt(a.changed)}/${fmt(a.processed)}${a.failed ? ` (${a.failed} failed)` : ''}`, cpuText(a.pg), cpuText(a.other)]);
      }
      const real = agg(script, clients, 'real');
      const target = clients === 2 ? 0.95 : 0.9;
      const parts = (['guard', 'guard+history'] as Variant[]).filter((v) => sequences[script].includes(v))
        .map((v) => `${v === 'guard' ? 'guard only' : 'guard + history'} ${ratio(agg(script, clients, v).tps / base.tps)}`);
      const c = check('1. single-row', `${label[script]} tps at ${clients} clients, real triggers vs none`, real.tps / base.tps, 'x', '>=', target,
        `${fmt(real.tps)} vs ${fmt(base.tps)} tps${parts.length ? `; ${parts.join(', ')}` : ''}`);
      c.noisy = (real.other ?? 0) > NOISY_CPU || (base.other ?? 0) > NOISY_CPU;
      checks.push(c);
    }
  }
  const allReal = [...results.entries()].every(([, rs]) => rs.every((r) => r.changed === r.processed && r.failed === 0));
  const notes: string[] = [];
  if (repeats < sizes.pgbenchRepeats) notes.push('**One run per variant instead of two:** the run was behind its 10-minute budget (slow or shared machine) when this figure started.');
  notes.push(allReal
    ? 'Every measured transaction changed exactly one row (rows changed = transactions processed, for every run).'
    : '**Not every transaction changed a row** (see the rows changed column): a client ran past its reserved range of pending rows, so some transactions matched nothing. Those runs overstate throughput.');
  const probeRows = clientCounts.filter((c) => probes.has(`probe-commit/${c}`)).map((c) => {
    const plainTps = mean(probes.get(`probe-commit/${c}`)!);
    const notifyTps = mean(probes.get(`probe-notify/${c}`)!);
    return [String(c), fmt(plainTps), fmt(notifyTps), ratio(notifyTps / plainTps)];
  });
  const cost0 = () => costs.get('plain')!.exec;
  // Differences below 0.05 ms are within run-to-run noise of a single statement.
  const delta = (d: number) => (Math.abs(d) < 0.05 ? 'no measurable time (< 0.05 ms)' : ms(d));
  const missed = checks.filter((x) => !x.met);
  if (missed.length) {
    notes.push(`**Missed: ${missed.map((c) => `${c.label} ${ratio(c.measured)} (target ${c.op} ${c.target}x)`).join('; ')}.**`);
    const cost = (v: Variant) => costs.get(v)!.exec;
    notes.push(`What limits it. Server side, one pending -> failed UPDATE costs ${ms(cost('plain'))} with no trigger, ${ms(cost('guard'))} with the guard, ` +
      `${ms(cost('guard+history'))} with guard + history and ${ms(cost('real'))} with the real triggers (statement-cost table: EXPLAIN ANALYZE, no commit). ` +
      `So the guard adds ${delta(cost('guard') - cost('plain'))} per statement` +
      (costs.get('guard')!.walRecords > costs.get('plain')!.walRecords
        ? ` (even when its WHEN clause is false, a BEFORE ROW UPDATE trigger makes PostgreSQL lock and re-fetch the old row first, GetTupleForTrigger: one more WAL record per updated row, ${fmt(costs.get('plain')!.walRecords)} -> ${fmt(costs.get('guard')!.walRecords)})`
        : '') +
      `, the history statement trigger ${delta(cost('guard+history') - cost('guard'))} ` +
      '(a plpgsql call, two transition tuplestores, a join and one INSERT), and the job enqueue ' +
      `${delta(cost('real') - cost('guard+history'))} (\`enqueue_seller_transfer_jobs\` -> \`graphile_worker.add_jobs\`: task and queue upserts, a job-key UPDATE, the job INSERT, the anti-join that finds skipped specs). ` +
      'Then the commit: add_jobs calls `pg_notify`, ' +
      (probeRows.length
        ? `and the commit probe shows what that does to commits on this server: a one-row INSERT that also notifies commits at ${probeRows.map((r) => `${r[3]} of the plain rate at ${r[0]} clients`).join(' and ')}, ` +
          'because a notifying transaction takes a cluster-wide lock before commit and holds it through its WAL flush, so notifying commits are serialized and cannot share a flush (no group commit). '
        : 'which serializes commits (a cluster-wide lock held through the WAL flush). ') +
      'Every move into failed/reversal_pending, and every bump that moves next_retry_at, enqueues by design (DESIGN.md: the status change and its job commit in one transaction)' +
      (probeRows.some((r) => Number(r[0]) === 8 && parseFloat(r[3]!) < 0.9)
        ? ', so with graphile-worker\'s add_jobs (which always notifies) these transactions cannot reach 0.9x of a plain UPDATE at 8 clients on this server, whatever the triggers cost; the gap widens with more concurrent writers.'
        : '.'));
  }
  const costRows = (['plain', 'guard', 'guard+history', 'real'] as Variant[]).map((v) => {
    const c = costs.get(v)!;
    return [v === 'real' ? 'real (guard + history + enqueue)' : v, ms(c.exec), ms(c.exec - cost0()), fmt(c.walRecords),
      [...c.triggers].map(([name, t]) => `${name.replace(/^RI_ConstraintTrigger.*/, 'status FK')}: ${ms(t)}`).join(', ') || '-'];
  });
  return {
    key: 'enforcement',
    title: `1. Enforcement, single-row transitions (${rowsLabel(rows)}-row table)`,
    method: [
      `Driver: ${driver}${ctx.pgbench ? ` (\`${ctx.pgbench}\`, -M prepared, -j ${Math.min(8, os.cpus().length)}, ${sizes.pgbenchSeconds} s per run)` : ''}.`,
      `Table: \`bench.transfers\`, a copy of \`marketplace.seller_transfers\` made with \`CREATE TABLE ... (LIKE marketplace.seller_transfers INCLUDING ALL)\` plus the status foreign key`,
      `(same columns, defaults, CHECK constraints and indexes), ${rowsLabel(rows)} rows. **Baseline = the same copy with no user triggers** (dropped, not disabled; the FK and CHECKs stay),`,
      `project = the copy carrying ${realNote.replace(/^the "real" variant carries /, '')}. Guard-only and guard + history variants show where the cost goes.`,
      `Order per client count: transitions ${sequences.transition.join(', ')}; bumps ${sequences.bump.join(', ')} (each variant averaged over its runs); before every run the history and jobs tables are truncated and a CHECKPOINT is taken (the copy is vacuumed once, before the first run).`,
      `Scripts: \`${PGBENCH_SCRIPT.transition.replace(/\n/g, ' ').trim()}\` (each client walks its own range of pending rows, so every transaction is a legal status change) and`,
      `\`${PGBENCH_SCRIPT.bump.replace(/\n/g, ' ').trim()}\` over the ${fmt(rows - bumpLo + 1)} failed rows. synchronous_commit as configured on the server.`,
    ].join(' '),
    tables: [{
      title: `Single-row transactions/s on ${rowsLabel(rows)} rows (${driver})`,
      head: ['transaction', 'clients', 'triggers', 'tps', 'runs', 'latency', 'vs none', 'rows changed / txns', 'postgres CPU', 'other CPU'],
      rows: tableRows,
    }, {
      title: 'Server-side cost of one pending -> failed UPDATE (EXPLAIN ANALYZE in a rolled-back transaction: median of 100 statements after 6 warm-up ones, two passes in mirrored order, averaged)',
      head: ['triggers', 'execution time', 'added vs none', 'WAL records (UPDATE node)', 'time per trigger'],
      rows: costRows,
    }, ...(probeRows.length ? [{
      title: 'Commit probe: one-row INSERT per transaction, with and without pg_notify (pgbench, mean of 2 runs)',
      head: ['clients', 'tps', 'tps with pg_notify', 'ratio'],
      rows: probeRows,
    }] : [])],
    checks,
    notes,
    seconds: 0,
    otherCpu: meanOther(cpus),
  };
}
