// Figure upgrade: an online upgrade as a DBA runs it. A database at migration 000006 (the schema
// of the first tested main) with 1M transfers (100k in --quick) and 1.5 history rows each, four
// writers looping over inserts, refunds and same-state bumps, then `migrate` to the latest
// migration: alone, with a 20 s report holding the table (an open transaction that has read it,
// as BI tools and pg_dump do), and, for the before figure, with the same report and a lock_timeout
// long enough to wait it out (what `migrate` did before it set one). Between runs the database
// goes back to 000006 with the rollback scripts. Measured: the worst single writer statement.
import { randomBytes } from 'node:crypto';
import { createDatabase, dropDatabase, withDatabase } from '../src/db/connection.ts';
import { MIGRATE_DEFAULTS } from '../src/config.ts';
import { migrateDatabase, rollbackTo } from '../src/db/migrate.ts';
import { populate, upgradeUnderLoad, type UpgradeRun } from '../test/support/upgrade-load.ts';
import { fmt, ms, progress, stopwatch, type BenchContext, type FigureResult } from './lib.ts';

const FROM = 6;
const READER_MS = 20_000;

export async function upgradeFigure(ctx: BenchContext): Promise<FigureResult> {
  const took = stopwatch();
  const rows = ctx.mode === 'quick' ? 100_000 : 1_000_000;
  const name = `seller_transfers_bench_upgrade_${randomBytes(3).toString('hex')}`;
  const url = withDatabase(ctx.adminUrl, name);
  const lockTimeoutMs = MIGRATE_DEFAULTS.lockTimeoutMs;
  await createDatabase(ctx.adminUrl, name);
  try {
    await migrateDatabase(url);
    await rollbackTo(url, FROM);
    progress(`upgrade: populating ${fmt(rows)} transfers at migration ${String(FROM).padStart(6, '0')}`);
    await populate(url, rows);
    const scenarios: Array<{ label: string; readerMs: number; lockTimeoutMs: number }> = [
      { label: 'alone', readerMs: 0, lockTimeoutMs },
      { label: `with a ${READER_MS / 1000} s report`, readerMs: READER_MS, lockTimeoutMs },
      { label: `with a ${READER_MS / 1000} s report, no lock timeout (before)`, readerMs: READER_MS, lockTimeoutMs: 600_000 },
    ];
    const results: Array<{ label: string; lockTimeoutMs: number; run: UpgradeRun }> = [];
    for (const s of scenarios) {
      await rollbackTo(url, FROM);
      progress(`upgrade: ${s.label}`);
      results.push({
        label: s.label,
        lockTimeoutMs: s.lockTimeoutMs,
        run: await upgradeUnderLoad(url, { clients: 4, readerMs: s.readerMs, lockTimeoutMs: s.lockTimeoutMs, warmupMs: 1_000 }),
      });
    }
    const [alone, reader, before] = results as [(typeof results)[0], (typeof results)[0], (typeof results)[0]];
    return {
      key: 'upgrade',
      title: '6. Upgrade under load',
      method:
        `A database at migration 000006 with ${fmt(rows)} transfers (half completed) and their history; 4 node-pg writers loop over an insert, a refund ` +
        '(completed -> reversal_pending) and a same-state bump, each a single statement; `migrate` (src/db/migrate.ts) runs to the latest migration ' +
        `with lock_timeout ${lockTimeoutMs} ms (the default) and retries, alone and with a report that holds ACCESS SHARE on the tables for ${READER_MS / 1000} s; ` +
        'the before run uses a 600 s lock_timeout, which waits the report out as migrate did before. Worst = the slowest writer statement during the run.',
      tables: [
        {
          title: 'writers during the upgrade',
          head: [
            'run',
            'lock_timeout',
            'migrate took',
            'lock timeouts retried',
            'writer statements',
            'writer errors',
            'worst writer statement',
          ],
          rows: results.map((r) => [
            r.label,
            ms(r.lockTimeoutMs),
            ms(r.run.migrateMs),
            String(r.run.retries.length),
            fmt(r.run.writers.statements),
            String(r.run.writers.errors.length),
            `${ms(r.run.writers.worstMs)} (${r.run.writers.worstKind})`,
          ]),
        },
      ],
      ratios: [
        {
          label: `worst writer statement during the upgrade / lock_timeout (${ms(lockTimeoutMs)}), alone`,
          samples: [alone.run.writers.worstMs / lockTimeoutMs],
        },
        {
          label: `worst writer statement during the upgrade / lock_timeout, with a ${READER_MS / 1000} s report`,
          samples: [reader.run.writers.worstMs / lockTimeoutMs],
        },
        {
          label: `the same without a lock timeout (before) / with it, with a ${READER_MS / 1000} s report`,
          samples: [before.run.writers.worstMs / reader.run.writers.worstMs],
        },
      ],
      notes: [
        `With a report open, the migration's ACCESS EXCLUSIVE request on seller_transfers (000007: DROP/CREATE TRIGGER, DROP INDEX) waits at most lock_timeout, ` +
          `during which writers queue behind it; it then gives way, backs off and retries (${reader.run.retries.length} time(s) here). Without a lock timeout every writer waited ${ms(before.run.writers.worstMs)}, as long as the report.`,
        [alone, reader, before].every((r) => r.run.writers.errors.length === 0)
          ? 'Every writer statement succeeded in every run.'
          : `**A writer statement failed:** ${[alone, reader, before].flatMap((r) => r.run.writers.errors)[0]}.`,
      ],
      seconds: took() / 1000,
    };
  } finally {
    await dropDatabase(ctx.adminUrl, name);
  }
}
