// The overview's money: per currency and status, for today, the last 7 days and a range of days,
// in each currency's unit (USD 2 decimals, JPY none, KWD 3): the figures equal a hand-written SQL
// sum (formatted by the database's own seller_transfer_amount_text), golden strings for the three
// exponents, each figure's link lists exactly the rows it sums; the money waiting for funds and
// past its SLO; the viewer's time zone moves "today"; a bad period says so.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { postLogin, sessionCookie, startTestConsole, VIEWER, type TestConsole } from './support/console.ts';
import { useTestDatabase } from './support/database.ts';

const db = useTestDatabase();
let c: TestConsole;
let cookie: string;
const seller = randomUUID();

/** Rows as a service would write them, but with a chosen status, error and creation time (triggers off: the owner seeding history-less rows). */
async function seed(rows: Array<{ currency: string; amount: number; status: string; agoDays?: number; error?: string }>): Promise<void> {
  await db.pool.query(
    `alter table marketplace.seller_transfers disable trigger user;
     insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, status,
                                               stripe_transfer_id, reversal_amount_cents, next_retry_at, last_error, created_at)
     select gen_random_uuid(), '${seller}', 'acct_money', r.amount, r.currency, r.status,
            case when r.status in ('completed', 'reversal_pending', 'reversed') then 'tr_m' || md5(random()::text) end,
            case when r.status in ('reversal_pending', 'reversed') then r.amount / 2 end,
            case when r.status = 'failed' then now() + interval '1 hour' end,
            r.error, now() - make_interval(days => r.ago)
       from jsonb_to_recordset($$${JSON.stringify(rows.map((r) => ({ ...r, ago: r.agoDays ?? 0, error: r.error ?? null })))}$$::jsonb)
            as r(currency text, amount bigint, status text, ago int, error text);
     alter table marketplace.seller_transfers enable trigger user;`,
  );
}

async function get(path: string, headers: Record<string, string> = {}): Promise<{ status: number; html: string }> {
  const res = await fetch(`${c.url}${path}`, { headers: { cookie, ...headers }, redirect: 'manual' });
  return { status: res.status, html: await res.text() };
}

const unescape = (s: string) => s.replaceAll('&amp;', '&').replaceAll('&#39;', "'").replaceAll('&quot;', '"');

/** The money table's cells: status ('all' for the currency's total) x currency -> the text and the link. */
function moneyCells(html: string): Map<string, { text: string; href: string }> {
  const table = /<table class="money">([\s\S]*?)<\/table>/.exec(html)?.[1] ?? '';
  const out = new Map<string, { text: string; href: string }>();
  for (const [, href, text] of table.matchAll(/<a href="(\/transfers\?[^"]+)">([^<]+)<\/a>/g)) {
    const q = new URLSearchParams(unescape(href!).split('?')[1]);
    out.set(`${q.get('status')} ${q.get('currency')}`, { text: text!, href: unescape(href!) });
  }
  return out;
}

/** The database's own sums for a window, formatted by marketplace.seller_transfer_amount_text. */
async function sqlSums(fromSql: string, toSql = 'null'): Promise<Map<string, string>> {
  const { rows } = await db.pool.query<{ status: string; currency: string; text: string }>(
    `select coalesce(status, 'all') as status, currency, marketplace.seller_transfer_amount_text(sum(amount_cents)::bigint, currency) as text
       from marketplace.seller_transfers
      where created_at >= ${fromSql} and (${toSql}::timestamptz is null or created_at < ${toSql})
      group by grouping sets ((status, currency), (currency))`,
  );
  return new Map(rows.map((r) => [`${r.status} ${r.currency}`, r.text]));
}

const TODAY_UTC = `(date_trunc('day', now() at time zone 'UTC') at time zone 'UTC')`;

beforeAll(async () => {
  c = await startTestConsole(db.url, { stripeMode: 'simulator' });
  cookie = sessionCookie(await postLogin(c.url, VIEWER.name, VIEWER.password));
  await seed([
    // Today: USD 1,234.56 completed (two rows), JPY 1,200 pending, KWD 1.250 failed, and a reversal.
    { currency: 'usd', amount: 100000, status: 'completed' },
    { currency: 'usd', amount: 23456, status: 'completed' },
    { currency: 'usd', amount: 5000, status: 'reversed' },
    { currency: 'jpy', amount: 1000, status: 'pending' },
    { currency: 'jpy', amount: 200, status: 'pending' },
    { currency: 'kwd', amount: 1000, status: 'failed' },
    { currency: 'kwd', amount: 250, status: 'failed', error: 'Stripe: balance_insufficient (the platform balance)' },
    // Three days ago: in the last 7 days, not today; pending that long is past the pending SLO.
    { currency: 'usd', amount: 777, status: 'pending', agoDays: 3 },
    { currency: 'jpy', amount: 5, status: 'completed', agoDays: 3 },
    // Ten days ago: in neither.
    { currency: 'kwd', amount: 9, status: 'completed', agoDays: 10 },
  ]);
});
afterAll(async () => {
  await c?.close();
});

describe('overview money', () => {
  it('today: per currency and status, equal to the SQL sum, golden for USD, JPY and KWD', async () => {
    const { status, html } = await get('/');
    expect(status).toBe(200);
    const cells = moneyCells(html);
    const expected = await sqlSums(TODAY_UTC);
    expect(new Map([...cells].map(([k, v]) => [k, v.text]))).toEqual(expected);
    // Golden: the currency's unit and decimals, from marketplace.currencies.
    expect(cells.get('completed usd')!.text).toBe('1,234.56 USD');
    expect(cells.get('all usd')!.text).toBe('1,284.56 USD');
    expect(cells.get('pending jpy')!.text).toBe('1,200 JPY');
    expect(cells.get('failed kwd')!.text).toBe('1.250 KWD');
    // The reversal amounts column (reversed: half of 50.00 USD).
    expect(html).toMatch(/<td class="num">25\.00 USD<\/td>/);
  });

  it("each figure's link lists exactly the rows it sums", async () => {
    const cells = moneyCells((await get('/')).html);
    for (const key of ['completed usd', 'all usd', 'failed kwd', 'pending jpy']) {
      const { status, html } = await get(cells.get(key)!.href);
      expect(status, html.slice(0, 300)).toBe(200);
      const ids = [...html.matchAll(/<a href="\/transfers\/([0-9a-f-]{36})">/g)].map((m) => m[1]);
      const [st, cur] = key.split(' ');
      const { rows } = await db.pool.query(
        `select id from marketplace.seller_transfers where currency = $1 and ($2 = 'all' or status = $2) and created_at >= ${TODAY_UTC}`,
        [cur, st],
      );
      expect(ids.sort(), key).toEqual(rows.map((r) => r.id).sort());
    }
  });

  it('the last 7 days and a range of days', async () => {
    const week = moneyCells((await get('/?period=7d')).html);
    expect(new Map([...week].map(([k, v]) => [k, v.text]))).toEqual(await sqlSums(`now() - interval '7 days'`));
    expect(week.get('pending usd')!.text).toBe('7.77 USD');
    expect(week.has('completed kwd')).toBe(false);

    const {
      rows: [d],
    } = await db.pool.query<{ day: string }>(`select to_char((now() at time zone 'UTC')::date - 10, 'YYYY-MM-DD') as day`);
    const range = await get(`/?period=range&from=${d!.day}&to=${d!.day}`);
    const cells = moneyCells(range.html);
    expect([...cells].map(([k, v]) => `${k} ${v.text}`)).toEqual(['all kwd 0.009 KWD', 'completed kwd 0.009 KWD']);
  });

  it('the money waiting for funds and past its SLO is called out, with its list', async () => {
    const { html } = await get('/');
    const stuck = /<h3 id="stuck">([\s\S]*?)<\/table>/.exec(html)![1]!;
    const {
      rows: [funds],
    } = await db.pool.query(
      `select marketplace.seller_transfer_amount_text(sum(amount_cents)::bigint, currency) as t from marketplace.seller_transfers_waiting_for_funds group by currency`,
    );
    expect(funds.t).toBe('0.250 KWD');
    expect(stuck).toContain(`<a href="/transfers?status=failed&amp;currency=kwd">0.250 KWD</a>`);
    const { rows: slo } = await db.pool.query(
      `select status, currency, marketplace.seller_transfer_amount_text(sum(amount_cents)::bigint, currency) as t
         from marketplace.seller_transfers_past_slo group by status, currency`,
    );
    expect(slo.length).toBeGreaterThan(0);
    for (const r of slo) expect(stuck).toContain(`status=${r.status}&amp;currency=${r.currency}&amp;order=overdue">${r.t}</a>`);
  });

  it("today starts at midnight in the viewer's time zone", async () => {
    const zone = 'Pacific/Kiritimati'; // UTC+14: its day starts 14 hours before UTC's
    const { html } = await get('/', { cookie: `${cookie}; st_console_tz=${zone}` });
    const {
      rows: [r],
    } = await db.pool.query<{ from_at: Date }>(`select date_trunc('day', now() at time zone $1) at time zone $1 as from_at`, [zone]);
    const created = [...moneyCells(html).values()][0]!.href;
    expect(new URLSearchParams(created.split('?')[1]).get('created_from')).toBe(r!.from_at.toISOString());
    expect(html).toContain('Times: Pacific/Kiritimati');
  });

  it('a bad period says why and shows today; never a 5xx', async () => {
    for (const q of [
      'period=week',
      'period=range&from=2025-02-30',
      'period=range&from=2025-02-01&to=2025-01-01',
      'period=range&from=2020-01-01&to=2025-01-01',
    ]) {
      const { status, html } = await get(`/?${q}`);
      expect(status, q).toBe(200);
      expect(html, q).toMatch(/<p class="error" role="alert">[^<]*showing today<\/p>/);
    }
  });
});
