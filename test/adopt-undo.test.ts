// adopt undo after run: the legacy table is back under its name with its columns, its own
// trigger and the ledger's foreign key, holding the rows as they are now (those written through
// the view meanwhile included), without the guard; the history is kept aside, not deleted.
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { cliFor, runCli, type CliRun } from './support/cli.ts';
import { pgError } from './support/transfers.ts';
import { spawn } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { projectRoot } from '../src/paths/project.ts';
import { applyCurrentMigration, fixtureMap, loadLegacyFixture, tableBytes } from './support/adopt.ts';

vi.setConfig({ testTimeout: 60_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url);
const COMPLETED = '10000000-0000-4000-8000-000000000002';

const shape = async () =>
  (
    await db.pool.query(
      `select a.attname, format_type(a.atttypid, a.atttypmod) as type, pg_get_expr(d.adbin, d.adrelid) as default_expr
         from pg_attribute a left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
        where a.attrelid = 'legacy.seller_transfers'::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum`,
    )
  ).rows;

let shapeBefore: unknown[];
let inserted: string;
let updatedAtAfterRequest: Date;

beforeAll(async () => {
  await applyCurrentMigration(db.pool);
  await stoppedHalfWay();
  await loadLegacyFixture(db.pool, 'legacy');
  shapeBefore = await shape();
  const run = await cli('adopt', 'run', '--table', 'legacy.seller_transfers', ...fixtureMap('legacy'));
  expect(run.code, run.stderr).toBe(0);
  // the services write through the view meanwhile
  inserted = (
    await db.pool.query<{ id: string }>(
      `insert into legacy.seller_transfers (order_id, seller_id, amount, currency)
       values (gen_random_uuid(), '00000000-0000-4000-8000-00000000000a', 777, 'usd') returning id`,
    )
  ).rows[0]!.id;
  updatedAtAfterRequest = (
    await db.pool.query<{ updated_at: Date }>(
      `update legacy.seller_transfers set status = 'reversal_pending' where id = $1 returning updated_at`,
      [COMPLETED],
    )
  ).rows[0]!.updated_at;
  const undo = await cli('adopt', 'undo', '--table', 'legacy.seller_transfers');
  expect(undo.code, undo.stderr).toBe(0);
});

describe('adopt undo', () => {
  it('gives back a table with the same name, columns, types and defaults', async () => {
    const { rows } = await db.pool.query(`select relkind from pg_class where oid = 'legacy.seller_transfers'::regclass`);
    expect(rows).toEqual([{ relkind: 'r' }]);
    expect(await shape()).toEqual(shapeBefore);
    expect((await db.pool.query(`select to_regclass('legacy.seller_transfers_before_adoption') as t`)).rows[0].t).toBeNull();
  });

  it('holds the rows as they are now, including those written during the adoption', async () => {
    const { rows } = await db.pool.query(`select id, status, amount, updated_at from legacy.seller_transfers order by created_at, id`);
    expect(rows).toHaveLength(7);
    expect(rows.find((r) => r.id === inserted)).toMatchObject({ status: 'pending', amount: 777 });
    const requested = rows.find((r) => r.id === COMPLETED);
    expect(requested.status).toBe('reversal_pending');
    expect(requested.updated_at).toEqual(updatedAtAfterRequest);
  });

  it("the legacy services' statements behave as before adoption: no guard, their own trigger, the ledger's key", async () => {
    const { rows } = await db.pool.query(
      `update legacy.seller_transfers set status = 'pending' where id = $1 returning status, updated_at > now() - interval '1 minute' as touched`,
      [COMPLETED],
    );
    expect(rows).toEqual([{ status: 'pending', touched: true }]);
    const fk = await pgError(() =>
      db.pool.query(`insert into legacy.seller_transfer_ledger (seller_transfer_id, entry, amount) values (gen_random_uuid(), 'x', 1)`),
    );
    expect(fk.code).toBe('23503');
    const { rows: ref } = await db.pool.query(
      `select confrelid::regclass::text as target, convalidated from pg_constraint where conrelid = 'legacy.seller_transfer_ledger'::regclass and contype = 'f'`,
    );
    expect(ref).toEqual([{ target: 'legacy.seller_transfers', convalidated: true }]);
  });

  it('leaves marketplace.seller_transfers empty and keeps the history aside', async () => {
    expect((await db.pool.query('select count(*)::int as n from marketplace.seller_transfers')).rows[0].n).toBe(0);
    expect((await db.pool.query('select count(*)::int as n from marketplace.seller_transfer_events')).rows[0].n).toBe(0);
    const { rows } = await db.pool.query(
      `select count(*)::int as n, count(*) filter (where action = 'adopted')::int as adopted from marketplace.seller_transfer_events_set_aside where legacy_table = 'legacy.seller_transfers'`,
    );
    expect(rows).toEqual([{ n: 8, adopted: 6 }]);
    const state = await db.pool.query(
      `select step from marketplace.seller_transfer_adoptions where legacy_table = 'legacy.seller_transfers'`,
    );
    expect(state.rows).toEqual([{ step: 'undone' }]);
  });
});

/**
 * Stopping half-way: `adopt run` on another copy of the fixture (schema early) is killed inside
 * its switch (a report on the ledger keeps the switch waiting in its lock_timeout), so every row
 * is copied but the legacy name is still the table; `adopt undo` abandons it. Runs first, so that
 * marketplace.seller_transfers holds only its rows.
 */
let halfWay: { undo: CliRun; before: string[]; after: string[]; copied: number; left: number; triggers: string[]; step: string };
async function stoppedHalfWay(): Promise<void> {
  await loadLegacyFixture(db.pool, 'early');
  const before = await tableBytes(db.pool, 'early.seller_transfers');
  const report = new pg.Client({ connectionString: db.url });
  await report.connect();
  await report.query('begin');
  await report.query('select count(*) from early.seller_transfer_ledger');
  const child = spawn(
    process.execPath,
    [path.join(projectRoot, 'bin/seller-transfers.js'), 'adopt', 'run', '--table', 'early.seller_transfers', ...fixtureMap('early')],
    {
      cwd: projectRoot,
      env: { ...process.env, DATABASE_URL: db.url, LOG_LEVEL: 'silent', MIGRATION_LOCK_TIMEOUT_MS: '200' },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  await new Promise<void>((resolve) => {
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
      if (/switch: locking/.test(stderr)) child.kill('SIGKILL');
    });
    child.on('close', () => resolve());
  });
  await report.query('rollback');
  await report.end();
  const copied = (await db.pool.query<{ n: number }>('select count(*)::int as n from marketplace.seller_transfers')).rows[0]!.n;
  const undo = await cli('adopt', 'undo', '--table', 'early.seller_transfers');
  const left = (await db.pool.query<{ n: number }>('select count(*)::int as n from marketplace.seller_transfers')).rows[0]!.n;
  const triggers = (
    await db.pool.query<{ tgname: string }>(
      `select tgname from pg_trigger where tgrelid = 'early.seller_transfers'::regclass and not tgisinternal`,
    )
  ).rows.map((r) => r.tgname);
  const step = (
    await db.pool.query<{ step: string }>(
      `select step from marketplace.seller_transfer_adoptions where legacy_table = 'early.seller_transfers'`,
    )
  ).rows[0]!.step;
  halfWay = { undo, before, after: await tableBytes(db.pool, 'early.seller_transfers'), copied, left, triggers, step };
}

describe('adopt undo before the switch (stopping half-way)', () => {
  it('abandons the adoption: the table untouched, its trigger gone, no copies left, the history aside', async () => {
    expect(halfWay.copied).toBe(6);
    expect(halfWay.undo.code, halfWay.undo.stderr).toBe(0);
    expect(halfWay.undo.stdout).toContain('abandoned before its switch');
    expect(halfWay.left).toBe(0);
    expect(halfWay.after).toEqual(halfWay.before);
    expect(halfWay.triggers).toEqual(['seller_transfers_touch']);
    expect(halfWay.step).toBe('undone');
    const { rows } = await db.pool.query(
      `select count(*)::int as n from marketplace.seller_transfer_events_set_aside where legacy_table = 'early.seller_transfers'`,
    );
    expect(rows).toEqual([{ n: 6 }]);
  });
});

/**
 * undo under legacy writers: on a table large enough that copying it back takes seconds, writers
 * keep inserting and updating through the legacy name; none waits longer than the lock timeout
 * plus the switch's short hold, none fails, and every write is in the table given back. Runs last
 * (its rows leave marketplace.seller_transfers with its undo).
 */
describe('adopt undo under legacy writers', () => {
  const LOCK_TIMEOUT_MS = 300;
  const ROWS = 40_000;
  let undo: CliRun;
  let worstMs = 0;
  let statements = 0;
  const errors: string[] = [];
  const inserted: string[] = [];
  const requested: string[] = [];

  beforeAll(async () => {
    await loadLegacyFixture(db.pool, 'busy');
    await db.pool.query('delete from busy.seller_transfer_ledger; delete from busy.seller_transfers');
    await db.pool.query(
      `insert into busy.seller_transfers (order_id, seller_id, amount, currency, status, stripe_transfer_id, created_at)
       select gen_random_uuid(), '00000000-0000-4000-8000-00000000000a', 100 + i, 'usd', case when i % 2 = 0 then 'completed' else 'pending' end,
              case when i % 2 = 0 then 'tr_busy' || i end, now() - interval '1 day'
         from generate_series(1, $1) i`,
      [ROWS],
    );
    const run = await cli('adopt', 'run', '--table', 'busy.seller_transfers', ...fixtureMap('busy'));
    expect(run.code, run.stderr).toBe(0);
    let stopped = false;
    const writer = async (role: string, statement: () => Promise<void> | void, c: pg.Client) => {
      await c.connect();
      await c.query(`set role ${role}`);
      while (!stopped) {
        const t0 = performance.now();
        try {
          await statement();
        } catch (e) {
          errors.push((e as Error).message);
        }
        worstMs = Math.max(worstMs, performance.now() - t0);
        statements++;
        await new Promise((r) => setTimeout(r, 5));
      }
      await c.end();
    };
    const ins = new pg.Client({ connectionString: db.url });
    const upd = new pg.Client({ connectionString: db.url });
    let i = 0;
    const writers = [
      writer(
        'marketplace_writer',
        async () => {
          const { rows } = await ins.query<{ id: string }>(
            `insert into busy.seller_transfers (order_id, seller_id, amount, currency)
             values (gen_random_uuid(), '00000000-0000-4000-8000-00000000000a', 4200, 'usd') returning id`,
          );
          inserted.push(rows[0]!.id);
        },
        ins,
      ),
      writer(
        'marketplace_writer',
        async () => {
          const transfer = `tr_busy${2 * (++i % (ROWS / 2)) + 2}`;
          const { rowCount } = await upd.query(
            `update busy.seller_transfers set status = 'reversal_pending' where stripe_transfer_id = $1 and status = 'completed'`,
            [transfer],
          );
          if (rowCount) requested.push(transfer);
        },
        upd,
      ),
    ];
    await new Promise((r) => setTimeout(r, 500));
    undo = await runCli(['adopt', 'undo', '--table', 'busy.seller_transfers'], {
      DATABASE_URL: db.url,
      MIGRATION_LOCK_TIMEOUT_MS: String(LOCK_TIMEOUT_MS),
    });
    await new Promise((r) => setTimeout(r, 500));
    stopped = true;
    await Promise.all(writers);
  }, 180_000);

  it('gives the table back, the writers never waiting longer than the lock timeout plus the switch, none failing', async () => {
    expect(undo.code, undo.stderr).toBe(0);
    expect(worstMs).toBeLessThan(LOCK_TIMEOUT_MS + 1000);
    expect(undo.stderr).toMatch(/undo copy: 40\d\d\d of/);
    expect(undo.stderr).toMatch(/undo switch: ACCESS EXCLUSIVE on busy.seller_transfers held \d+ ms/);
    expect(errors).toEqual([]);
    expect(statements).toBeGreaterThan(20);
  });

  it('loses no write made during the undo', async () => {
    const { rows } = await db.pool.query<{ n: number; requested: number }>(
      `select count(*) filter (where id = any($1::uuid[]))::int as n,
              count(*) filter (where stripe_transfer_id = any($2::text[]) and status = 'reversal_pending')::int as requested
         from busy.seller_transfers`,
      [inserted, requested],
    );
    expect(inserted.length).toBeGreaterThan(5);
    expect(rows[0]).toEqual({ n: inserted.length, requested: new Set(requested).size });
    const { rows: left } = await db.pool.query(`select count(*)::int as n from marketplace.seller_transfers`);
    expect(left).toEqual([{ n: 0 }]);
  });
});
