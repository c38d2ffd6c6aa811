// Figure 8: `seller-transfers adopt run` on a legacy table of --adopt-rows rows (1M; 100k in --quick)
// shaped as DESIGN.md describes (test/fixtures/legacy-seller-transfers.sql), under four legacy
// writers (an insert, a reversal request, a retry bump, a read by id, each a single statement
// through the legacy name). Each round, in a database of its own: the writers alone for a fixed
// window, then adopt run under the same writers; the adoption's total time and rows per second, the
// writers' worst statement during it beside their worst with no adoption (the ratio is per round).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { createDatabase, dropDatabase, withDatabase } from '../src/db/connection.ts';
import { MIGRATE_DEFAULTS } from '../src/config.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { projectRoot } from '../src/paths/project.ts';
import { applyCurrentMigration, fixtureMap, loadLegacyFixture } from '../test/support/adopt.ts';
import { fmt, ms, progress, rowsLabel, spread, stopwatch, type BenchContext, type FigureResult } from './lib.ts';

interface Writers {
  worstMs: number;
  worstKind: string;
  /** Each kind's worst statement. */
  worstBy: Record<string, number>;
  statements: number;
  errors: string[];
}

const SELLER_A = '00000000-0000-4000-8000-00000000000a';

/**
 * Four legacy writers through the legacy name until stop() resolves. Each addresses rows as the
 * legacy services do, by id or by Stripe transfer id (indexed in the legacy table and in
 * marketplace.seller_transfers alike): rows are picked at random among `rows`, the ids of failed
 * rows from `failedIds`.
 */
function legacyWriters(url: string, rows: number, failedIds: string[]): { stop(): Promise<Writers> } {
  const w: Writers = { worstMs: 0, worstKind: '', worstBy: {}, statements: 0, errors: [] };
  let stopped = false;
  const kinds: Array<{ kind: string; role: string; sql: string; params: () => unknown[] }> = [
    {
      kind: 'insert',
      role: 'marketplace_writer',
      sql: `insert into legacy.seller_transfers (order_id, seller_id, amount, currency) values (gen_random_uuid(), $1, 4200, 'usd')`,
      params: () => [SELLER_A],
    },
    {
      kind: 'reversal request',
      role: 'marketplace_writer',
      sql: `update legacy.seller_transfers set status = 'reversal_pending' where stripe_transfer_id = $1 and status = 'completed'`,
      params: () => [`tr_bulk${3 * Math.floor((Math.random() * rows) / 3) + 1}`],
    },
    {
      kind: 'retry bump',
      role: 'marketplace_worker',
      sql: `update legacy.seller_transfers set retry_count = retry_count + 1, next_retry_at = now() + interval '1 hour'
             where id = $1 and status = 'failed'`,
      params: () => [failedIds[Math.floor(Math.random() * failedIds.length)]],
    },
    {
      kind: 'read',
      role: 'marketplace_writer',
      sql: `select * from legacy.seller_transfers where stripe_transfer_id = $1`,
      params: () => [`tr_bulk${3 * Math.floor((Math.random() * rows) / 3) + 1}`],
    },
  ];
  const loops = kinds.map(async (k) => {
    const c = new pg.Client({ connectionString: url, application_name: `legacy ${k.kind}` });
    await c.connect();
    await c.query(`set role ${k.role}`);
    while (!stopped) {
      const t0 = performance.now();
      try {
        await c.query(k.sql, k.params());
      } catch (e) {
        w.errors.push(`${k.kind}: ${(e as Error).message}`);
      }
      const took = performance.now() - t0;
      if (took > w.worstMs) [w.worstMs, w.worstKind] = [took, k.kind];
      w.worstBy[k.kind] = Math.max(w.worstBy[k.kind] ?? 0, took);
      w.statements++;
      await new Promise((r) => setTimeout(r, 2));
    }
    await c.end();
  });
  return {
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
      return w;
    },
  };
}

function adoptRun(url: string): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(
    process.execPath,
    [path.join(projectRoot, 'bin/seller-transfers.js'), 'adopt', 'run', '--table', 'legacy.seller_transfers', ...fixtureMap('legacy')],
    { cwd: projectRoot, env: { ...process.env, DATABASE_URL: url, LOG_LEVEL: 'silent' }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stderr })));
}

/** Writers alone, before each round's adoption. */
const BASELINE_MS = 30_000;

interface Round {
  adoptMs: number;
  baseline: Writers;
  during: Writers;
  /** adopt run's stderr lines other than copy progress (lock hold times, sync). */
  steps: string[];
}

async function adoptRound(ctx: BenchContext, rows: number, round: number): Promise<Round> {
  const name = `seller_transfers_bench_adopt_${randomBytes(3).toString('hex')}`;
  const url = withDatabase(ctx.adminUrl, name);
  await createDatabase(ctx.adminUrl, name);
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  try {
    await migrateDatabase(url);
    await applyCurrentMigration(pool);
    await loadLegacyFixture(pool, 'legacy');
    await pool.query(
      `grant select, update on legacy.seller_transfers to marketplace_worker; grant usage on schema legacy to marketplace_worker`,
    );
    progress(`adopt round ${round}: populating ${fmt(rows)} legacy rows`);
    await pool.query(
      `insert into legacy.seller_transfers (order_id, seller_id, amount, currency, status, stripe_transfer_id, next_retry_at, created_at)
       select gen_random_uuid(), case when i % 2 = 0 then '${SELLER_A}'::uuid else '00000000-0000-4000-8000-00000000000b'::uuid end,
              100 + i, 'usd', (array['pending', 'completed', 'failed'])[i % 3 + 1],
              case when i % 3 = 1 then 'tr_bulk' || i end, case when i % 3 = 2 then now() + interval '1 hour' end, now() - interval '2 days'
         from generate_series(1, $1) i`,
      [rows],
    );
    await pool.query('create index on legacy.seller_transfers (stripe_transfer_id)');
    await pool.query('vacuum analyze legacy.seller_transfers');
    await pool.query('checkpoint');
    const failedIds = (
      await pool.query<{ id: string }>(`select id from legacy.seller_transfers where status = 'failed' order by random() limit 20000`)
    ).rows.map((r) => r.id);

    progress(`adopt round ${round}: the legacy writers alone (${BASELINE_MS / 1000} s)`);
    const alone = legacyWriters(url, rows, failedIds);
    await new Promise((r) => setTimeout(r, BASELINE_MS));
    const baseline = await alone.stop();
    progress(`adopt round ${round}: adopt run on ${fmt(rows)} rows under the same writers`);
    const during = legacyWriters(url, rows, failedIds);
    const adoptTook = stopwatch();
    const run = await adoptRun(url);
    const adoptMs = adoptTook();
    const writers = await during.stop();
    if (run.code !== 0) throw new Error(`adopt run failed (${run.code}): ${run.stderr.trim().split('\n').at(-1)}`);
    const steps = run.stderr
      .trim()
      .split('\n')
      .filter((l) => !l.includes('copy:') && !l.includes('sync:'));
    progress(
      `adopt round ${round}: ${ms(adoptMs)}, writers' worst ${ms(writers.worstMs)} (${writers.worstKind}) vs ${ms(baseline.worstMs)} alone`,
    );
    return { adoptMs, baseline, during: writers, steps };
  } finally {
    await pool.end();
    await dropDatabase(ctx.adminUrl, name);
  }
}

/** "capture: … (lock held 12 ms)" / "switch: … held 140 ms, …": the hold times adopt run prints. */
function heldMs(steps: string[], step: string): number {
  const line = steps.find((l) => l.includes(`${step}:`) && /held \d+ ms/.test(l));
  return line ? Number(/held (\d+) ms/.exec(line)![1]) : NaN;
}

export async function adoptFigure(ctx: BenchContext): Promise<FigureResult> {
  const took = stopwatch();
  const rows = ctx.sizes.adoptRows;
  const rounds: Round[] = [];
  for (let i = 1; i <= ctx.sizes.adoptRounds; i++) rounds.push(await adoptRound(ctx, rows, i));
  const lockTimeoutMs = MIGRATE_DEFAULTS.lockTimeoutMs;
  const errors = rounds.flatMap((r) => [...r.baseline.errors, ...r.during.errors]);
  const col = (f: (r: Round) => number, show: (x: number) => string) => spread(rounds.map(f), show);
  return {
    key: 'adopt',
    title: '8. Adopting a live table',
    method:
      `A legacy public-schema-shaped table (test/fixtures/legacy-seller-transfers.sql) with ${fmt(rows)} rows (a third each pending, completed, failed), ` +
      'its ledger and sellers; `seller-transfers adopt run` (copy in 5000-row batches, sync, switch, validate; lock_timeout ' +
      `${ms(lockTimeoutMs)} with retries) while 4 node-pg clients loop over an insert, a reversal request (by Stripe transfer id), a retry bump (by id) and a read (by Stripe transfer id) through the legacy name. ` +
      `${rounds.length} round(s), each in a fresh database: the same writers for ${BASELINE_MS / 1000} s with no adoption running, then adopt run under them. ` +
      'Worst = the slowest single writer statement in that window (the adoption window is the longer one, so it has more chances to be slow). ' +
      'Medians with min–max over the rounds. The machine (2 cores) was shared with other work during the run: see the load averages.',
    tables: [
      {
        title: `adoption and writers, per round (${rowsLabel(rows)} rows)`,
        head: [
          'round',
          'adopt run took',
          'rows per second',
          'worst writer, alone',
          'worst writer, during',
          'writer statements alone / during',
          'capture lock held',
          'switch lock held',
        ],
        rows: rounds.map((r, i) => [
          String(i + 1),
          ms(r.adoptMs),
          fmt(rows / (r.adoptMs / 1000)),
          `${ms(r.baseline.worstMs)} (${r.baseline.worstKind})`,
          `${ms(r.during.worstMs)} (${r.during.worstKind})`,
          `${fmt(r.baseline.statements)} / ${fmt(r.during.statements)}`,
          ms(heldMs(r.steps, 'capture')),
          ms(heldMs(r.steps, 'switch')),
        ]),
      },
      {
        title: "each writer's worst statement, alone / during adopt run (median over the rounds)",
        head: ['writer', 'alone', 'during'],
        rows: Object.keys(rounds[0]!.during.worstBy).map((kind) => [
          kind,
          spread(
            rounds.map((r) => r.baseline.worstBy[kind] ?? NaN),
            ms,
          ),
          spread(
            rounds.map((r) => r.during.worstBy[kind] ?? NaN),
            ms,
          ),
        ]),
      },
      {
        title: 'summary (median, min–max)',
        head: ['adopt run took', 'rows per second', 'worst writer, alone', 'worst writer, during', 'target'],
        rows: [
          [
            col((r) => r.adoptMs, ms),
            col(
              (r) => rows / (r.adoptMs / 1000),
              (x) => fmt(x),
            ),
            col((r) => r.baseline.worstMs, ms),
            col((r) => r.during.worstMs, ms),
            '1M rows in under 5 min; worst writer statement under 2.5 s',
          ],
        ],
      },
    ],
    ratios: [
      {
        label: 'worst writer statement during adopt run / with no adoption',
        samples: rounds.map((r) => r.during.worstMs / r.baseline.worstMs),
      },
      {
        label: `worst writer statement during adopt run / lock_timeout (${ms(lockTimeoutMs)})`,
        samples: rounds.map((r) => r.during.worstMs / lockTimeoutMs),
      },
      {
        label: 'adopt run / 5 min (the target for 1M rows), scaled to 1M rows',
        samples: rounds.map((r) => (r.adoptMs * (1_000_000 / rows)) / 300_000),
      },
    ],
    notes: [
      errors.length === 0
        ? 'Every writer statement succeeded, before, during and after the switch.'
        : `**A writer statement failed (${errors.length}):** ${errors[0]}.`,
      `adopt run's steps (last round): ${rounds.at(-1)!.steps.join('; ')}.`,
    ],
    seconds: took() / 1000,
  };
}
