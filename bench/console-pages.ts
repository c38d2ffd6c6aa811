// Figure 11: the operator console's server time per page at 1M transfers. The table is filled
// past the triggers (session_replication_role = replica) as on a busy marketplace: created over
// 30 days, 90 % completed, 5 % reversed, 2 % permanently_failed, 1 % each pending, failed and
// reversal_pending, with a consistent history (one event per step). Each page is requested in
// process (fastify's inject: routing, the queries, rendering; no network), as a signed-in viewer.
import { buildConsoleApp } from '../src/console/app.ts';
import { openConsoleDb } from '../src/console/db.ts';
import { hashPassword } from '../src/console/users.ts';
import { createLogger } from '../src/logger.ts';
import { check, fmt, median, ms, percentile, progress, rowsLabel, stopwatch, type BenchContext, type FigureResult } from './lib.ts';

const TARGET_MS = 300;

export async function load(ctx: Pick<BenchContext, "pool">, rows: number): Promise<void> {
  const c = await ctx.pool.connect();
  try {
    await c.query('truncate marketplace.seller_transfers, marketplace.seller_transfer_events');
    await c.query('begin');
    await c.query('set local session_replication_role = replica');
    await c.query(`
      insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status,
                                                stripe_transfer_id, stripe_reversal_id, next_retry_at, created_at, updated_at)
      select gen_random_uuid(), gen_random_uuid(), ('00000000-0000-4000-8000-' || lpad((i % 20000)::text, 12, '0'))::uuid,
             'acct_' || (i % 5000), 100 + i % 100000, case when i % 7 = 0 then 'jpy' else 'usd' end, s.status,
             case when s.status in ('completed', 'reversal_pending', 'reversed') then 'tr_' || i end,
             case when s.status = 'reversed' then 'trr_' || i end,
             case when s.status = 'failed' then now() + make_interval(secs => i % 3600) end,
             now() - make_interval(secs => i * 2.6), now() - make_interval(secs => i * 2.6)
        from generate_series(1, $1::int) i
       cross join lateral (select case when i % 100 < 90 then 'completed' when i % 100 < 95 then 'reversed' when i % 100 < 97 then 'permanently_failed'
                                       when i % 100 = 97 then 'pending' when i % 100 = 98 then 'failed' else 'reversal_pending' end as status) s`, [rows]);
    await c.query(`
      insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, actor, occurred_at)
      select t.id, e.f, e.t, 'bench', t.created_at + make_interval(secs => e.n)
        from marketplace.seller_transfers t
       cross join lateral (values (1, null, 'pending', 'x'), (2, 'pending', 'completed', 'completed reversal_pending reversed'),
                                  (3, 'pending', 'failed', 'failed permanently_failed'), (4, 'completed', 'reversal_pending', 'reversal_pending reversed'),
                                  (5, 'failed', 'permanently_failed', 'permanently_failed'), (6, 'reversal_pending', 'reversed', 'reversed')) e(n, f, t, on_path)
       where e.n = 1 or t.status = any (string_to_array(e.on_path, ' '))
       order by t.id, e.n`);
    await c.query('commit');
  } finally {
    c.release();
  }
  await ctx.pool.query('vacuum analyze marketplace.seller_transfers, marketplace.seller_transfer_events');
}

export async function consolePagesFigure(ctx: BenchContext): Promise<FigureResult> {
  const rows = ctx.mode === 'quick' ? 100_000 : 1_000_000;
  const runs = ctx.mode === 'quick' ? 5 : 15;
  const took = stopwatch();
  progress(`console-pages: loading ${rowsLabel(rows)} transfers with their history`);
  await load(ctx, rows);
  const { rows: [sample] } = await ctx.pool.query<{ id: string; seller_id: string; stripe_transfer_id: string }>(
    `select id, seller_id, stripe_transfer_id from marketplace.seller_transfers where status = 'reversed' order by created_at desc limit 1 offset 100`);
  const db = await openConsoleDb(ctx.url);
  const { app, sessions } = await buildConsoleApp({ db, users: [{ name: 'bench', role: 'viewer', hash: hashPassword('bench-password-unused') }], logger: createLogger('silent'), stripeMode: 'test', secureCookies: false,
    sessionMinutes: 60, bulkMax: 100, loginMaxFailures: 5 });
  const cookie = `st_console_session=${(await sessions.create('bench', 'viewer')).id}`;
  const get = async (url: string) => {
    const res = await app.inject({ method: 'GET', url, headers: { cookie } });
    if (res.statusCode >= 400) throw new Error(`GET ${url}: ${res.statusCode} ${res.body.slice(0, 200)}`);
    return res;
  };
  const firstPage = await get('/transfers?status=completed');
  const next = /href="\/transfers\?([^"]*after=[^"]+)"/.exec(firstPage.body)?.[1]?.replace(/&amp;/g, '&');
  const pages: Array<[string, string, boolean]> = [
    ['overview', '/', true],
    ['list completed, newest first', '/transfers?status=completed', true],
    ['list completed, next page (keyset)', `/transfers?${next}`, true],
    ['list failed, longest due first', '/transfers?status=failed&order=overdue', true],
    ['list reversed, by seller', `/transfers?status=reversed&seller=${sample!.seller_id}`, true],
    ['list completed, amount range + created window', `/transfers?status=completed&min=5000&max=6000&created_from=${new Date(Date.now() - 7 * 86400_000).toISOString().slice(0, 10)}`, true],
    ['find tr_', `/find?q=${sample!.stripe_transfer_id}`, true],
    ['transfer page', `/transfers/${sample!.id}`, true],
  ];
  // Audit and doctor are not here: they cost what `seller-transfers audit` and `doctor` cost
  // (figure 6), reading every row in their window.
  const results: Array<{ page: string; median: number; p95: number; target: boolean }> = [];
  try {
    for (const [name, url, target] of pages) {
      progress(`console-pages: ${name}`);
      for (let i = 0; i < 2; i++) await get(url); // warm: plans and templates cached, pages in shared buffers
      const times: number[] = [];
      for (let i = 0; i < (target ? runs : 3); i++) {
        const t = stopwatch();
        await get(url);
        times.push(t());
      }
      results.push({ page: name, median: median(times), p95: percentile(times, 95), target });
    }
  } finally {
    await app.close();
    await db.close();
  }
  return {
    key: 'console-pages',
    title: '11. console pages',
    method: `Server time of each console page (fastify inject: routing, queries as marketplace_reader, rendering; no network) with ${rowsLabel(rows)} transfers ` +
      `and about ${fmt(Math.round(rows * 2.1))} history events, created over 30 days, 90 % completed; median and p95 of ${runs} requests after 2 warm-ups. ` +
      'Audit and doctor pages are not measured here: they cost what the audit figure measures.',
    tables: [{
      title: 'server time per page',
      head: ['page', 'median', 'p95', `target < ${TARGET_MS} ms`],
      rows: results.map((r) => [r.page, ms(r.median), ms(r.p95), r.target ? (r.median < TARGET_MS ? 'yes' : 'NO') : '-']),
    }],
    checks: results.filter((r) => r.target).map((r) => check('console-pages', `${r.page} at ${rowsLabel(rows)} rows`, r.median, 'ms', '<', TARGET_MS, `p95 ${ms(r.p95)}`)),
    notes: ['Counts on the overview are capped (10,000 per status, 1,000 for due now and past SLO), each an index range scan that stops at its cap, so the overview costs the same at 10M rows; ' +
      'lists are keyset pages on the (status, created_at, id) and due-since indexes of migrations 000013 and 000014. The data is a bad day on purpose: 10,000 pending and 10,000 reversal_pending rows, all due and past their SLO.'],
    seconds: took() / 1000,
  };
}
