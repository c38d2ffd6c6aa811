// Figure adopt: `seller-transfers adopt run` on a legacy table of 1M rows (100k in --quick) shaped
// as DESIGN.md describes (test/fixtures/legacy-seller-transfers.sql), under four legacy writers
// (an insert, a reversal request, a retry bump, a read by id, each a single statement through the
// legacy name). Measured in one run: the adoption's total time and rows per second, and the
// writers' worst statement while it runs beside their worst over the same time with no adoption.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { createDatabase, dropDatabase, withDatabase } from '../src/db/connection.ts';
import { MIGRATE_DEFAULTS } from '../src/config.ts';
import { migrateDatabase } from '../src/db/migrate.ts';
import { projectRoot } from '../src/paths/project.ts';
import { applyCurrentMigration, fixtureMap, loadLegacyFixture } from '../test/support/adopt.ts';
import { fmt, ms, progress, stopwatch, type BenchContext, type FigureResult } from './lib.ts';

interface Writers {
  worstMs: number;
  worstKind: string;
  statements: number;
  errors: string[];
}

const SELLER_A = '00000000-0000-4000-8000-00000000000a';

/** Four legacy writers through the legacy name until stop() resolves. */
function legacyWriters(url: string, rows: number): { stop(): Promise<Writers> } {
  const w: Writers = { worstMs: 0, worstKind: '', statements: 0, errors: [] };
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
             where stripe_transfer_id is null and amount = $1 and status = 'failed'`,
      params: () => [100 + 3 * Math.floor((Math.random() * rows) / 3) + 2],
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

export async function adoptFigure(ctx: BenchContext): Promise<FigureResult> {
  const took = stopwatch();
  const rows = ctx.mode === 'quick' ? 100_000 : 1_000_000;
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
    progress(`adopt: populating ${fmt(rows)} legacy rows`);
    await pool.query(
      `insert into legacy.seller_transfers (order_id, seller_id, amount, currency, status, stripe_transfer_id, next_retry_at, created_at)
       select gen_random_uuid(), case when i % 2 = 0 then '${SELLER_A}'::uuid else '00000000-0000-4000-8000-00000000000b'::uuid end,
              100 + i, 'usd', (array['pending', 'completed', 'failed'])[i % 3 + 1],
              case when i % 3 = 1 then 'tr_bulk' || i end, case when i % 3 = 2 then now() + interval '1 hour' end, now() - interval '2 days'
         from generate_series(1, $1) i`,
      [rows],
    );
    await pool.query('create index on legacy.seller_transfers (stripe_transfer_id)');
    await pool.query('create index on legacy.seller_transfers (amount)');
    await pool.query('vacuum analyze legacy.seller_transfers');

    progress('adopt: the legacy writers alone');
    const alone = legacyWriters(url, rows);
    const adoptTook = stopwatch();
    progress(`adopt: adopt run on ${fmt(rows)} rows under the same writers`);
    // the baseline first, over a fixed window, then the adoption
    await new Promise((r) => setTimeout(r, 15_000));
    const baseline = await alone.stop();
    const during = legacyWriters(url, rows);
    const t0 = adoptTook();
    const run = await adoptRun(url);
    const adoptMs = adoptTook() - t0;
    const writers = await during.stop();
    if (run.code !== 0) throw new Error(`adopt run failed (${run.code}): ${run.stderr.trim().split('\n').at(-1)}`);
    const lockTimeoutMs = MIGRATE_DEFAULTS.lockTimeoutMs;
    return {
      key: 'adopt',
      title: '7. Adopting a live table',
      method:
        `A legacy public-schema-shaped table (test/fixtures/legacy-seller-transfers.sql) with ${fmt(rows)} rows (a third each pending, completed, failed), ` +
        'its ledger and sellers; `seller-transfers adopt run` (copy in 5000-row batches, sync, switch, validate; lock_timeout ' +
        `${ms(lockTimeoutMs)} with retries) while 4 node-pg clients loop over an insert, a reversal request, a retry bump and a read through the legacy name. ` +
        'Baseline: the same writers for 15 s just before, with no adoption running. Worst = the slowest single writer statement.',
      tables: [
        {
          title: 'adoption and writers',
          head: ['run', 'took', 'rows per second', 'writer statements', 'writer errors', 'worst writer statement'],
          rows: [
            [
              'writers alone (15 s)',
              '',
              '',
              fmt(baseline.statements),
              String(baseline.errors.length),
              `${ms(baseline.worstMs)} (${baseline.worstKind})`,
            ],
            [
              `adopt run, ${fmt(rows)} rows`,
              ms(adoptMs),
              fmt(rows / (adoptMs / 1000)),
              fmt(writers.statements),
              String(writers.errors.length),
              `${ms(writers.worstMs)} (${writers.worstKind})`,
            ],
          ],
        },
      ],
      ratios: [
        { label: 'worst writer statement during adopt run / with no adoption', samples: [writers.worstMs / baseline.worstMs] },
        {
          label: `worst writer statement during adopt run / lock_timeout (${ms(lockTimeoutMs)})`,
          samples: [writers.worstMs / lockTimeoutMs],
        },
      ],
      notes: [
        writers.errors.length === 0 && baseline.errors.length === 0
          ? 'Every writer statement succeeded, before, during and after the switch.'
          : `**A writer statement failed:** ${[...baseline.errors, ...writers.errors][0]}.`,
        `adopt run's progress: ${run.stderr
          .trim()
          .split('\n')
          .filter((l) => !l.includes('copy:'))
          .join('; ')}.`,
      ],
      seconds: took() / 1000,
    };
  } finally {
    await pool.end();
    await dropDatabase(ctx.adminUrl, name);
  }
}
