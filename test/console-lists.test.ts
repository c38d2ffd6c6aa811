// The console's lists beyond one status: the all-statuses list, the header's search box (each id
// shape lands on its row or its list), the reversal amount column, bulk actions only where one
// can apply, and the export: CSV and JSON of any filtered list, the columns of `seller-transfers
// list --format csv|json` (the shared src/core/transfer-export.ts), streamed from one snapshot in
// batches (100k rows: the export's transaction is still reading after the first bytes arrive,
// and the file parses back to the same rows). Plus what every page carries: the Stripe
// environment badge, relative times with the absolute one in the viewer's zone, and the refresh.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listTransfers } from '../src/core/read-model.ts';
import { CSV_HEADER, csv, transferJson } from '../src/core/transfer-export.ts';
import { csrfOf, OPERATOR, postLogin, sessionCookie, startTestConsole, VIEWER, type TestConsole } from './support/console.ts';
import { useTestDatabase } from './support/database.ts';
import { transferIn } from './support/transfers.ts';

const db = useTestDatabase();
let c: TestConsole;
let operator: string;
let viewer: string;
const ids: Record<string, string> = {};

async function get(path: string, cookie = operator, headers: Record<string, string> = {}) {
  const res = await fetch(`${c.url}${path}`, { headers: { cookie, ...headers }, redirect: 'manual' });
  return { status: res.status, location: res.headers.get('location'), html: await res.text(), headers: res.headers };
}

const listedIds = (html: string) => [...html.matchAll(/<a href="\/transfers\/([0-9a-f-]{36})"><code>/g)].map((m) => m[1]!);

/** RFC 4180 records of a CSV text (quoted fields may hold commas, quotes and line breaks). */
function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  for (const [, field, end] of text.matchAll(/("(?:[^"]|"")*"|[^,"\r\n]*)(,|\r\n|$)/g)) {
    row.push(field!.startsWith('"') ? field!.slice(1, -1).replaceAll('""', '"') : field!);
    if (end !== ',') {
      if (row.length > 1 || row[0] !== '') rows.push(row);
      row = [];
      if (end === '') break;
    }
  }
  return rows;
}

beforeAll(async () => {
  c = await startTestConsole(db.url, { stripeMode: 'live' });
  operator = sessionCookie(await postLogin(c.url, OPERATOR.name, OPERATOR.password));
  viewer = sessionCookie(await postLogin(c.url, VIEWER.name, VIEWER.password));
  for (const s of ['pending', 'completed', 'reversed', 'permanently_failed', 'failed'] as const) ids[s] = await transferIn(db.pool, s);
});
afterAll(async () => {
  await c?.close();
});

describe('search box', () => {
  it('each id shape lands on its row or its list', async () => {
    const { rows } = await db.pool.query(
      `select id, order_id, seller_id, stripe_account_id, stripe_transfer_id, stripe_reversal_id from marketplace.seller_transfers where id = $1`,
      [ids['reversed']],
    );
    const t = rows[0];
    const find = (q: string) => get(`/find?q=${encodeURIComponent(q)}`);
    expect((await find(t.id)).location).toBe(`/transfers/${t.id}`);
    expect((await find(t.id.toUpperCase())).location).toBe(`/transfers/${t.id}`);
    expect((await find(t.order_id)).location).toBe(`/transfers/${t.id}`);
    expect((await find(t.stripe_transfer_id)).location).toBe(`/transfers/${t.id}`);
    expect((await find(t.stripe_reversal_id)).location).toBe(`/transfers/${t.id}`);
    expect((await find(t.seller_id)).location).toBe(`/transfers?status=all&seller=${t.seller_id}`);
    expect((await find(t.stripe_account_id)).location).toBe(`/transfers?status=all&account=${t.stripe_account_id}`);
    // An order with two payouts: the list of them.
    const order = randomUUID();
    await db.pool.query(
      `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
       select $1, gen_random_uuid(), 'acct_two', 100, 'usd' from generate_series(1, 2)`,
      [order],
    );
    expect((await find(order)).location).toBe(`/transfers?status=all&order_id=${order}`);
    const list = await get(`/transfers?status=all&order_id=${order}`);
    expect(listedIds(list.html)).toHaveLength(2);
    // Unknown: 404 with a sentence; not an id: 400.
    expect((await find(randomUUID())).status).toBe(404);
    const bad = await find('hello');
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('is not a transfer, order or seller id');
  });
});

describe('lists', () => {
  it('all statuses: every status on one list, with a status column, newest first', async () => {
    const { status, html } = await get('/transfers?status=all');
    expect(status).toBe(200);
    const { rows } = await db.pool.query('select id from marketplace.seller_transfers order by created_at desc, id desc limit 50');
    expect(listedIds(html)).toEqual(rows.map((r) => r.id));
    expect(html).toContain('<th scope="col">Status</th>');
  });

  it('the reversal amount column', async () => {
    const { html } = await get('/transfers?status=reversed');
    expect(html).toMatch(/<td class="num">10\.00 USD<\/td>\s*<td class="num">10\.00 USD<\/td>/);
  });

  it('no bulk actions where none can apply: terminal lists and completed have no checkboxes', async () => {
    for (const s of ['reversed', 'permanently_failed', 'completed']) {
      const { html } = await get(`/transfers?status=${s}`);
      expect(html, s).not.toContain('name="ids"');
      expect(html, s).not.toContain('Bulk action');
    }
    const failed = await get('/transfers?status=failed');
    expect(failed.html).toContain(`value="${ids['failed']}"`);
    // The all-statuses list: a checkbox only on the rows an action applies to.
    const all = await get('/transfers?status=all');
    expect(all.html).toContain(`name="ids" value="${ids['pending']}"`);
    expect(all.html).not.toContain(`name="ids" value="${ids['reversed']}"`);
    // A viewer: none at all.
    expect((await get('/transfers?status=failed', viewer)).html).not.toContain('name="ids"');
  });
});

describe('every page', () => {
  it('the environment badge from the configuration, relative times with the absolute time in the title, in the chosen zone', async () => {
    const { html } = await get(`/transfers/${ids['completed']}`);
    expect(html).toMatch(/<span class="env env-live" title="Stripe, live mode[^"]*">Stripe: <strong>live<\/strong><\/span>/);
    expect(html).toMatch(
      /<time datetime="[0-9T:.-]+Z" title="\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC \([0-9T:.-]+Z\)">(just now|\d+ s ago)<\/time>/,
    );
    // A request cannot change the badge.
    expect((await get('/', operator, { 'x-stripe-mode': 'simulator', cookie: `${operator}; mode=test` })).html).toContain('env-live');
    // The time zone: a POST of the viewer's own (a viewer may), then the titles are in it.
    const prefs = await get('/preferences', viewer);
    const res = await fetch(`${c.url}/preferences`, {
      method: 'POST',
      redirect: 'manual',
      headers: { cookie: viewer, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrfOf(prefs.html), tz: 'Asia/Tokyo', next: `/transfers/${ids['completed']}` }),
    });
    expect(res.status).toBe(303);
    const tz = res.headers.get('set-cookie')!.split(';')[0]!;
    expect(tz).toBe('st_console_tz=Asia%2FTokyo');
    const tokyo = await get(`/transfers/${ids['completed']}`, `${viewer}; ${tz}`);
    expect(tokyo.html).toMatch(/title="\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} GMT\+9 \(/);
    expect(tokyo.html).toContain('Times: Asia/Tokyo');
    // A zone nobody knows is refused; a forged cookie is read as UTC.
    const bad = await fetch(`${c.url}/preferences`, {
      method: 'POST',
      headers: { cookie: viewer, 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ _csrf: csrfOf(prefs.html), tz: 'Mars/Olympus' }),
    });
    expect(bad.status).toBe(400);
    expect((await get('/', `${viewer}; st_console_tz=%3Cscript%3E`)).html).toContain('Times: UTC');
  });

  it('the overview and lists update in place by their one script, reload only when asked without it, and say when they last did', async () => {
    const overview = await get('/');
    // Without JavaScript, no reload by default: a timer the person did not choose fails WCAG 2.2.1 (axe's meta-refresh).
    expect(overview.html).not.toContain('http-equiv="refresh"');
    expect(overview.html).toMatch(/<p class="refreshed" id="live" data-every="10">As of <time datetime="[^"]+Z" title="[^"]+UTC[^"]*">/);
    expect(overview.html).toContain('<a href="/?refresh=30">30 s</a>');
    // The reload a viewer chose applies only without scripts; with them, the script's interval is the choice.
    const chosen = await get('/?refresh=30');
    expect(chosen.html).toContain('<noscript><meta http-equiv="refresh" content="30"></noscript>');
    expect(chosen.html).toContain('data-every="30"');
    expect((await get('/?refresh=off')).html).toContain('data-every="0"');
    expect((await get('/?refresh=7')).html).not.toContain('http-equiv="refresh"');
    const list = await get('/transfers?status=failed');
    expect(list.html).not.toContain('http-equiv="refresh"');
    expect(list.html).toContain('<form method="post" action="/bulk/preview" data-live id="live-rows">');
    expect((await get('/transfers?status=failed&refresh=10')).html).toContain(
      '<noscript><meta http-equiv="refresh" content="10"></noscript>',
    );
    // One script, from our origin, no inline code: the CSP allows 'self' and nothing inline.
    const csp = overview.headers.get('content-security-policy')!;
    expect(csp).toMatch(/script-src 'self';/);
    expect(csp).not.toMatch(/unsafe-inline|unsafe-eval/);
    const scripts = [...overview.html.matchAll(/<script\b[^>]*>([\s\S]*?)<\/script>/gi)];
    expect(scripts.map((m) => [m[0].match(/src="([^"]+)"/)?.[1], m[1]])).toEqual([['/static/live.js', '']]);
    expect(overview.html).not.toMatch(/\son[a-z]+=/i);
    const js = await fetch(`${c.url}/static/live.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toMatch(/^text\/javascript/);
    expect(await js.text()).toContain("querySelectorAll('[data-live]')");
  });
});

describe('the jobs behind a payout', () => {
  it("a payout's page lists its graphile-worker jobs (marketplace.seller_transfer_jobs); one without says so", async () => {
    const before = await get(`/transfers/${ids['pending']}`);
    expect(before.html).toContain('No graphile-worker job holds this payout now');
    await db.pool.query('select * from marketplace.dispatch_seller_transfers(1000, 60)');
    const {
      rows: [job],
    } = await db.pool.query('select * from marketplace.seller_transfer_jobs($1)', [ids['pending']]);
    expect(job).toBeDefined();
    const { html } = await get(`/transfers/${ids['pending']}`);
    const section = /<h2 id="jobs">([\s\S]*?)<\/section>/.exec(html)![1]!;
    expect(section).toContain(`<td class="num">${job.job_id}</td><td><code>${job.task}</code></td>`);
    expect(section).toContain(`${job.attempts} of ${job.max_attempts}`);
  });
});

describe('export', () => {
  it('CSV and JSON: the columns and lines of `list --format csv|json`, for the filtered list', async () => {
    const seller = (await db.pool.query('select seller_id from marketplace.seller_transfers where id = $1', [ids['reversed']])).rows[0]
      .seller_id;
    const res = await get(`/transfers.csv?status=all&seller=${seller}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('text/csv; charset=utf-8');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="transfers-all-[\w-]+\.csv"$/);
    const cli = await listTransfers(c.db.reader, {
      statuses: null,
      seller,
      account: null,
      currency: null,
      createdBefore: null,
      createdSince: null,
      after: null,
      limit: 100,
    });
    expect(res.html).toBe(`${csv(cli.rows)}\r\n`);
    const json = JSON.parse((await get(`/transfers.json?status=all&seller=${seller}`)).html);
    // The CLI's JSON lines (transferJson), as JSON.
    expect(json.transfers).toEqual(JSON.parse(JSON.stringify(cli.rows.map(transferJson))));
    expect(json.transfers[0]).toMatchObject({ id: ids['reversed'], amount: '10.00', currency: 'usd' });
    expect(json.next).toBeNull();
    // A bad filter: 400, nothing exported; a viewer may export.
    expect((await get('/transfers.csv?status=nope')).status).toBe(400);
    expect((await get(`/transfers.csv?status=all&seller=${seller}`, viewer)).status).toBe(200);
  });

  it('100k rows: streamed in batches from one snapshot, and the file parses back to the same rows', async () => {
    const seller = randomUUID();
    // The owner's bulk load, triggers off (the history is not what this test reads).
    const owner = await db.pool.connect();
    try {
      await owner.query('alter table marketplace.seller_transfers disable trigger user');
      await owner.query(
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, created_at)
         select gen_random_uuid(), $1, 'acct_bulk', 100 + g, case when g % 3 = 0 then 'jpy' when g % 3 = 1 then 'kwd' else 'usd' end,
                now() - make_interval(secs => g / 10.0)
           from generate_series(1, 100000) g`,
        [seller],
      );
    } finally {
      await owner.query('alter table marketplace.seller_transfers enable trigger user');
      owner.release();
    }
    const res = await fetch(`${c.url}/transfers.csv?status=pending&seller=${seller}`, { headers: { cookie: operator } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-length')).toBeNull(); // chunked: no length known before the end
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    const first = await reader.read();
    text += decoder.decode(first.value, { stream: true });
    // The first bytes are here and the export's snapshot is still open, reading batch by batch
    // (the client has not read the rest: the server waits for it).
    const { rows: open } = await db.pool.query(
      `select state from pg_stat_activity where datname = current_database() and application_name = 'seller-transfers-console'
          and backend_xid is null and xact_start is not null and pid <> pg_backend_pid()`,
    );
    expect(open.length, 'an open export transaction').toBeGreaterThan(0);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const lines = parseCsv(text);
    expect(lines[0]!.join(',')).toBe(CSV_HEADER);
    expect(lines.every((l) => l.length === lines[0]!.length)).toBe(true);
    const { rows } = await db.pool.query(
      `select id, case when row_number() over (order by created_at desc, id desc) <= 6 then marketplace.seller_transfer_amount_text(amount_cents, currency) end as shown
         from marketplace.seller_transfers where seller_id = $1 order by created_at desc, id desc`,
      [seller],
    );
    expect(lines.length - 1).toBe(100_000);
    expect(lines.slice(1).map((l) => l[0])).toEqual(rows.map((r) => r.id));
    // Amounts in the currency's unit (JPY none, KWD three decimals): the database's own text without its separators.
    expect(lines.slice(1, 7).map((l) => `${l[2]} ${l[3]!.toUpperCase()}`)).toEqual(
      rows.slice(0, 6).map((r) => r.shown.replaceAll(',', '')),
    );
  }, 60_000);
});

describe('amount filter, in the currency', () => {
  it("reads amounts as a person writes them in the currency's unit, with the currency's decimals, and asks for the currency", async () => {
    const jpy = randomUUID();
    await db.pool.query(
      `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency)
       values ($1, $2, $3, 'acct_amountfilter', 1200, 'jpy'), (gen_random_uuid(), $2, $3, 'acct_amountfilter', 1500, 'jpy')`,
      [jpy, randomUUID(), randomUUID()],
    );
    const shown = await get('/transfers?status=pending&account=acct_amountfilter&currency=jpy&min=1,100&max=1200');
    expect(shown.status).toBe(200);
    expect(listedIds(shown.html)).toEqual([jpy]);
    const usd = await get(`/transfers?status=pending&currency=usd&min=10.00&max=10.00`);
    expect(listedIds(usd.html)).toContain(ids['pending']);
    const decimals = await get('/transfers?status=pending&currency=jpy&min=12.5');
    expect(decimals.status).toBe(400);
    expect(decimals.html).toContain('JPY has no decimals');
    const noCurrency = await get('/transfers?status=pending&min=10');
    expect(noCurrency.status).toBe(400);
    expect(noCurrency.html).toContain('choose a currency too');
    expect(shown.html).not.toContain('minor units');
  });
});
