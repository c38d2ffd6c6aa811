// doctor: a clean install passes; each kind of damage is named on its own line and exits 3.
import { describe, expect, it, vi } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { cliFor, expectOneLineError } from './support/cli.ts';

vi.setConfig({ testTimeout: 180_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url);

interface DoctorJson { ok: boolean; checks: Array<{ check: string; status: 'ok' | 'warn' | 'problem'; detail: string; fix: string }> }

async function doctor(): Promise<{ code: number; json: DoctorJson; text: string }> {
  const run = await cli('doctor', '--json');
  expect(run.stderr).toBe('');
  return { code: run.code, json: JSON.parse(run.stdout) as DoctorJson, text: run.stdout };
}
const problems = (j: DoctorJson) => j.checks.filter((c) => c.status === 'problem').map((c) => c.check);

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
    const { rows: [def] } = await db.pool.query<{ sql: string }>(`select pg_get_indexdef('marketplace.seller_transfers_retry_due_idx'::regclass) as sql`);
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
    const { rows: [last] } = await db.pool.query(`delete from graphile_migrate.migrations where filename = (select max(filename) from graphile_migrate.migrations) returning *`);
    try {
      const { code, json } = await doctor();
      expect(code).toBe(3);
      expect(problems(json)).toEqual(['migrations current']);
      expect(json.checks[0]!.detail).toMatch(/^not applied: \d{6}$/);
    } finally {
      await db.pool.query(`insert into graphile_migrate.migrations select * from json_populate_record(null::graphile_migrate.migrations, $1)`, [JSON.stringify(last)]);
    }
  });

  it('workers that stopped reporting', async () => {
    await db.pool.query(`insert into marketplace.seller_transfer_worker_heartbeats values ('w1', 'host', 1, now() - interval '1 hour', now() - interval '10 minutes', null)`);
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

  it('the guard out of sync with the transitions table is reported through seller_transfer_guard_in_sync()', async () => {
    const { rows: [has] } = await db.pool.query(`select to_regprocedure('marketplace.seller_transfer_guard_in_sync()') is not null as ok`);
    if (has.ok) {
      // The real function (migration 000007 on main): a transition added with the recompile trigger disabled.
      await db.pool.query('alter table marketplace.seller_transfer_transitions disable trigger seller_transfer_transitions_changed');
      await db.pool.query(`insert into marketplace.seller_transfer_transitions values ('completed', 'failed', 'behind the guard''s back')`);
      try {
        const { code, json } = await doctor();
        expect(code).toBe(3);
        expect(problems(json)).toContain('guard compiled from the transitions table');
      } finally {
        await db.pool.query(`delete from marketplace.seller_transfer_transitions where from_status = 'completed' and to_status = 'failed'`);
        await db.pool.query('alter table marketplace.seller_transfer_transitions enable trigger seller_transfer_transitions_changed');
      }
      return;
    }
    // Without it, doctor says it cannot check (a warning, exit 0) ...
    const without = await doctor();
    expect(without.json.checks.find((c) => c.check === 'guard compiled from the transitions table')).toMatchObject({ status: 'warn' });
    expect(without.code).toBe(0);
    // ... and calls the function once it exists (a stand-in answering "out of sync"; not shipped).
    await db.pool.query(`create function marketplace.seller_transfer_guard_in_sync() returns boolean language sql as 'select false'`);
    try {
      const { code, json } = await doctor();
      expect(code).toBe(3);
      expect(problems(json)).toEqual(['guard compiled from the transitions table']);
    } finally {
      await db.pool.query('drop function marketplace.seller_transfer_guard_in_sync()');
    }
    console.warn('skipped: a transition added behind the guard\'s back needs marketplace.seller_transfer_guard_in_sync() (migration 000007 on main); only the plumbing was tested');
  });

  it('bad input is one line on stderr', async () => {
    expectOneLineError(await cli('doctor', '--verbose'), "unknown option '--verbose'", 2);
  });
});
