// `migrate --dry-run` says which lock each statement takes (src/db/statement-locks.ts). Every rule
// of its table is checked here against the locks PostgreSQL really takes: each sample statement runs
// in a transaction on a probe table, and pg_locks says the strongest lock the session then holds
// on it. (CONCURRENTLY forms cannot run in a transaction; their modes are PostgreSQL's documented ones.)
import { describe, expect, it } from 'vitest';
import { splitStatements, statementLocks } from '../src/db/statement-locks.ts';
import { useTestDatabase } from './support/database.ts';

const db = useTestDatabase();

const SETUP = `
create schema lock_probe;
create table lock_probe.other (id int primary key);
create table lock_probe.t (id int primary key, v int, other_id int);
create index t_v_idx on lock_probe.t (v);
alter table lock_probe.t add constraint t_v_positive check (v > 0) not valid;
create function lock_probe.f() returns trigger language plpgsql as $$ begin return null; end $$;
create trigger tr after insert on lock_probe.t for each row execute function lock_probe.f();
create view lock_probe.w as select id from lock_probe.t;`;

// [statement, the relation whose lock is read]
const SAMPLES: Array<[string, string]> = [
  ['create index t_other_idx on lock_probe.t (other_id)', 'lock_probe.t'],
  ['create unique index if not exists t_id_v_idx on only lock_probe.t (id, v)', 'lock_probe.t'],
  ['drop index lock_probe.t_v_idx', 'lock_probe.t'],
  ['drop index if exists lock_probe.t_v_idx', 'lock_probe.t'],
  ['alter table lock_probe.t validate constraint t_v_positive', 'lock_probe.t'],
  ['alter table lock_probe.t disable trigger tr', 'lock_probe.t'],
  ['alter table lock_probe.t add constraint t_other_fk foreign key (other_id) references lock_probe.other (id) not valid', 'lock_probe.t'],
  [
    'alter table lock_probe.t add constraint t_other_fk foreign key (other_id) references lock_probe.other (id) not valid',
    'lock_probe.other',
  ],
  ['alter table lock_probe.t add column x int', 'lock_probe.t'],
  ['alter table lock_probe.t add constraint t_v_small check (v < 10) not valid', 'lock_probe.t'],
  ['create trigger tr2 after update on lock_probe.t for each row execute function lock_probe.f()', 'lock_probe.t'],
  ['create or replace trigger tr after insert on lock_probe.t for each row execute function lock_probe.f()', 'lock_probe.t'],
  ['drop trigger tr on lock_probe.t', 'lock_probe.t'],
  ['create table lock_probe.n (id int primary key, t_id int references lock_probe.t (id))', 'lock_probe.t'],
  ['drop table lock_probe.other', 'lock_probe.other'],
  ['create or replace view lock_probe.w as select id from lock_probe.t', 'lock_probe.w'],
  ['create view lock_probe.w2 as select id from lock_probe.t', 'lock_probe.t'],
  ["comment on table lock_probe.t is 'probe'", 'lock_probe.t'],
  ["comment on column lock_probe.t.v is 'probe'", 'lock_probe.t'],
  ["comment on function lock_probe.f() is 'probe'", 'lock_probe.t'],
  ["comment on trigger tr on lock_probe.t is 'probe'", 'lock_probe.t'],
  ["comment on constraint t_v_positive on lock_probe.t is 'probe'", 'lock_probe.t'],
  ['grant select on lock_probe.t to public', 'lock_probe.t'],
  ['revoke all on function lock_probe.f() from public', 'lock_probe.t'],
  ['create or replace function lock_probe.g() returns int language sql as $$ select count(*)::int from lock_probe.t $$', 'lock_probe.t'],
  ['insert into lock_probe.t (id, v) values (1, 1)', 'lock_probe.t'],
  ['update lock_probe.t set v = 2', 'lock_probe.t'],
  ['delete from lock_probe.t', 'lock_probe.t'],
  ['lock table lock_probe.t in share row exclusive mode', 'lock_probe.t'],
  ['analyze lock_probe.t', 'lock_probe.t'],
  ["set local lock_timeout = '1s'", 'lock_probe.t'],
];

const PG_MODE: Record<string, string> = {
  'ACCESS SHARE': 'AccessShareLock',
  'ROW SHARE': 'RowShareLock',
  'ROW EXCLUSIVE': 'RowExclusiveLock',
  'SHARE UPDATE EXCLUSIVE': 'ShareUpdateExclusiveLock',
  SHARE: 'ShareLock',
  'SHARE ROW EXCLUSIVE': 'ShareRowExclusiveLock',
  EXCLUSIVE: 'ExclusiveLock',
  'ACCESS EXCLUSIVE': 'AccessExclusiveLock',
};
const STRENGTH = Object.values(PG_MODE);

describe('the lock table of migrate --dry-run', () => {
  it.each(SAMPLES)('%s: the lock on %s is what PostgreSQL takes', async (sql, relation) => {
    const c = await db.pool.connect();
    try {
      await c.query('drop schema if exists lock_probe cascade');
      await c.query(SETUP);
      const oid = (await c.query<{ oid: number }>('select $1::regclass::oid as oid', [relation])).rows[0]!.oid;
      await c.query('begin');
      await c.query(sql);
      const { rows } = await c.query<{ mode: string }>(
        `select mode from pg_locks where pid = pg_backend_pid() and locktype = 'relation' and relation = $1 and granted`,
        [oid],
      );
      await c.query('rollback');
      const strongest = rows.map((r) => r.mode).sort((a, b) => STRENGTH.indexOf(b) - STRENGTH.indexOf(a))[0] ?? null;
      const claims = statementLocks(sql);
      const claim = claims.find((x) => x.target === relation) ?? claims[0]!;
      if (claim.mode === 'none') expect([null, 'AccessShareLock']).toContain(strongest);
      else expect(strongest).toBe(PG_MODE[claim.mode]);
    } finally {
      c.release();
    }
  });

  it('says "unknown" for code, and for a statement kind it does not know', () => {
    expect(statementLocks('select marketplace.compile_seller_transfer_guards()')[0]!.mode).toBe('unknown');
    expect(statementLocks('do $$ begin perform 1; end $$')[0]!.mode).toBe('unknown');
    expect(statementLocks('cluster lock_probe.t using t_pkey')[0]!.mode).toBe('unknown');
  });

  it('splits a migration at top-level semicolons only, with the line each statement starts on', () => {
    const sql =
      "-- header\ncreate function f() returns int language sql as $$ select 1; $$;\n\n/* c; */ comment on table t is 'a;b';\nselect ';' as \"x;\"";
    expect(splitStatements(sql)).toEqual([
      { line: 2, text: 'create function f() returns int language sql as $$ select 1; $$' },
      { line: 4, text: "comment on table t is 'a;b'" },
      { line: 5, text: 'select \';\' as "x;"' },
    ]);
  });
});
