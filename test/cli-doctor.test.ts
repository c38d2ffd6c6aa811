// doctor: a clean install passes; each kind of damage is named on its own line and exits 3.
import { describe, expect, it, vi } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { cliFor, expectOneLineError } from './support/cli.ts';

vi.setConfig({ testTimeout: 180_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url);

interface DoctorJson {
  ok: boolean;
  checks: Array<{ check: string; status: 'ok' | 'warn' | 'problem'; detail: string; fix: string }>;
}

async function doctor(): Promise<{ code: number; json: DoctorJson; text: string }> {
  const run = await cli('doctor', '--json');
  expect(run.stderr).toBe('');
  return { code: run.code, json: JSON.parse(run.stdout) as DoctorJson, text: run.stdout };
}
const problems = (j: DoctorJson) => j.checks.filter((c) => c.status === 'problem').map((c) => c.check);
const json = (d: { json: DoctorJson }) => d.json.checks;

describe('doctor', () => {
  it('a clean install: exit 0, one line per check', async () => {
    const { code, json } = await doctor();
    expect(problems(json)).toEqual([]);
    expect(code).toBe(0);
    expect(json.ok).toBe(true);
    const text = await cli('doctor');
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^ok +migrations current/m);
    expect(text.stdout).toMatch(/^ok +trigger seller_transfer_status_transition/m);
  });

  it('a disabled guard trigger', async () => {
    await db.pool.query('alter table marketplace.seller_transfers disable trigger seller_transfer_status_transition');
    try {
      const { code, json } = await doctor();
      expect(code).toBe(3);
      expect(problems(json)).toEqual(['trigger seller_transfer_status_transition']);
      expect(json.checks.find((c) => c.status === 'problem')!.fix).toContain('ENABLE TRIGGER seller_transfer_status_transition');
      const text = await cli('doctor');
      expect(text.code).toBe(3);
      expect(text.stdout).toMatch(/^problem +trigger seller_transfer_status_transition +disabled .* -> fix: /m);
    } finally {
      await db.pool.query('alter table marketplace.seller_transfers enable trigger seller_transfer_status_transition');
    }
  });

  it('a dropped partial index', async () => {
    const {
      rows: [def],
    } = await db.pool.query<{ sql: string }>(`select pg_get_indexdef('marketplace.seller_transfers_retry_due_idx'::regclass) as sql`);
    await db.pool.query('drop index marketplace.seller_transfers_retry_due_idx');
    try {
      const { code, json } = await doctor();
      expect(code).toBe(3);
      expect(problems(json)).toEqual(['index seller_transfers_retry_due_idx']);
    } finally {
      await db.pool.query(def!.sql);
    }
  });

  it('a stale migration', async () => {
    const {
      rows: [last],
    } = await db.pool.query(
      `delete from graphile_migrate.migrations where filename = (select max(filename) from graphile_migrate.migrations) returning *`,
    );
    try {
      const { code, json } = await doctor();
      expect(code).toBe(3);
      expect(problems(json)).toEqual(['migrations current']);
      expect(json.checks[0]!.detail).toMatch(/^not applied: \d{6}$/);
    } finally {
      await db.pool.query(
        `insert into graphile_migrate.migrations select * from json_populate_record(null::graphile_migrate.migrations, $1)`,
        [JSON.stringify(last)],
      );
    }
  });

  it('workers that stopped reporting', async () => {
    await db.pool.query(
      `insert into marketplace.seller_transfer_worker_heartbeats values ('w1', 'host', 1, now() - interval '1 hour', now() - interval '10 minutes', null)`,
    );
    try {
      const { code, json } = await doctor();
      expect(code).toBe(3);
      expect(problems(json)).toEqual(['workers seen recently']);
      await db.pool.query(`select marketplace.record_seller_transfer_worker_heartbeat('w2', 'host', 2, now(), false)`);
      expect((await doctor()).code).toBe(0);
    } finally {
      await db.pool.query('delete from marketplace.seller_transfer_worker_heartbeats');
    }
  });

  it("a transition added behind the guard's back (recompile trigger disabled) is named", async () => {
    await db.pool.query('alter table marketplace.seller_transfer_transitions disable trigger seller_transfer_transitions_changed');
    await db.pool.query(`insert into marketplace.seller_transfer_transitions values ('completed', 'failed', 'behind the guard''s back')`);
    try {
      const { code, json } = await doctor();
      expect(code).toBe(3);
      expect(problems(json)).toEqual(['trigger seller_transfer_transitions_changed', 'guard compiled from the transitions table']);
      const sync = json.checks.find((c) => c.check === 'guard compiled from the transitions table')!;
      expect(sync.detail).toContain('completed -> failed (in the table, refused by the guard)');
      expect(sync.fix).toContain('SELECT marketplace.compile_seller_transfer_guards()');
    } finally {
      await db.pool.query(`delete from marketplace.seller_transfer_transitions where from_status = 'completed' and to_status = 'failed'`);
      await db.pool.query('alter table marketplace.seller_transfer_transitions enable trigger seller_transfer_transitions_changed');
    }
    // Back as it was compiled: in sync again.
    expect(problems((await doctor()).json)).toEqual([]);
  });

  it('due rows nobody dispatches (no worker running)', async () => {
    const {
      rows: [row],
    } = await db.pool.query<{ id: string }>(
      `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
       values (gen_random_uuid(), gen_random_uuid(), 'acct_doctor', 100, 'usd') returning id`,
    );
    try {
      expect(json(await doctor()).find((c) => c.check === 'due rows dispatched')).toMatchObject({
        status: 'ok',
        detail: expect.stringMatching(/^1 row\(s\) due now/),
      });
      await db.pool.query(`update marketplace.seller_transfers set next_retry_at = now() - interval '10 minutes' where id = $1`, [row!.id]);
      const { code, json: out } = await doctor();
      expect(code).toBe(3);
      expect(problems(out)).toEqual(['due rows dispatched']);
      expect(out.checks.find((c) => c.check === 'due rows dispatched')!.detail).toMatch(
        /^due rows are not being dispatched: is a worker running\? pending: 1 due, oldest for 00:10:0\d/,
      );
      // The dispatcher hands it to a job: nothing due any more.
      await db.pool.query('select * from marketplace.dispatch_seller_transfers(1000, 60)');
      expect(problems((await doctor()).json)).toEqual([]);
    } finally {
      await db.pool.query('delete from graphile_worker._private_jobs');
      // Leave no due row behind for the next checks (as the owner: the history is append-only for everyone else).
      await db.pool.query('delete from marketplace.seller_transfer_events where transfer_id = $1', [row!.id]);
      await db.pool.query('delete from marketplace.seller_transfers where id = $1', [row!.id]);
    }
  });

  it('a job that used up its attempts is a warning naming the transfer and the error', async () => {
    const id = '2f1d7c3e-8a4b-4c1e-9d2f-5b6a7c8d9e0f';
    const {
      rows: [added],
    } = await db.pool.query<{ id: string }>(
      `select id from graphile_worker.add_job('seller_transfer_reverse', json_build_object('id', $1::text), job_key => marketplace.seller_transfer_job_key($1::uuid), max_attempts => 5)`,
      [id],
    );
    await db.pool.query(
      `update graphile_worker._private_jobs set attempts = max_attempts, last_error = 'Error: Stripe said no' where id = $1`,
      [added!.id],
    );
    try {
      const { code, json: out } = await doctor();
      expect(code).toBe(0);
      expect(problems(out)).toEqual([]);
      const check = out.checks.find((c) => c.check === 'jobs that used up their attempts')!;
      expect(check).toMatchObject({ status: 'warn' });
      expect(check.detail).toContain(
        `1 job(s) of the seller transfer tasks failed every attempt and will not run again; latest: transfer ${id} (seller_transfer_reverse): Error: Stripe said no`,
      );
      expect(check.fix).toContain(`SELECT graphile_worker.complete_jobs(ARRAY[${added!.id}])`);
      await db.pool.query(check.fix.slice(check.fix.indexOf('SELECT ')));
      expect(json(await doctor()).find((c) => c.check === 'jobs that used up their attempts')).toMatchObject({ status: 'ok' });
    } finally {
      await db.pool.query('delete from graphile_worker._private_jobs');
    }
  });

  it('bad input is one line on stderr', async () => {
    expectOneLineError(await cli('doctor', '--verbose'), "unknown option '--verbose'", 2);
  });
});
