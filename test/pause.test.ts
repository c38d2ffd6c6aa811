// The fleet's pause switch (issue 28): while paused no worker starts a Stripe call and dispatch
// hands nothing out, services keep inserting and their rows wait; resume pays each of them once.
// A call already in flight finishes and is recorded. Pause and resume are recorded with who and
// why, only an operator may set them, and the CLI, the console and the metrics say so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkerMetrics } from '../src/metrics.ts';
import { cliFor, expectOneLineError } from './support/cli.ts';
import { OPERATOR, VIEWER, csrfOf, postLogin, sessionCookie, startTestConsole, type TestConsole } from './support/console.ts';
import { useTestDatabase } from './support/database.ts';
import { committedAs, insertTransfer, pgError } from './support/transfers.ts';
import { expectDatabaseMatchesLedger, useTestWorker, waitFor } from './support/worker.ts';

const db = useTestDatabase();
const cli = cliFor(() => db.url);

/** Pauses (or resumes) as marketplace_operator for `person`, committed; the database error or null. */
function setSwitch(pause: boolean, reason: string, person = 'alice', role = 'marketplace_operator') {
  return committedAs(db.pool, role, async (c) => {
    await c.query(`select set_config('marketplace.requested_by', $1, true)`, [person]);
    await c.query(`select * from marketplace.${pause ? 'pause' : 'resume'}_seller_transfers($1)`, [reason]);
  });
}

async function pauseEvents() {
  return (await db.pool.query('select action, actor, requested_by, reason from marketplace.seller_transfer_pause_events order by id')).rows;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Rows of `ids` per status. */
async function statuses(ids: string[]): Promise<Record<string, number>> {
  const { rows } = await db.pool.query<{ status: string; n: number }>(
    'select status, count(*)::int as n from marketplace.seller_transfers where id = any($1::uuid[]) group by status',
    [ids],
  );
  return Object.fromEntries(rows.map((r) => [r.status, r.n]));
}

describe('the switch in SQL', () => {
  it('records pause and resume with the role, the person and the reason; refuses a blank or long reason and a second pause', async () => {
    expect(await setSwitch(true, '  Stripe outage INC-1  ')).toBeNull();
    const {
      rows: [state],
    } = await db.pool.query('select * from marketplace.seller_transfer_pause_state()');
    expect(state).toMatchObject({ paused: true, actor: 'marketplace_operator', requested_by: 'alice', reason: 'Stripe outage INC-1' });
    expect((await setSwitch(true, 'again', 'bob'))?.code).toBe('55000'); // already paused: the first reason stays
    expect((await setSwitch(false, ' '))?.code).toBe('22023');
    expect((await setSwitch(false, 'x'.repeat(501)))?.code).toBe('22001');
    expect(await setSwitch(false, 'Stripe is back', 'bob')).toBeNull();
    expect((await setSwitch(false, 'twice'))?.code).toBe('55000');
    expect(await pauseEvents()).toEqual([
      { action: 'pause', actor: 'marketplace_operator', requested_by: 'alice', reason: 'Stripe outage INC-1' },
      { action: 'resume', actor: 'marketplace_operator', requested_by: 'bob', reason: 'Stripe is back' },
    ]);
    // Append-only, even for the owner.
    expect((await pgError(() => db.pool.query('delete from marketplace.seller_transfer_pause_events'))).code).toBe('42501');
    expect((await pgError(() => db.pool.query(`update marketplace.seller_transfer_pause_events set reason = 'x'`))).code).toBe('42501');
  });

  it('a reader, a writer (a service) or the worker cannot pause or resume, nor set the switch by hand', async () => {
    for (const role of ['marketplace_reader', 'marketplace_writer', 'marketplace_worker']) {
      expect((await setSwitch(true, 'not mine', 'mallory', role))?.code, role).toBe('42501');
      const byHand = await committedAs(db.pool, role, (c) => c.query('update marketplace.seller_transfer_pause set paused = true'));
      expect(byHand?.code, role).toBe('42501');
    }
    const {
      rows: [s],
    } = await db.pool.query('select marketplace.seller_transfers_paused() as paused');
    expect(s.paused).toBe(false);
  });
});

describe('with a worker running', () => {
  const { sim } = useTestWorker(db);
  afterAll(async () => {
    sim.setLatency({ fixedMs: 0 });
  });

  it('paused: services keep inserting, nothing is dispatched and no Stripe call is made; resumed: each row is paid exactly once', async () => {
    // The worker is up and paying (so the quiet below is the pause's doing).
    const first = await insertTransfer(db.pool);
    await waitFor('the first payout', async () => ((await statuses([first]))['completed'] === 1 ? true : undefined));

    expect(await setSwitch(true, 'wrong batch inserted by a service')).toBeNull();
    const callsAtPause = sim.calls().length;
    const ids: string[] = [];
    for (let i = 0; i < 20; i++) {
      const err = await committedAs(db.pool, 'marketplace_writer', async (c) => {
        ids.push(await insertTransfer(c, 100 + i));
      });
      expect(err).toBeNull();
    }
    await sleep(3_000);
    expect(sim.calls().length).toBe(callsAtPause);
    expect(await statuses(ids)).toEqual({ pending: 20 });
    // Not handed out either: no lease, no job.
    const {
      rows: [held],
    } = await db.pool.query(
      `select count(*) filter (where next_retry_at is not null)::int as leased,
              (select count(*)::int from graphile_worker.jobs) as jobs
         from marketplace.seller_transfers where id = any($1::uuid[])`,
      [ids],
    );
    expect(held).toEqual({ leased: 0, jobs: 0 });

    expect(await setSwitch(false, 'batch checked: pay it')).toBeNull();
    await waitFor('all 20 paid', async () => ((await statuses(ids))['completed'] === 20 ? true : undefined), 30_000);
    expect(await expectDatabaseMatchesLedger(db.pool, sim)).toEqual({ transfers: 21, reversals: 0 });
  });

  it('a job handed out just before the pause makes no Stripe call: its row is handed back due, unchanged, and paid once resumed', async () => {
    // A row taken by dispatch (a job for it) in the very transaction that pauses: the worker runs
    // the job while paused, as it would one handed out a moment before the pause committed. The
    // row is inserted in that transaction too: committed alone it is due at once, and the running
    // worker could pay it before the lease below (it did, on a loaded machine).
    const calls = sim.calls().length;
    const c = await db.pool.connect();
    let id: string;
    try {
      await c.query('begin');
      id = await insertTransfer(c);
      // As dispatch does: the row leased, and a job carrying that lease.
      const {
        rows: [{ lease }],
      } = await c.query(
        `update marketplace.seller_transfers set next_retry_at = now() + interval '10 minutes' where id = $1 returning next_retry_at::text as lease`,
        [id],
      );
      await c.query(
        `select graphile_worker.add_job('seller_transfer_create', json_build_object('id', $1::uuid, 'lease', $2::timestamptz),
                                        job_key := marketplace.seller_transfer_job_key($1))`,
        [id, lease],
      );
      await c.query('set local role marketplace_operator');
      await c.query(`select * from marketplace.pause_seller_transfers('Stripe outage')`);
      await c.query('commit');
    } finally {
      c.release();
    }
    await waitFor('the job to run', async () =>
      (await db.pool.query('select 1 from graphile_worker.jobs')).rowCount === 0 ? true : undefined,
    );
    const {
      rows: [row],
    } = await db.pool.query(
      `select status, retry_count, last_error, stripe_key_generation, next_retry_at <= now() as due,
              exists (select 1 from marketplace.seller_transfer_claims c where c.transfer_id = t.id) as claimed
         from marketplace.seller_transfers t where id = $1`,
      [id],
    );
    expect(row).toEqual({ status: 'pending', retry_count: 0, last_error: null, stripe_key_generation: 0, due: true, claimed: false });
    expect(sim.calls().length).toBe(calls);

    expect(await setSwitch(false, 'Stripe is back')).toBeNull();
    await waitFor('paid after resume', async () => ((await statuses([id]))['completed'] === 1 ? true : undefined));
    expect(sim.ledger().filter((e) => e.metadata['seller_transfer_id'] === id)).toHaveLength(1);
  });

  it('a Stripe call in flight when the pause commits finishes and is recorded (never lost, never doubled)', async () => {
    sim.setLatency({ fixedMs: 1_500 });
    const id = await insertTransfer(db.pool);
    await waitFor('the worker to claim it', async () =>
      (await db.pool.query('select 1 from marketplace.seller_transfer_claims where transfer_id = $1', [id])).rowCount ? true : undefined,
    );
    await sleep(300); // past the pause check: the request is on its way to Stripe
    expect(await setSwitch(true, 'incident')).toBeNull();
    await waitFor('the in-flight payout recorded', async () => ((await statuses([id]))['completed'] === 1 ? true : undefined));
    expect(sim.ledger().filter((e) => e.metadata['seller_transfer_id'] === id)).toHaveLength(1);
    sim.setLatency({ fixedMs: 0 });
    expect(await setSwitch(false, 'over')).toBeNull();
    expect(await expectDatabaseMatchesLedger(db.pool, sim)).toMatchObject({ reversals: 0 });
  });
});

describe('what the front ends say', () => {
  it('the CLI pauses and resumes with a reason; stats and doctor say the fleet is paused, since when, by whom and why', async () => {
    expectOneLineError(await cli('pause'), "required option '--reason <text>' not specified", 2);
    const paused = await cli('pause', '--reason', 'Stripe outage INC-7');
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toMatch(/^seller transfers paused since \S+ by .+ \(cli\) as postgres: Stripe outage INC-7$/m);
    expectOneLineError(await cli('pause', '--reason', 'again'), 'already paused');

    const stats = await cli('stats');
    expect(stats.stdout.split('\n')[0]).toMatch(/^PAUSED: paused since .* by .+ \(cli\) as postgres: Stripe outage INC-7; /);
    const statsJson = JSON.parse((await cli('stats', '--json')).stdout);
    expect(statsJson.pause).toMatchObject({ paused: true, reason: 'Stripe outage INC-7' });

    const doctor = await cli('doctor', '--json');
    const check = JSON.parse(doctor.stdout).checks.find((c: { check: string }) => c.check === 'fleet not paused');
    expect(check).toMatchObject({ status: 'warn' });
    expect(check.detail).toMatch(/paused since .* by .+ \(cli\) as postgres: Stripe outage INC-7/);
    expect((await cli('doctor')).stdout).toMatch(/^warn\s+fleet not paused\s+paused since /m);

    // The metrics: 1 while paused, with when it began.
    const metrics = createWorkerMetrics(db.pool);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^seller_transfers_paused 1$/m);
    expect(text).toMatch(/^seller_transfers_paused_since_timestamp_seconds \d{10}/m);

    const resumed = await cli('resume', '--reason', 'over', '--json');
    expect(JSON.parse(resumed.stdout)).toMatchObject({ paused: false, reason: null });
    expect((await cli('stats')).stdout).not.toMatch(/PAUSED/);
    expect(JSON.parse((await cli('doctor', '--json')).stdout).checks).toContainEqual(
      expect.objectContaining({ check: 'fleet not paused', status: 'ok' }),
    );
    await new Promise((r) => setTimeout(r, 1_100)); // past the metrics' 1 s cache
    expect(await metrics.registry.metrics()).toMatch(/^seller_transfers_paused 0$/m);
    expect((await pauseEvents()).slice(-2)).toEqual([
      expect.objectContaining({ action: 'pause', actor: 'postgres', reason: 'Stripe outage INC-7' }),
      expect.objectContaining({ action: 'resume', actor: 'postgres', reason: 'over' }),
    ]);
  });

  describe('the console', () => {
    let c: TestConsole;
    beforeAll(async () => {
      c = await startTestConsole(db.url);
    });
    afterAll(async () => {
      await c?.close();
    });

    async function as(user: { name: string; password: string }) {
      const cookie = sessionCookie(await postLogin(c.url, user.name, user.password));
      const page = (path = '/') => fetch(`${c.url}${path}`, { headers: { cookie } }).then((r) => r.text());
      const post = async (path: string, reason: string) =>
        fetch(`${c.url}${path}`, {
          method: 'POST',
          redirect: 'manual',
          headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', 'sec-fetch-site': 'same-origin' },
          body: new URLSearchParams({ _csrf: csrfOf(await page()), reason }),
        });
      return { page, post };
    }

    it('an operator pauses with a reason and every page shows the banner; a viewer sees it but cannot pause or resume', async () => {
      const otto = await as(OPERATOR);
      const vera = await as(VIEWER);
      const home = await otto.page();
      expect(home, home.slice(home.indexOf('<main'), home.indexOf('<main') + 1500)).toContain('action="/pause"');
      expect(await vera.page()).not.toContain('action="/pause"');
      expect((await vera.post('/pause', 'viewer tries')).status).toBe(403);
      expect((await otto.post('/pause', '   ')).status).toBe(400);
      expect((await pauseEvents()).filter((e) => e.reason === 'viewer tries')).toEqual([]);

      const done = await otto.post('/pause', 'wrong batch from orders-service');
      expect(done.status).toBe(303);
      expect(done.headers.get('location')).toBe('/?done=pause#pause');
      for (const path of ['/', '/transfers?status=all', '/doctor', '/preferences']) {
        const html = await vera.page(path);
        expect(html, path).toMatch(
          /<p class="paused" role="alert"><strong>Payouts paused<\/strong> since .*by otto \(console\) as marketplace_operator because: wrong batch from orders-service\./,
        );
      }
      expect(await otto.page()).toContain('action="/resume"');
      expect((await vera.post('/resume', 'viewer resumes')).status).toBe(403);
      expect((await otto.post('/pause', 'twice')).status).toBe(400); // already paused: refused, said on the page

      expect((await otto.post('/resume', 'checked with orders team')).status).toBe(303);
      expect(await vera.page()).not.toContain('class="paused"');
      expect((await pauseEvents()).slice(-2)).toEqual([
        { action: 'pause', actor: 'marketplace_operator', requested_by: 'otto (console)', reason: 'wrong batch from orders-service' },
        { action: 'resume', actor: 'marketplace_operator', requested_by: 'otto (console)', reason: 'checked with orders team' },
      ]);
    });
  });
});
