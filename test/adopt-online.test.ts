// adopt run online: under concurrent legacy writers (inserts, reversal requests, retry bumps, all
// through the legacy name), killed with kill -9 at each step in turn and started again. Afterwards
// no row is lost or changed, every row has its first event, audit and verify pass, the writers
// saw no errors, and none waited much longer than the lock timeout.
import { spawn } from 'node:child_process';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { projectRoot } from '../src/paths/project.ts';
import { useTestDatabase } from './support/database.ts';
import { cliFor } from './support/cli.ts';
import { applyCurrentMigration, fixtureMap, loadLegacyFixture } from './support/adopt.ts';

vi.setConfig({ testTimeout: 90_000, hookTimeout: 90_000 });

const db = useTestDatabase();
const LOCK_TIMEOUT_MS = 300;
const env = { MIGRATION_LOCK_TIMEOUT_MS: String(LOCK_TIMEOUT_MS), MIGRATION_LOCK_RETRY_SECONDS: '30' };
const cli = cliFor(() => db.url, env);
const ROWS = 6000;

/** `adopt run` as a child process, SIGKILLed on the first stderr line matching `killAt` (null: to the end). */
function adoptRun(killAt: RegExp | null): Promise<{ code: number | null; killed: boolean; stderr: string }> {
  const child = spawn(
    process.execPath,
    [
      path.join(projectRoot, 'bin/seller-transfers.js'),
      'adopt',
      'run',
      '--table',
      'legacy.seller_transfers',
      '--batch-rows',
      '500',
      '--switch-below',
      '50',
      ...fixtureMap('legacy'),
    ],
    {
      cwd: projectRoot,
      env: { ...process.env, ...env, DATABASE_URL: db.url, LOG_LEVEL: 'silent', NODE_ENV: 'test' },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let stderr = '';
  let killed = false;
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (killAt && !killed && killAt.test(stderr)) {
      killed = true;
      child.kill('SIGKILL');
    }
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, killed, stderr })));
}

/** A report on the ledger: an open transaction holding ACCESS SHARE on it, until end(). */
async function holdLedger(): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: db.url, application_name: 'a report' });
  await c.connect();
  await c.query('begin');
  await c.query('select count(*) from legacy.seller_transfer_ledger');
  return c;
}

interface Writer {
  errors: string[];
  worstMs: number;
  statements: number;
}

const writers: Writer[] = [];
const inserted: string[] = [];
const requested: string[] = [];
const bumped = new Map<string, number>();
let stop = false;
let loops: Promise<void>[] = [];

async function writerLoop(role: string, step: (c: pg.Client, n: number) => Promise<void>): Promise<void> {
  const w: Writer = { errors: [], worstMs: 0, statements: 0 };
  writers.push(w);
  const c = new pg.Client({ connectionString: db.url, application_name: `legacy ${role}` });
  await c.connect();
  await c.query(`set role ${role}`);
  for (let n = 0; !stop; n++) {
    const t0 = performance.now();
    try {
      await step(c, n);
    } catch (e) {
      w.errors.push((e as Error).message);
    }
    w.worstMs = Math.max(w.worstMs, performance.now() - t0);
    w.statements++;
    await new Promise((r) => setTimeout(r, 5));
  }
  await c.end();
}

beforeAll(async () => {
  await applyCurrentMigration(db.pool);
  await loadLegacyFixture(db.pool, 'legacy');
  // a legacy retry worker bumps failed rows: it gets the worker's rights on the project's table
  await db.pool.query(`grant select, update on legacy.seller_transfers to marketplace_worker`);
  await db.pool.query(`grant usage on schema legacy to marketplace_worker`);
  await db.pool.query(
    `insert into legacy.seller_transfers (order_id, seller_id, amount, currency, status, stripe_transfer_id, next_retry_at, created_at)
     select gen_random_uuid(), case when i % 2 = 0 then '00000000-0000-4000-8000-00000000000a'::uuid else '00000000-0000-4000-8000-00000000000b'::uuid end,
            100 + i, 'usd', (array['pending', 'completed', 'failed'])[i % 3 + 1],
            case when i % 3 = 1 then 'tr_bulk' || i end, case when i % 3 = 2 then now() + interval '1 hour' end, now() - interval '2 days'
       from generate_series(1, $1) i`,
    [ROWS],
  );
  const completed = (
    await db.pool.query<{ id: string }>(`select id from legacy.seller_transfers where stripe_transfer_id like 'tr_bulk%' order by id`)
  ).rows;
  const failed = (await db.pool.query<{ id: string }>(`select id from legacy.seller_transfers where status = 'failed' order by id`)).rows;
  loops = [
    writerLoop('marketplace_writer', async (c) => {
      const { rows } = await c.query<{ id: string }>(
        `insert into legacy.seller_transfers (order_id, seller_id, amount, currency)
         values (gen_random_uuid(), '00000000-0000-4000-8000-00000000000a', 4200, 'usd') returning id`,
      );
      inserted.push(rows[0]!.id);
    }),
    writerLoop('marketplace_writer', async (c, n) => {
      const id = completed[n % completed.length]!.id;
      if (requested.includes(id)) return;
      await c.query(`update legacy.seller_transfers set status = 'reversal_pending' where id = $1 and status = 'completed'`, [id]);
      requested.push(id);
    }),
    writerLoop('marketplace_worker', async (c, n) => {
      const id = failed[n % failed.length]!.id;
      await c.query(
        `update legacy.seller_transfers set retry_count = retry_count + 1, next_retry_at = now() + interval '1 hour' where id = $1`,
        [id],
      );
      bumped.set(id, (bumped.get(id) ?? 0) + 1);
    }),
  ];
});

afterAll(async () => {
  stop = true;
  await Promise.all(loops);
});

describe('adopt run under concurrent legacy writers, killed at each step', () => {
  it('finishes after kill -9 at capture, in the copy, in the sync and inside the switch, losing nothing', async () => {
    const before = (
      await db.pool.query<{ id: string; amount: number; currency: string; created_at: Date; retry_count: number }>(
        'select id, amount, currency, created_at, retry_count from legacy.seller_transfers order by id',
      )
    ).rows;
    const kills: string[] = [];
    for (const killAt of [/adopt capture/, /adopt copy: .*\n(.*\n){3}/, /adopt sync: /, /adopt switch: locking/]) {
      // Inside the switch: a report holds the ledger, so the switch's transaction (which re-points
      // the ledger's key) waits in its lock_timeout, retried, when the kill arrives.
      const report = killAt.source.includes('switch') ? await holdLedger() : null;
      const r = await adoptRun(killAt);
      await report?.end();
      expect(r.killed, r.stderr).toBe(true);
      kills.push((await db.pool.query<{ step: string }>('select step from marketplace.seller_transfer_adoptions')).rows[0]!.step);
    }
    // the step recorded after each kill: capture done; copy, sync under way; the switch rolled back
    expect(kills).toEqual(['copy', 'copy', 'sync', 'sync']);
    const last = await adoptRun(null);
    expect(last.code, last.stderr).toBe(0);
    stop = true;
    await Promise.all(loops);

    // writers: no errors, and no wait much beyond the lock timeout (a statement queued behind one
    // lock attempt at most; slack for a shared machine)
    for (const w of writers) {
      expect(w.errors).toEqual([]);
      expect(w.statements).toBeGreaterThan(10);
      expect(w.worstMs).toBeLessThan(LOCK_TIMEOUT_MS + 2_700);
    }

    // no row lost or changed
    const after = new Map(
      (
        await db.pool.query<{ id: string; amount_cents: string; currency: string; created_at: Date; status: string; retry_count: number }>(
          'select id, amount_cents, currency, created_at, status, retry_count from marketplace.seller_transfers',
        )
      ).rows.map((r) => [r.id, r]),
    );
    for (const b of before) {
      const a = after.get(b.id);
      expect(a, b.id).toBeDefined();
      expect([Number(a!.amount_cents), a!.currency, a!.created_at.getTime()]).toEqual([b.amount, b.currency, b.created_at.getTime()]);
    }
    for (const id of inserted) expect(after.has(id), id).toBe(true);
    for (const id of requested) expect(after.get(id)?.status, id).toBe('reversal_pending');
    const retriesBefore = new Map(before.map((b) => [b.id, b.retry_count]));
    for (const [id, n] of bumped) expect(after.get(id)!.retry_count, id).toBe(retriesBefore.get(id)! + n);
    expect(after.size).toBe(before.length + inserted.length);

    // every row has its first event: adopted, or the insert of a row written after the switch
    const { rows } = await db.pool.query<{ n: number }>(
      `select count(*)::int as n from marketplace.seller_transfers t
        where (select count(*) from marketplace.seller_transfer_events e where e.transfer_id = t.id and e.from_status is null) <> 1`,
    );
    expect(rows[0]!.n).toBe(0);
    expect((await cli('audit')).code).toBe(0);
    const verify = await cli('adopt', 'verify', '--table', 'legacy.seller_transfers');
    expect(verify.code, verify.stdout).toBe(0);
  });
});
