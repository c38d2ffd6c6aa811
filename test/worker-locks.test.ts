// Locks nobody else can take: the dispatch mutex and a row's claim are rows only the definer may
// lock or write, so a login with no grants and a reader cannot freeze dispatch or a row, whatever
// advisory keys they hold. Doctor names a session that holds the worker up. The worker refuses to
// start under a role that cannot see graphile-worker's jobs.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withConnection } from '../src/db/connection.ts';
import { startWorker } from '../src/worker/runner.ts';
import { loadConfig } from '../src/config.ts';
import { createLogger } from '../src/logger.ts';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer } from './support/transfers.ts';
import { TEST_STRIPE_KEY, useTestWorker, waitFor, waitForStatus } from './support/worker.ts';

const db = useTestDatabase();
const { sim } = useTestWorker(db);
const NOBODY = 'seller_transfers_test_nobody';

function as(user: string): string {
  const u = new URL(db.url);
  u.username = user;
  u.password = 'nobody-login-for-tests';
  return u.toString();
}

beforeAll(async () => {
  await withConnection(db.adminUrl, async (c) => {
    await c.query(`do $$ begin
      if not exists (select 1 from pg_roles where rolname = '${NOBODY}') then
        create role ${NOBODY} login password 'nobody-login-for-tests';
      end if; end $$`);
  });
});

const holders: pg.Client[] = [];
afterAll(async () => {
  await Promise.all(holders.map((c) => c.end().catch(() => {})));
});

async function connectAs(user: string | null, role?: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: user ? as(user) : db.url });
  await c.connect();
  if (role) await c.query(`set role ${role}`);
  holders.push(c);
  return c;
}

describe('locks nobody else can take', () => {
  it('no function of the schema takes an advisory lock (keys any login can compute)', async () => {
    const { rows } = await db.pool.query<{ fn: string }>(
      `select p.oid::regprocedure::text as fn from pg_proc p
        where p.pronamespace = 'marketplace'::regnamespace and p.prosrc ~* 'pg_(try_)?advisory'`,
    );
    expect(rows).toEqual([]);
  });

  it('a reader and a login without grants cannot lock the dispatch mutex or a claim', async () => {
    const reader = await connectAs(null, 'marketplace_reader');
    const nobody = await connectAs(NOBODY);
    for (const c of [reader, nobody]) {
      for (const sql of [
        'select * from marketplace.seller_transfer_dispatch_mutex for update',
        'select * from marketplace.seller_transfer_dispatch_mutex for key share',
        'select * from marketplace.seller_transfer_claims for update',
        'lock table marketplace.seller_transfer_dispatch_mutex in row share mode',
        `insert into marketplace.seller_transfer_claims (transfer_id, backend_pid, task) values (gen_random_uuid(), pg_backend_pid(), 'x')`,
        'select marketplace.try_lock_seller_transfer(gen_random_uuid())',
      ]) {
        await c.query('begin');
        const err = await c.query(sql).then(
          () => null,
          (e: pg.DatabaseError) => e,
        );
        await c.query('rollback');
        expect(err?.code, sql).toBe('42501');
      }
    }
  });

  it('while they hold every advisory key the worker once used, dispatch and claims go on', async () => {
    const reader = await connectAs(null, 'marketplace_reader');
    const nobody = await connectAs(NOBODY);
    const id = (await db.pool.query<{ id: string }>('select gen_random_uuid() as id')).rows[0]!.id;
    const statuses = (await db.pool.query<{ k: number }>(`select 'marketplace.seller_transfer_statuses'::regclass::oid::int as k`)).rows[0]!
      .k;
    const rows = (await db.pool.query<{ k: number }>(`select 'marketplace.seller_transfers'::regclass::oid::int as k`)).rows[0]!.k;
    await nobody.query('select pg_advisory_lock($1, 0)', [statuses]);
    await reader.query('select pg_advisory_lock($1, hashtext($2))', [rows, id]);
    await db.pool.query(
      `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency)
       values ($1, gen_random_uuid(), gen_random_uuid(), 'acct_locks', 900, 'usd')`,
      [id],
    );
    await waitForStatus(db.pool, id, ['completed'], 15_000);
    const other = await insertTransfer(db.pool, 901);
    await waitForStatus(db.pool, other, ['completed'], 15_000);
    expect(sim.ledger().filter((e) => e.metadata.seller_transfer_id === id)).toHaveLength(1);
  });

  it('doctor names the session that holds the worker up (pid, user, application, since when)', async () => {
    const blocker = await connectAs(null);
    await blocker.query(`set application_name = 'a long report'`);
    await blocker.query('begin');
    await blocker.query('lock table marketplace.seller_transfer_claims in exclusive mode');
    const pid = (await blocker.query<{ pid: number }>('select pg_backend_pid() as pid')).rows[0]!.pid;
    try {
      const id = await insertTransfer(db.pool, 902);
      const detail = await waitFor(
        'doctor to name the blocker',
        async () => {
          const { rows } = await db.pool.query<{ status: string; detail: string }>(
            `select status, detail from marketplace.seller_transfer_doctor() where check_name = 'sessions holding up the worker'`,
          );
          return rows[0]?.status === 'problem' ? rows[0].detail : undefined;
        },
        15_000,
      );
      expect(detail).toContain(`pid ${pid}`);
      expect(detail).toContain('a long report');
      expect(detail).toMatch(/since \d{4}-\d\d-\d\dT/);
      await blocker.query('rollback');
      await waitForStatus(db.pool, id, ['completed'], 15_000);
    } finally {
      await blocker.query('rollback').catch(() => {});
    }
  });
});

describe('the least-privilege worker', () => {
  it('refuses to start, saying why, under a role that cannot see graphile-worker’s jobs', async () => {
    const url = as(NOBODY);
    const config = loadConfig({ DATABASE_URL: url, STRIPE_SECRET_KEY: TEST_STRIPE_KEY, STRIPE_API_BASE: sim.url, LOG_LEVEL: 'silent' });
    await expect(
      startWorker({
        config,
        logger: createLogger('silent'),
        databaseUrl: url,
        stripe: { secretKey: TEST_STRIPE_KEY, apiBase: sim.url, timeoutMs: 1000 },
      }),
    ).rejects.toThrow(/permission denied|cannot run jobs/);
  });
});
