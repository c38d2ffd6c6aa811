// The console's worker page (issue 28): the graphile-worker jobs of payouts with their state,
// attempts, last error and the worker holding them, read as marketplace_reader through
// marketplace.seller_transfer_worker_jobs (the reader still cannot read graphile_worker's
// tables); heartbeats; payouts and failures per hour over 24 hours equal to a hand-written count
// of the history, read through the history's BRIN index, and kept per closed hour by the
// process; a viewer sees it all but cannot pause from it; odd query strings get no 5xx.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { namedQueries } from '../src/db/named-queries.ts';
import { HourlyOutcomes } from '../src/console/worker-chart.ts';
import { csrfOf, OPERATOR, postLogin, sessionCookie, startTestConsole, VIEWER, type TestConsole } from './support/console.ts';
import { useTestDatabase } from './support/database.ts';
import { loadPayouts, settleTables } from './support/audit-load.ts';
import { asRole, insertTransfer, transferIn } from './support/transfers.ts';

const db = useTestDatabase();
const sql = namedQueries('src/console/queries.sql');
let c: TestConsole;
let operator: string;
let viewer: string;
let due: string;
let running: string;

async function get(path: string, cookie = operator) {
  const res = await fetch(`${c.url}${path}`, { headers: { cookie }, redirect: 'manual' });
  return { status: res.status, html: await res.text(), headers: res.headers };
}

/** The rows of the jobs table: [job, payout, task, state, attempts, run at, held by, lease, last error]. */
function jobRows(html: string): string[][] {
  const section = /<section aria-labelledby="jobs"[\s\S]*?<\/section>/.exec(html)![0];
  const body = /<caption>Running and failed first[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/.exec(section)?.[1] ?? '';
  return [...body.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) =>
    [...m[1]!.matchAll(/<td[^>]*>([\s\S]*?)<\/td>/g)].map((td) => td[1]!.replace(/<[^>]+>/g, '').trim()),
  );
}

beforeAll(async () => {
  c = await startTestConsole(db.url);
  operator = sessionCookie(await postLogin(c.url, OPERATOR.name, OPERATOR.password));
  viewer = sessionCookie(await postLogin(c.url, VIEWER.name, VIEWER.password));
  // Two due payouts handed to graphile-worker by the dispatcher (no worker runs here), then what
  // graphile-worker records: one job failed twice and waits for its retry, one is running.
  due = await insertTransfer(db.pool, 4200);
  running = await insertTransfer(db.pool, 1234);
  await db.pool.query('select * from marketplace.dispatch_seller_transfers(1000, 60)');
  await db.pool.query(
    `update graphile_worker._private_jobs set attempts = 2, last_error = 'Stripe answered 500 (api_error): try again later', run_at = now() + interval '30 seconds'
      where key = marketplace.seller_transfer_job_key($1)`,
    [due],
  );
  await db.pool.query(
    `update graphile_worker._private_jobs set attempts = 1, locked_at = now(), locked_by = 'worker-test-7'
      where key = marketplace.seller_transfer_job_key($1)`,
    [running],
  );
  await db.pool.query(
    `select marketplace.record_seller_transfer_worker_heartbeat('host-a:4242:abcd1234', 'host-a', 4242, now() - interval '1 hour', false)`,
  );
}, 60_000);
afterAll(async () => {
  await c?.close();
});

describe('worker page', () => {
  it('lists the jobs of a due payout with their attempts, last error and the worker holding them; counts per state', async () => {
    const page = await get('/worker', viewer);
    expect(page.status).toBe(200);
    const jobs = (
      await db.pool.query(
        'select * from marketplace.seller_transfer_jobs($1) union all select * from marketplace.seller_transfer_jobs($2)',
        [running, due],
      )
    ).rows;
    expect(jobs).toHaveLength(2);
    const rows = jobRows(page.html);
    // Running first, then the retrying one.
    expect(rows.map((r) => [r[0], r[1], r[2], r[3], r[4]])).toEqual([
      [String(jobs[0].job_id), running, jobs[0].task, 'running', `1 of ${jobs[0].max_attempts}`],
      [String(jobs[1].job_id), due, jobs[1].task, 'retrying', `2 of ${jobs[1].max_attempts}`],
    ]);
    expect(rows[0]![6]).toMatch(/^worker-test-7 since /);
    expect(rows[1]![8]).toBe('Stripe answered 500 (api_error): try again later');
    expect(page.html).toContain(`<a href="/transfers/${due}"><code>${due}</code></a>`);
    // Counts per state.
    const counts = /<caption>Jobs per state<\/caption>[\s\S]*?<tbody><tr>([\s\S]*?)<\/tr>/.exec(page.html)![1]!;
    expect([...counts.matchAll(/>([\d,]+)<\/td>/g)].map((m) => m[1])).toEqual(['1', '0', '1', '0', '0']);
    // The heartbeat.
    expect(page.html).toContain('<code>host-a:4242:abcd1234</code>');
    // The payout's own page shows the same job.
    const payout = await get(`/transfers/${due}`, viewer);
    expect(payout.html).toContain('Stripe answered 500 (api_error): try again later');
    expect(payout.html).toContain(`<td class="num">${jobs[1].job_id}</td>`);
  });

  it("the reader reads the jobs only through the function: graphile-worker's tables stay closed to it", async () => {
    const err = await asRole(db.pool, 'marketplace_reader', (r) =>
      r.query('select * from graphile_worker._private_jobs').then(
        () => null,
        (e: Error) => e,
      ),
    );
    expect(err?.message).toMatch(/permission denied/);
    const rows = await asRole(db.pool, 'marketplace_reader', async (r) => (await r.query(sql('worker_jobs'), [10])).rows);
    expect(rows.map((r) => r.transfer_id).sort()).toEqual([due, running].sort());
    // Capped: at most max_rows; the counts read at most cap + 1 jobs.
    expect(await asRole(db.pool, 'marketplace_reader', async (r) => (await r.query(sql('worker_jobs'), [1])).rows.length)).toBe(1);
    const capped = await asRole(db.pool, 'marketplace_reader', async (r) => (await r.query(sql('worker_job_counts'), [1])).rows);
    expect(capped.reduce((a, x) => a + Number(x.jobs), 0)).toBe(2);
    // Nobody else but the reader (and the definer) may call them.
    const writer = await asRole(db.pool, 'marketplace_writer', (r) =>
      r.query(sql('worker_jobs'), [10]).then(
        () => null,
        (e: Error) => e,
      ),
    );
    expect(writer?.message).toMatch(/permission denied for function seller_transfer_worker_jobs/);
  });

  it('a viewer sees the page and the switch but no form, and a POST from it is refused; an operator pauses from it and comes back to it', async () => {
    const page = await get('/worker', viewer);
    expect(page.html).toContain('Not paused');
    expect(page.html).not.toContain('action="/pause"');
    const refused = await fetch(`${c.url}/pause`, {
      method: 'POST',
      headers: { cookie: viewer, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrfOf(page.html), reason: 'viewer tries', back: 'worker' }),
      redirect: 'manual',
    });
    expect(refused.status).toBe(403);
    expect((await db.pool.query('select paused from marketplace.seller_transfer_pause')).rows[0].paused).toBe(false);
    const mine = await get('/worker');
    expect(mine.html).toContain('<input type="hidden" name="back" value="worker">');
    const done = await fetch(`${c.url}/pause`, {
      method: 'POST',
      headers: { cookie: operator, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrfOf(mine.html), reason: 'stripe incident', back: 'worker' }),
      redirect: 'manual',
    });
    expect(done.status).toBe(303);
    expect(done.headers.get('location')).toBe('/worker?done=pause#pause');
    // Anything else than "worker" goes back to the overview, never to a URL it names.
    const back = await fetch(`${c.url}/resume`, {
      method: 'POST',
      headers: { cookie: operator, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrfOf(mine.html), reason: 'over', back: '//evil.example/' }),
      redirect: 'manual',
    });
    expect(back.headers.get('location')).toBe('/?done=resume#pause');
  });

  it('odd query strings get a page, never a 5xx', async () => {
    for (const q of [
      '?refresh=%00',
      '?refresh=-1',
      '?done=%3Cscript%3E',
      '?refresh[]=5',
      '?' + 'x'.repeat(3000),
      '?done=pause&done=resume',
    ])
      expect((await get(`/worker${q}`)).status, q).toBe(200);
    expect((await get('/worker?done=%3Cscript%3E')).html).not.toContain('<script>');
  });
});

describe('payouts and failures per hour', () => {
  it('equal a hand-written count of the history per hour; a warm page counts only the current hour', async () => {
    // Payouts of three earlier hours (paid, failed, given up in the audit mix), loaded as the path leaves them.
    for (const [i, hoursAgo] of [26, 5, 2].entries())
      await loadPayouts(db.pool, { first: 1 + i * 1000, count: 500, createdAt: new Date(Date.now() - hoursAgo * 3600_000).toISOString() });
    await transferIn(db.pool, 'completed'); // one paid now, through the guard
    const expected = (
      await db.pool.query(`
        select to_char(date_trunc('hour', occurred_at at time zone 'UTC'), 'HH24:MI') as hour,
               date_trunc('hour', occurred_at at time zone 'UTC') as at,
               count(*) filter (where to_status = 'completed') as paid,
               count(*) filter (where to_status = 'failed') as failed,
               count(*) filter (where to_status = 'permanently_failed') as given_up
          from marketplace.seller_transfer_events
         where occurred_at >= date_trunc('hour', now() at time zone 'UTC') at time zone 'UTC' - interval '23 hours'
           and from_status is distinct from to_status
         group by 1, 2 order by 2 -- the hour itself, not its text: across midnight UTC, 00:00 comes last`)
    ).rows.filter((r) => Number(r.paid) + Number(r.failed) + Number(r.given_up) > 0);
    expect(expected.length).toBeGreaterThanOrEqual(3); // 5 h ago, 2 h ago, now (26 h ago is outside)
    const shown = (html: string) => {
      const table = /<summary>The figures per hour<\/summary>[\s\S]*?<tbody>([\s\S]*?)<\/tbody>/.exec(html)![1]!;
      const rows = [...table.matchAll(/<tr>([\s\S]*?)<\/tr>/g)].map((m) => m[1]!);
      expect(rows).toHaveLength(24);
      return rows
        .map((r) => [/<time[^>]*>([^<]+)<\/time>/.exec(r)![1]!, ...[...r.matchAll(/<td class="num">(\d+)<\/td>/g)].map((m) => m[1]!)])
        .filter((r) => r.slice(1).some((n) => n !== '0'));
    };
    const page = await get('/worker');
    expect(shown(page.html)).toEqual(expected.map((r) => [r.hour, r.paid, r.failed, r.given_up]));
    // The SVG says the same totals.
    const total = (k: string) => expected.reduce((a, r) => a + Number(r[k]), 0);
    expect(page.html).toContain(`${total('paid')} paid, ${total('failed')} failed, ${total('given_up')} given up`);

    // The chart object: cold, it counts the 24 hours; then only the hours not kept. Counting the
    // closed hours again (a fresh object) gives the same figures.
    const chart = new HourlyOutcomes();
    const cold = await asRole(db.pool, 'marketplace_reader', (r) => chart.read(r));
    expect(chart.lastCountedHours).toBe(24);
    await transferIn(db.pool, 'completed');
    const warm = await asRole(db.pool, 'marketplace_reader', (r) => chart.read(r));
    expect(chart.lastCountedHours).toBeLessThanOrEqual(2);
    expect(warm.at(-1)!.paid).toBe(cold.at(-1)!.paid + 1);
    const fresh = await asRole(db.pool, 'marketplace_reader', (r) => new HourlyOutcomes().read(r));
    expect(fresh).toEqual(warm);
    // History written late into an hour the chart keeps (stamped 7 hours ago) is counted there.
    await loadPayouts(db.pool, { first: 50_000, count: 100, createdAt: new Date(Date.now() - 7 * 3600_000).toISOString() });
    const late = await asRole(db.pool, 'marketplace_reader', (r) => chart.read(r));
    expect(late.reduce((a, h) => a + h.paid, 0)).toBeGreaterThan(warm.reduce((a, h) => a + h.paid, 0));
    expect(late).toEqual(await asRole(db.pool, 'marketplace_reader', (r) => new HourlyOutcomes().read(r)));
  });

  it("the worker's stored hours equal a hand-written count; a console process's first page then counts only the current hour; late history is counted again", async () => {
    // A hand-written count of the last 24 hours' moves per UTC hour (hours with none left out).
    const handWritten = async () =>
      (
        await db.pool.query(`
          select date_trunc('hour', occurred_at at time zone 'UTC') at time zone 'UTC' as hour,
                 count(*) filter (where to_status = 'completed')::int as paid,
                 count(*) filter (where to_status = 'failed')::int as failed,
                 count(*) filter (where to_status = 'permanently_failed')::int as given_up
            from marketplace.seller_transfer_events
           where occurred_at >= date_trunc('hour', now() at time zone 'UTC') at time zone 'UTC' - interval '23 hours'
             and from_status is distinct from to_status
           group by 1 order by 1`)
      ).rows.filter((r) => r.paid + r.failed + r.given_up > 0);
    const shownOf = (hours: Awaited<ReturnType<HourlyOutcomes['read']>>) =>
      hours
        .filter((h) => h.paid + h.failed + h.givenUp > 0)
        .map((h) => ({ hour: h.hour, paid: h.paid, failed: h.failed, given_up: h.givenUp }));
    await loadPayouts(db.pool, { first: 60_000, count: 300, createdAt: new Date(Date.now() - 4 * 3600_000).toISOString() });
    // As the worker does about every minute (a login holding only marketplace_worker may).
    const w = await db.pool.connect();
    try {
      await w.query(`set role marketplace_worker`);
      await w.query(`select marketplace.refresh_seller_transfer_outcome_hours(interval '0')`);
    } finally {
      await w.query('reset role');
      w.release();
    }
    // The stored hours: every final closed hour of the window (ended 10 minutes ago or more), each
    // equal to the hand-written count, zero where there is none.
    const { rows: stored } = await db.pool.query(
      `select hour, paid::int, failed::int, given_up::int, counted_at >= hour + interval '70 minutes' as final
         from marketplace.seller_transfer_outcome_hours order by hour`,
    );
    const expected = await handWritten();
    const hourMs = 3600_000;
    const lastFinal = Math.floor((Date.now() - 10 * 60_000) / hourMs) * hourMs - hourMs;
    expect(stored.length).toBeGreaterThanOrEqual(22);
    expect(stored.every((h) => h.final && h.hour.getTime() <= lastFinal)).toBe(true);
    for (const h of stored) {
      const e = expected.find((x) => x.hour.getTime() === h.hour.getTime());
      expect([h.hour, h.paid, h.failed, h.given_up]).toEqual([h.hour, e?.paid ?? 0, e?.failed ?? 0, e?.given_up ?? 0]);
    }
    expect(stored.some((h) => h.paid > 0)).toBe(true);
    // A console process's first page: the stored hours, and only the hours not stored counted.
    const first = new HourlyOutcomes();
    const cold = await asRole(db.pool, 'marketplace_reader', (r) => first.read(r));
    expect(first.lastCountedHours).toBeLessThanOrEqual(2);
    expect(shownOf(cold)).toEqual(expected);
    // History stamped late into a stored hour (a load of older rows, 3 hours ago): a page counts
    // that hour again before the worker refreshes, and so does the refresh.
    await loadPayouts(db.pool, { first: 70_000, count: 50, createdAt: new Date(Date.now() - 3 * 3600_000).toISOString() });
    const afterLate = await handWritten();
    expect(afterLate).not.toEqual(expected);
    expect(shownOf(await asRole(db.pool, 'marketplace_reader', (r) => new HourlyOutcomes().read(r)))).toEqual(afterLate);
    expect(shownOf(await asRole(db.pool, 'marketplace_reader', (r) => first.read(r)))).toEqual(afterLate);
    await db.pool.query(`select marketplace.refresh_seller_transfer_outcome_hours(interval '0')`);
    const again = new HourlyOutcomes();
    expect(shownOf(await asRole(db.pool, 'marketplace_reader', (r) => again.read(r)))).toEqual(afterLate);
    expect(again.lastCountedHours).toBeLessThanOrEqual(2);
    // The reader cannot write the stored hours, nor refresh them.
    await expect(
      asRole(db.pool, 'marketplace_reader', (r) => r.query(`delete from marketplace.seller_transfer_outcome_hours`)),
    ).rejects.toThrow(/permission denied/);
    await expect(
      asRole(db.pool, 'marketplace_reader', (r) => r.query(`select marketplace.refresh_seller_transfer_outcome_hours()`)),
    ).rejects.toThrow(/permission denied/);
  });

  it('the chart reads the history through its BRIN index on occurred_at, never the whole table', async () => {
    // Eight days of history, most of it older than the chart's 24 hours.
    for (let d = 1; d <= 8; d++)
      await loadPayouts(db.pool, {
        first: 100_000 + d * 20_000,
        count: 20_000,
        createdAt: new Date(Date.now() - d * 86_400_000).toISOString(),
      });
    await loadPayouts(db.pool, { first: 900_000, count: 5_000, createdAt: new Date(Date.now() - 3600_000).toISOString() });
    await settleTables(db.pool);
    const {
      rows: [r],
    } = await db.pool.query(`explain (format json) ${sql('outcomes_per_hour')}`, [new Date(Date.now() - 2 * 3600_000), new Date()]);
    const nodes: string[] = [];
    const walk = (p: Record<string, unknown>) => {
      if (p['Relation Name'] === 'seller_transfer_events' || p['Index Name'])
        nodes.push(`${p['Node Type']} ${p['Index Name'] ?? p['Relation Name']}`);
      for (const child of (p['Plans'] as Array<Record<string, unknown>> | undefined) ?? []) walk(child);
    };
    walk((r['QUERY PLAN'] as Array<{ Plan: Record<string, unknown> }>)[0]!.Plan);
    expect(nodes, nodes.join(', ')).toContain('Bitmap Index Scan seller_transfer_events_time_brin');
    expect(
      nodes.filter((n) => n.startsWith('Seq Scan')),
      nodes.join(', '),
    ).toEqual([]);
  }, 120_000);
});
