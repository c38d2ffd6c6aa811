// `npm run bench [-- --quick | --full] [--only=statement-cost,bulk,hot-paths,dispatch,payout-day,upgrade,read-scale,adopt,instructions [--update-docs]]
//   [--adopt-rows=N] [--adopt-rounds=N]` (figure 8's size: legacy rows per round, rounds; default 1M x 3, --quick 100k x 1)
//
// PostgreSQL: BENCH_DATABASE_URL, else TEST_DATABASE_URL (a superuser connection to a maintenance
// database on the server), else an embedded PostgreSQL in a temporary directory. A dedicated
// database is created and migrated for the run and dropped at the end.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { createDatabase, dropDatabase, withDatabase } from '../src/db/connection.ts';
import { startEmbeddedPostgres } from '../src/db/embedded.ts';
import { appliedMigrations, committedMigrations, migrateDatabase, migrationNumber } from '../src/db/migrate.ts';
import { projectRoot } from '../src/paths/project.ts';
import { applyCurrentMigration } from '../test/support/current-migration.ts';
import { bulkFigure } from './bulk.ts';
import { createCopy } from './copy-table.ts';
import { dispatchFigure } from './dispatch.ts';
import { hotPathsFigure } from './hot-paths.ts';
import {
  isLocalPostgres,
  printTable,
  progress,
  rowsLabel,
  sizesFor,
  stopwatch,
  type BenchContext,
  type FigureResult,
  type Mode,
  type Sizes,
} from './lib.ts';
import { payoutDayFigure } from './payout-day.ts';
import { readScaleFigure } from './read-scale.ts';
import { ratiosTable, updateReport, writeReport, type MachineInfo } from './report.ts';
import { statementCostFigure } from './statement-cost.ts';
import { upgradeFigure } from './upgrade.ts';
import { adoptFigure } from './adopt.ts';
import { instructionsFigure } from './instructions.ts';

const FIGURES = [
  'statement-cost',
  'bulk',
  'hot-paths',
  'dispatch',
  'payout-day',
  'upgrade',
  'read-scale',
  'adopt',
  'instructions',
] as const;
type FigureKey = (typeof FIGURES)[number];

interface Args {
  mode: Mode;
  only: Set<FigureKey>;
  updateDocs: boolean;
  /** Sizes given on the command line, over the mode's. */
  sizes: Partial<Sizes>;
}

function positiveInt(arg: string): number {
  const n = Number(arg.slice(arg.indexOf('=') + 1).replaceAll('_', ''));
  if (!Number.isInteger(n) || n < 1) throw new Error(`${arg}: a positive whole number is expected`);
  return n;
}

function parseArgs(argv: string[]): Args {
  let mode: Mode = 'default';
  const sizes: Partial<Sizes> = {};
  let only = new Set<FigureKey>(FIGURES);
  let updateDocs = false;
  for (const a of argv) {
    if (a === '--quick') mode = 'quick';
    else if (a === '--update-docs') updateDocs = true;
    else if (a === '--full') mode = 'full';
    else if (a.startsWith('--adopt-rows=')) sizes.adoptRows = positiveInt(a);
    else if (a.startsWith('--adopt-rounds=')) sizes.adoptRounds = positiveInt(a);
    else if (a.startsWith('--only=')) {
      const keys = a.slice('--only='.length).split(',');
      for (const k of keys) if (!FIGURES.includes(k as FigureKey)) throw new Error(`unknown figure ${k}; known: ${FIGURES.join(', ')}`);
      only = new Set(keys as FigureKey[]);
    } else if (a === '--help' || a === '-h') {
      console.log(
        `usage: npm run bench [-- --quick | --full] [--only=${FIGURES.join(',')} [--update-docs]] [--adopt-rows=N] [--adopt-rounds=N]`,
      );
      process.exit(0);
    } else throw new Error(`unknown argument ${a} (try --help)`);
  }
  return { mode, only, updateDocs, sizes };
}

async function resolveServer(): Promise<{ adminUrl: string; kind: string; stop(): Promise<void> }> {
  const fromEnv = process.env.BENCH_DATABASE_URL ? 'BENCH_DATABASE_URL' : process.env.TEST_DATABASE_URL ? 'TEST_DATABASE_URL' : null;
  if (fromEnv) return { adminUrl: process.env[fromEnv]!, kind: fromEnv, stop: async () => {} };
  progress('no BENCH_DATABASE_URL / TEST_DATABASE_URL: starting an embedded PostgreSQL');
  const dir = await mkdtemp(path.join(os.tmpdir(), 'seller-transfers-bench-pg-'));
  await chmod(dir, 0o755); // run as root, PostgreSQL runs as a `postgres` user that must enter it
  const embedded = await startEmbeddedPostgres({ dir: path.join(dir, 'data'), persistent: false });
  return {
    adminUrl: embedded.url,
    kind: 'embedded PostgreSQL (src/db/embedded.ts)',
    stop: async () => {
      await embedded.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** The applied migrations by their committed file names (graphile-migrate records only numbers). */
async function migrationNames(url: string): Promise<string> {
  const files = await committedMigrations();
  const applied = await appliedMigrations(url);
  return applied.map((m) => files.find((f) => migrationNumber(f) === m.number) ?? m.filename).join(', ') || 'none';
}

function gitRevision(): string {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: projectRoot, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain'], { cwd: projectRoot, encoding: 'utf8' })
      .trim()
      .split('\n')
      .filter(Boolean).length;
    return `git ${head}${dirty ? ` + ${dirty} uncommitted change(s) in the work tree` : ''}`;
  } catch {
    return 'not a git work tree';
  }
}

async function machineInfo(pool: pg.Pool, url: string, mode: Mode, server: string): Promise<MachineInfo> {
  const {
    rows: [v],
  } = await pool.query<{ version: string }>('select version()');
  const { rows: settings } = await pool.query<{ name: string; setting: string; unit: string | null }>(
    `select name, setting, unit from pg_settings where name in ('shared_buffers', 'work_mem', 'synchronous_commit', 'fsync', 'max_connections',
       'autovacuum', 'jit', 'max_wal_size', 'checkpoint_timeout', 'wal_level', 'effective_cache_size') order by name`,
  );
  const pretty = (s: { name: string; setting: string; unit: string | null }) => {
    if (s.unit === '8kB') return `${s.name}=${(Number(s.setting) * 8) / 1024} MB`;
    if (s.unit === 'kB') return `${s.name}=${Number(s.setting) / 1024} MB`;
    if (s.unit === 'MB') return `${s.name}=${s.setting} MB`;
    return `${s.name}=${s.setting}${s.unit ?? ''}`;
  };
  const gw = JSON.parse(readFileSync(path.join(projectRoot, 'node_modules/graphile-worker/package.json'), 'utf8')) as { version: string };
  return {
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    mode,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GB`,
    loadAtStart: os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(', '),
    loadAtEnd: '',
    postgres: v!.version,
    settings: settings.map(pretty).join(', '),
    server,
    node: process.version,
    graphileWorker: gw.version,
    revision: gitRevision(),
    migrations: await migrationNames(url),
    runSeconds: 0,
  };
}

async function main(): Promise<void> {
  const { mode, only, updateDocs, sizes: given } = parseArgs(process.argv.slice(2));
  const sizes = { ...sizesFor(mode), ...given };
  const total = stopwatch();
  const server = await resolveServer();
  const dbName = `seller_transfers_bench_${process.pid}`;
  const url = withDatabase(server.adminUrl, dbName);
  let pool: pg.Pool | undefined;
  let dropped = false;
  const cleanup = async () => {
    if (dropped) return;
    dropped = true;
    await pool?.end().catch(() => {});
    await dropDatabase(server.adminUrl, dbName).catch((e: unknown) => progress(`could not drop ${dbName}: ${String(e)}`));
    await server.stop().catch(() => {});
  };
  const onSignal = (signal: NodeJS.Signals) => {
    progress(`${signal}: dropping ${dbName} and exiting`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    progress(`mode ${mode}; creating and migrating database ${dbName} (${server.kind})`);
    await dropDatabase(server.adminUrl, dbName);
    await createDatabase(server.adminUrl, dbName);
    await migrateDatabase(url);
    if (await applyCurrentMigration(url)) progress('applied migrations/current.sql (the migration being written)');
    pool = new pg.Pool({ connectionString: url, max: 4, application_name: 'seller-transfers-bench' });
    pool.on('error', () => {});
    const {
      rows: [me],
    } = await pool.query<{ pid: number; su: boolean }>(`select pg_backend_pid() as pid, current_setting('is_superuser') = 'on' as su`);
    if (!me!.su)
      throw new Error('the bench needs a superuser connection (session_replication_role for loading, CHECKPOINT, VACUUM, trigger swaps)');
    const ctx: BenchContext = { mode, sizes, adminUrl: server.adminUrl, url, pool, localServer: isLocalPostgres(me!.pid) };
    const info = await machineInfo(
      pool,
      url,
      mode,
      `${server.kind}${ctx.localServer ? ', same machine' : ', remote: no PostgreSQL CPU attribution'}`,
    );
    progress(`PostgreSQL processes visible in /proc: ${ctx.localServer}`);

    const results = new Map<FigureKey, FigureResult>();
    const runFigure = async (key: FigureKey, title: string, fn: () => Promise<FigureResult>) => {
      if (!only.has(key)) return;
      progress(`--- ${title}`);
      const t = stopwatch();
      try {
        const r = await fn();
        results.set(key, { ...r, seconds: t() / 1000 });
      } catch (e) {
        const err = e as Error;
        progress(`${title} FAILED: ${err.stack ?? err.message}`);
        results.set(key, { key, title, method: '', ratios: [], tables: [], notes: [], seconds: t() / 1000, error: err.message });
      }
      progress(`${title}: ${(t() / 1000).toFixed(0)} s`);
    };

    // In databases of their own (latest migration, and 000016 for before).
    await runFigure('statement-cost', '1. trigger cost per statement', () => statementCostFigure(ctx));
    if (only.has('bulk')) {
      progress(`loading bench.transfers with ${rowsLabel(sizes.bulkRows)} rows`);
      await createCopy(pool, sizes.bulkRows);
      await runFigure('bulk', '2. bulk', () => bulkFigure(ctx));
      await pool.query('drop table if exists bench.transfers');
      await pool.query('delete from graphile_worker._private_jobs');
      await pool.query('vacuum marketplace.seller_transfer_events');
    }
    await runFigure('hot-paths', '3. hot-path queries', () => hotPathsFigure(ctx));
    await runFigure('dispatch', '4. dispatch tick', () => dispatchFigure(ctx));
    await runFigure('payout-day', '5. payout day', () => payoutDayFigure(ctx));
    // In a database of its own, at migration 000006.
    await runFigure('upgrade', '6. upgrade under load', () => upgradeFigure(ctx));
    await runFigure('read-scale', '7. reads at a year of payouts', () => readScaleFigure(ctx));
    // In a database of its own, with migrations/current.sql applied until the adoption's migration is committed.
    await runFigure('adopt', '8. adopting a live table', () => adoptFigure(ctx));
    // On an embedded PostgreSQL of its own, under valgrind.
    await runFigure('instructions', '9. instructions per statement', () => instructionsFigure(ctx));

    const ordered = FIGURES.map((k) => results.get(k)).filter((r): r is FigureResult => !!r);
    for (const f of ordered) {
      console.log(`\n=== ${f.title}${f.error ? ' — FAILED' : ''}`);
      if (f.error) console.log(f.error);
      else printTable(ratiosTable(f));
      for (const t of f.tables) printTable(t);
      for (const n of f.notes) console.log(`- ${n.replace(/\*\*/g, '')}`);
    }
    info.loadAtEnd = os
      .loadavg()
      .map((x) => x.toFixed(2))
      .join(', ');
    info.runSeconds = total() / 1000;
    if (only.size === FIGURES.length) {
      const out = await writeReport(projectRoot, ordered, info);
      console.log(`\nwrote ${path.relative(projectRoot, out)} (run time ${(info.runSeconds / 60).toFixed(1)} min)`);
      if (ordered.some((f) => f.error)) process.exitCode = 1;
    } else if (updateDocs && ordered.some((f) => f.error)) {
      console.log(
        `\n--update-docs: docs/benchmarks.md not touched, ${ordered
          .filter((f) => f.error)
          .map((f) => f.title)
          .join(', ')} failed`,
      );
      process.exitCode = 1;
    } else if (updateDocs) {
      const command = `npm run bench -- ${process.argv.slice(2).join(' ')}`;
      const out = await updateReport(projectRoot, ordered, info, command);
      console.log(
        `\nupdated ${[...only].join(', ')} in ${path.relative(projectRoot, out)}; the other figures are the last full run's (run time ${(info.runSeconds / 60).toFixed(1)} min)`,
      );
    } else {
      console.log(
        `\n--only: docs/benchmarks.md not rewritten (add --update-docs to put these figures into it; run time ${(info.runSeconds / 60).toFixed(1)} min)`,
      );
    }
  } finally {
    await cleanup();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exitCode = 1;
});
