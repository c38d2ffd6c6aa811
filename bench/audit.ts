// Figure 6: `seller-transfers audit` (marketplace.audit_seller_transfers) over the whole table.
// The table is filled past the triggers (session_replication_role = replica) with rows whose
// history is consistent, about 2 events per row (30% pending, 50% completed, 10% reversal_pending,
// 10% reversed), plus a handful of rows moved past the guard that the audit must find.
import { check, fmt, median, ms, progress, rowsLabel, stopwatch, type BenchContext, type FigureResult } from './lib.ts';

const BAD_ROWS = 10;

export async function auditFigure(ctx: BenchContext): Promise<FigureResult> {
  const { pool } = ctx;
  const rows = ctx.mode === 'quick' ? 100_000 : 1_000_000;
  const runs = ctx.mode === 'quick' ? 1 : 3;
  const took = stopwatch();
  await pool.query('truncate marketplace.seller_transfers, marketplace.seller_transfer_events');
  progress(`audit: loading ${rowsLabel(rows)} rows with their history`);
  const c = await pool.connect();
  try {
    await c.query('begin');
    await c.query('set local session_replication_role = replica');
    await c.query(`
      insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status, stripe_transfer_id, stripe_reversal_id)
      select gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'acct_bench', 1000, 'usd',
             case when i % 10 < 3 then 'pending' when i % 10 < 8 then 'completed' when i % 10 = 8 then 'reversal_pending' else 'reversed' end,
             case when i % 10 >= 3 then 'tr_' || i end, case when i % 10 = 9 then 'trr_' || i end
        from generate_series(1, $1::int) i`, [rows]);
    await c.query(`
      insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, actor)
      select t.id, e.f, e.t, 'bench'
        from marketplace.seller_transfers t
       cross join lateral (values (1, null, 'pending'), (2, 'pending', 'completed'), (3, 'completed', 'reversal_pending'), (4, 'reversal_pending', 'reversed')) e(n, f, t)
       where e.n <= case t.status when 'pending' then 1 when 'completed' then 2 when 'reversal_pending' then 3 else 4 end
       order by t.id, e.n`);
    // Rows moved past the guard and the history: completed back to pending.
    await c.query(`update marketplace.seller_transfers set status = 'pending'
                    where id in (select id from marketplace.seller_transfers where status = 'completed' limit $1)`, [BAD_ROWS]);
    await c.query('commit');
  } finally {
    c.release();
  }
  await pool.query('vacuum analyze marketplace.seller_transfers, marketplace.seller_transfer_events');
  const { rows: [counts] } = await pool.query<{ events: string }>('select count(*) as events from marketplace.seller_transfer_events');
  const events = Number(counts!.events);

  const times: number[] = [];
  let found = 0;
  for (let i = 0; i < runs; i++) {
    progress(`audit: run ${i + 1}/${runs}`);
    const t = stopwatch();
    const { rows: [r] } = await pool.query<{ n: string }>('select count(*) as n from marketplace.audit_seller_transfers()');
    times.push(t());
    found = Number(r!.n);
  }
  const perMillion = median(times) * (1_000_000 / rows);
  return {
    key: 'audit',
    title: '6. audit',
    method: `\`select * from marketplace.audit_seller_transfers()\` over ${rowsLabel(rows)} transfers with ${fmt(events)} history events ` +
      `(loaded past the triggers, ${BAD_ROWS} rows then moved past the guard); median of ${runs} run(s), scaled to 1M transfers.`,
    tables: [{
      title: 'audit of the whole table',
      head: ['transfers', 'events', 'runs', 'median', 'per 1M transfers', 'problems found'],
      rows: [[rowsLabel(rows), fmt(events), String(runs), ms(median(times)), ms(perMillion), String(found)]],
    }],
    checks: [
      check('audit', 'full audit per 1M transfers', perMillion, 'ms', '<=', 10_000, `median ${ms(median(times))} for ${rowsLabel(rows)} rows, ${fmt(events)} events`),
      check('audit', 'finds every row moved past the guard', found === BAD_ROWS ? 1 : 0, 'bool', '>=', 1, `${found} problem(s) reported for ${BAD_ROWS} rows moved`),
    ],
    notes: ['One sort of the events by (transfer_id, id) feeds lag() and last_value() over the same window, and one hash join matches rows with their last event: the cost grows linearly with the table.'],
    seconds: took() / 1000,
  };
}
