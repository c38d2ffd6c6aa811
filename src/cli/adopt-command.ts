// seller-transfers adopt plan|run|verify|undo --table SCHEMA.TABLE [--map COLUMN=SQL ...]: brings a
// live legacy seller_transfers table under the guard (docs/adopting.md). Orchestration only: the
// SQL is src/cli/adopt/queries.sql, the rules are the database's.
import type { Command } from 'commander';
import { namedQueries } from '../db/named-queries.ts';
import { resolveDatabase } from '../runtime.ts';
import { MigrationLockError } from '../db/lock-retry.ts';
import { print, table } from './format.ts';
import { CliError, cliConfig } from './context.ts';
import { stderrLogger, withCliConnection } from './operator-db.ts';
import { mapLines, parseMapOptions, relation, resolveMap } from './adopt/map.ts';
import { makePlan, printPlan, legacyTable } from './adopt/plan.ts';
import { adoptionOf, runAdoption, type RunOptions } from './adopt/run.ts';
import { abandonAdoption, recordedMap, setAside, undoAdoption, verifyAdoption } from './adopt/verify-undo.ts';

const sql = namedQueries('src/cli/adopt/queries.sql');

/** Exit code when plan finds a blocker or verify a difference (as audit and reconcile). */
export const ADOPT_FINDINGS_EXIT_CODE = 3;

interface AdoptOptions {
  table: string;
  map: string[];
  mapFile?: string;
  batchRows?: string;
  switchBelow?: string;
}

function positive(value: string | undefined, option: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new CliError(`${option} takes a positive whole number, got "${value}"`, 2);
  return n;
}

const collect = (value: string, previous: string[]) => [...previous, value];

async function withAdoptDb<T>(fn: (db: import('pg').Client, url: string, opts: RunOptions) => Promise<T>): Promise<T> {
  const { config } = cliConfig();
  const logger = stderrLogger(config.LOG_LEVEL, config.LOG_FORMAT);
  const database = await resolveDatabase(config, logger);
  // The lock watcher of withLockRetry finds this session by its application_name.
  const applicationName = `seller-transfers adopt ${process.pid}.${Date.now().toString(36)}`;
  try {
    return await withCliConnection(database.url, async (db) => {
      await db.query(sql('set_application_name'), [applicationName]);
      return fn(db, database.url, {
        url: database.url,
        applicationName,
        lockTimeoutMs: config.MIGRATION_LOCK_TIMEOUT_MS,
        retryForMs: config.MIGRATION_LOCK_RETRY_SECONDS * 1000,
        batchRows: 5000,
        switchBelow: 200,
        progress: (line) => process.stderr.write(`adopt ${line}\n`),
      });
    });
  } catch (e) {
    if (e instanceof MigrationLockError) throw new CliError(e.message, 1);
    throw e;
  } finally {
    await database.close();
  }
}

export function registerAdoptCommand(program: Command): void {
  const adopt = program
    .command('adopt')
    .description('bring a live legacy seller_transfers table under the guard, online (docs/adopting.md): plan, run, verify, undo');
  const withMapOptions = (c: Command) =>
    c
      .requiredOption('--table <schema.table>', 'the legacy table (after run: the view under its name)')
      .option('--map <column=sql>', 'one of marketplace.seller_transfers’ columns = SQL over the legacy row (repeatable)', collect, [])
      .option('--map-file <path>', 'the maps, one COLUMN=SQL a line (# comments)');

  withMapOptions(adopt.command('plan'))
    .description('read-only, one snapshot: the map, rows per status, every finding that blocks adoption (exit 3), the locks of run')
    .action(async (opts: AdoptOptions) => {
      await withAdoptDb(async (db) => {
        const state = await alreadyAdopted(db, opts.table);
        if (state) return print(state);
        process.exitCode = printPlan(await makePlan(db, opts.table, parseMapOptions(opts.map, opts.mapFile)));
      });
    });

  withMapOptions(adopt.command('run'))
    .description('adopt online and resumably: copy, replay the writes made meanwhile, switch the legacy name to a guarded view')
    .option('--batch-rows <n>', 'rows per copy transaction', '5000')
    .option('--switch-below <n>', 'switch once fewer legacy writes than this are left to replay (they are replayed under the lock)', '200')
    .action(async (opts: AdoptOptions) => {
      const batchRows = positive(opts.batchRows, '--batch-rows');
      const switchBelow = positive(opts.switchBelow, '--switch-below');
      await withAdoptDb(async (db, _url, runOpts) => {
        const state = await alreadyAdopted(db, opts.table);
        if (state) return print(state);
        const recorded = await recordedMap(db, (await relation(db, opts.table))?.name ?? opts.table);
        let map;
        if (recorded && recorded.step !== 'undone')
          map = recorded.map; // a run started again continues with the map it began with
        else {
          const plan = await makePlan(db, opts.table, parseMapOptions(opts.map, opts.mapFile), { scan: false });
          if (plan.findings.length) {
            printPlan(plan);
            throw new CliError(`${plan.relation.name} cannot be adopted as it is: ${plan.findings.map((f) => f.problem).join(', ')}`, 3);
          }
          map = plan.map;
        }
        print(await runAdoption(db, map, { ...runOpts, batchRows, switchBelow }));
      });
    });

  withMapOptions(adopt.command('verify'))
    .description(
      'compare every row under the legacy name with marketplace.seller_transfers and its history (exit 3 naming the differing ids)',
    )
    .action(async (opts: AdoptOptions) => {
      await withAdoptDb(async (db) => {
        const name = (await relation(db, opts.table))?.name ?? opts.table;
        const recorded = await recordedMap(db, name);
        const map = recorded?.map ?? (await legacyTable(db, opts.table, parseMapOptions(opts.map, opts.mapFile))).map;
        const differences = await verifyAdoption(db, map);
        if (!differences.length) return print(`${name}: every row agrees with marketplace.seller_transfers and its history`);
        print(
          table(
            ['seller transfer', 'difference'],
            differences.slice(0, 50).map((d) => [d.id, d.problem]),
          ),
        );
        print(`${name}: ${differences.length} difference(s)`);
        process.exitCode = ADOPT_FINDINGS_EXIT_CODE;
      });
    });

  adopt
    .command('undo')
    .description(
      'take the table back to how it was before run (name, columns, rows as they are now, foreign keys), without the guard; before the switch: stop the adoption half-way',
    )
    .requiredOption('--table <schema.table>', 'the adopted legacy name')
    .action(async (opts: { table: string }) => {
      await withAdoptDb(async (db, _url, runOpts) => {
        const name = (await relation(db, opts.table))?.name ?? opts.table;
        const recorded = await recordedMap(db, name);
        if (!recorded) throw new CliError(`${name} is not adopted: nothing to undo`, 2);
        if (recorded.step === 'undone') {
          // An undo killed after its switch: its rows still leaving marketplace.seller_transfers.
          const removed = await setAside(db, recorded.map, runOpts);
          if (!removed) throw new CliError(`${name} is not adopted: nothing to undo`, 2);
          return print(`${name}: the undo is finished, ${removed} rows set aside from marketplace.seller_transfers`);
        }
        print(
          recorded.step === 'switched' || recorded.step === 'done'
            ? await undoAdoption(db, recorded.map, runOpts)
            : await abandonAdoption(db, recorded.map, runOpts),
        );
      });
    });
}

/** "already adopted" for a legacy name whose adoption finished, else null. */
async function alreadyAdopted(db: import('pg').Client, table: string): Promise<string | null> {
  const name = (await relation(db, table))?.name ?? table;
  const state = await adoptionOf(db, name);
  if (state?.step !== 'done') return null;
  const map = await resolveMap(db, name, new Map(state.map), state.kept_as);
  return [
    `${name} is already adopted (marketplace.seller_transfers; the table before: ${state.kept_as}); map:`,
    ...mapLines(map).map((l) => `  ${l}`),
  ].join('\n');
}
