// Golden amounts: every command and console page that prints an amount prints it in the
// currency's unit with its code (1,234.56 USD, 1,200 JPY, 1.234 KWD), for a two-, a zero- and a
// three-decimal currency; a count printed next to an amount stays a count. One generated set of
// cases over commands x currencies, against a real database through the real CLI (a child
// process) and the console in-process.
//
// The rule is written twice, in src/money.ts (formatMinor, what the CLI and the console print)
// and in SQL (marketplace.seller_transfer_amount_text, what the database's own messages say);
// both take the exponent from marketplace.currencies. The first tests prove the two equal for
// every known currency at the edge amounts, and the reason limit of src/core/reason.ts equal
// to the database's.
import { randomUUID } from 'node:crypto';
import type Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { formatMinor } from '../src/money.ts';
import { REASON_MAX_LENGTH, reasonProblem } from '../src/core/reason.ts';
import type { StripeSimulator } from '../src/stripe-sim/index.ts';
import { cliFor, runCli, type CliRun } from './support/cli.ts';
import { OPERATOR, csrfOf, postLogin, sessionCookie, startTestConsole, type TestConsole } from './support/console.ts';
import { createTestDatabase, destroyTestDatabase, useTestDatabase } from './support/database.ts';
import { insertTransfer, pastTheGuard, setStatus } from './support/transfers.ts';
import { simulatorWithClient } from './support/worker.ts';

vi.setConfig({ testTimeout: 120_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url);

interface Case {
  code: string;
  /** The payout, in minor units, and as a person reads it. */
  amount: number;
  text: string;
  /** A partial reversal as the operator types it, and as it prints. */
  partial: string;
  partialText: string;
  /** A reversal larger than the payout, and as it prints. */
  over: string;
  overText: string;
  /** Two payouts of `amount` waiting for the platform's balance: their sum. */
  twoText: string;
  /** The amount one minor unit more (what Stripe holds in reconcile's disagreement). */
  plusOneText: string;
  /** demo --currency: its three payouts (2500, 1200 and 800 minor units), its partial refund (500), what it paid and reversed. */
  demo: { payouts: [string, string, string]; partial: string; paid: string; reversed: string };
}

const CASES: Case[] = [
  {
    code: 'usd',
    amount: 123456,
    text: '1,234.56 USD',
    partial: '1,000.5',
    partialText: '1,000.50 USD',
    over: '5000',
    overText: '5,000.00 USD',
    twoText: '2,469.12 USD',
    plusOneText: '1,234.57 USD',
    demo: { payouts: ['25.00 USD', '12.00 USD', '8.00 USD'], partial: '5.00 USD', paid: '45.00 USD', reversed: '30.00 USD' },
  },
  {
    code: 'jpy',
    amount: 1200,
    text: '1,200 JPY',
    partial: '1000',
    partialText: '1,000 JPY',
    over: '5000',
    overText: '5,000 JPY',
    twoText: '2,400 JPY',
    plusOneText: '1,201 JPY',
    demo: { payouts: ['2,500 JPY', '1,200 JPY', '800 JPY'], partial: '500 JPY', paid: '4,500 JPY', reversed: '3,000 JPY' },
  },
  {
    code: 'kwd',
    amount: 1234,
    text: '1.234 KWD',
    partial: '1.2',
    partialText: '1.200 KWD',
    over: '5',
    overText: '5.000 KWD',
    twoText: '2.468 KWD',
    plusOneText: '1.235 KWD',
    demo: { payouts: ['2.500 KWD', '1.200 KWD', '0.800 KWD'], partial: '0.500 KWD', paid: '4.500 KWD', reversed: '3.000 KWD' },
  },
];

/** What no printed amount may say: a bare minor-unit count ("cents"), or the fallback for an unknown currency. */
function expectNoMinorUnits(text: string): void {
  expect(text).not.toMatch(/\bcents\b/); // amount_cents (a column name, shown beside the amount) is not a match
  expect(text).not.toContain('minor units');
}

function ok(run: CliRun): string {
  expect(run.code, run.stderr).toBe(0);
  expectNoMinorUnits(run.stdout);
  return run.stdout;
}

describe('one rule for amounts: src/money.ts formatMinor = marketplace.seller_transfer_amount_text', () => {
  it('for every currency in marketplace.currencies, at the edge amounts, and for an unknown currency', async () => {
    const edges = [
      '0',
      '1',
      '9',
      '10',
      '99',
      '100',
      '999',
      '1000',
      '1001',
      '99999',
      '100000',
      '123456789',
      String(10n ** 12n),
      '9223372036854775807',
    ];
    const amounts = [...edges, ...edges.filter((e) => e !== '0').map((e) => `-${e}`)];
    const { rows } = await db.pool.query<{ code: string; exponent: number | null; minor: string; sql: string }>(
      `select c.code, c.exponent, a.minor::text, marketplace.seller_transfer_amount_text(a.minor, c.code) as sql
         from (select code, exponent from marketplace.currencies union all select 'xyz', null) c
        cross join unnest($1::bigint[]) a(minor)`,
      [amounts],
    );
    const currencies = new Set(rows.map((r) => r.code));
    expect(currencies.size).toBeGreaterThan(100); // Stripe's currencies, and the unknown one
    expect(rows).toHaveLength(currencies.size * amounts.length);
    const differ = rows.filter((r) => formatMinor(r.minor, r.code, r.exponent) !== r.sql);
    expect(differ.map((r) => `${r.minor} ${r.code}: ts ${formatMinor(r.minor, r.code, r.exponent)}, sql ${r.sql}`)).toEqual([]);
    // The golden texts themselves, from the database.
    for (const c of CASES) {
      const { rows: g } = await db.pool.query<{ t: string }>('select marketplace.seller_transfer_amount_text($1, $2) as t', [
        c.amount,
        c.code,
      ]);
      expect(g[0]!.t).toBe(c.text);
    }
  });

  it('the reason limit: the front ends refuse exactly what the database refuses (22001), counting characters as it does', async () => {
    const id = await insertTransfer(db.pool);
    await setStatus(db.pool, id, 'failed');
    const reasons = [
      'x'.repeat(REASON_MAX_LENGTH - 1),
      'x'.repeat(REASON_MAX_LENGTH),
      'x'.repeat(REASON_MAX_LENGTH + 1),
      // Characters outside the BMP: one character each for PostgreSQL, two UTF-16 units for JavaScript.
      '\u{1F4B8}'.repeat(REASON_MAX_LENGTH),
      '\u{1F4B8}'.repeat(REASON_MAX_LENGTH + 1),
      `${'é'.repeat(REASON_MAX_LENGTH - 1)}\u{1F4B8}`,
    ];
    for (const reason of reasons) {
      const client = await db.pool.connect();
      let refusedByDb: string | null = null;
      try {
        await client.query('begin');
        await client.query('select marketplace.retry_seller_transfer($1, $2)', [id, reason]);
      } catch (e) {
        refusedByDb = (e as { code?: string }).code ?? 'error';
      } finally {
        await client.query('rollback');
        client.release();
      }
      const label = `${[...reason].length} characters (${reason.length} UTF-16 units)`;
      expect(refusedByDb === null ? null : refusedByDb, label).toBe(reasonProblem(reason) === null ? null : '22001');
    }
  });
});

/** The rows of each currency: a paid payout (reversed in part by the CLI below) and two waiting for the platform's balance. */
const rows = new Map<string, { seller: string; paid: string; waiting: string[] }>();

/** Runs `check` for every currency at once (each CLI run is a process of its own). */
const eachCurrency = (check: (c: Case) => Promise<void>) => Promise.all(CASES.map(check));

describe('CLI: amounts in USD, JPY and KWD', () => {
  beforeAll(async () => {
    for (const c of CASES) {
      const seller = randomUUID();
      const insert = async () => {
        const { rows: r } = await db.pool.query<{ id: string }>(
          `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
           values (gen_random_uuid(), $1, 'acct_golden' || $2, $3, $2) returning id`,
          [seller, c.code, c.amount],
        );
        return r[0]!.id;
      };
      const paid = await insert();
      await db.pool.query(`select marketplace.mark_seller_transfer_paid($1, $2, '')`, [paid, `tr_${paid.replaceAll('-', '')}`]);
      // Stripe refused these for the platform's available balance: they wait for funds.
      const waiting = [await insert(), await insert()];
      for (const id of waiting) {
        await setStatus(db.pool, id, 'failed');
        await db.pool.query(
          `update marketplace.seller_transfers set retry_count = 2, next_retry_at = now() + interval '1 hour',
                  last_error = 'balance_insufficient: the platform''s available balance is too low' where id = $1`,
          [id],
        );
      }
      rows.set(c.code, { seller, paid, waiting });
    }
  });

  it('reverse: a reversal larger than the payout is refused in the unit, a partial one prints in it, a second one names it', () =>
    eachCurrency(async (c) => {
      const { paid } = rows.get(c.code)!;
      const over = await cli('reverse', paid, '--amount', c.over, '--reason', 'golden: too much');
      expect(over.code).not.toBe(0);
      expect(over.stderr).toContain(`reversal amount ${c.overText} exceeds the transfer amount of ${c.text}`);
      expectNoMinorUnits(over.stderr);

      const partial = ok(await cli('reverse', paid, '--amount', c.partial, '--reason', 'golden: partial refund'));
      expect(partial).toContain(`reversal of ${c.partialText} requested`);

      const again = await cli('reverse', paid, '--reason', 'golden: again');
      expect(again.code).not.toBe(0);
      expect(again.stderr).toContain(`is already reversal_pending (${c.partialText})`);
    }));

  it('show: the amount and the reversal', () =>
    eachCurrency(async (c) => {
      const out = ok(await cli('show', rows.get(c.code)!.paid));
      expect(out).toContain(`${c.text} (amount_cents ${c.amount})`);
      expect(out).toContain(`${c.partialText} (reversal_amount_cents `);
    }));

  it('list: the amount and the reversal in the table; the amount in the unit in JSON', () =>
    eachCurrency(async (c) => {
      const { seller } = rows.get(c.code)!;
      const out = ok(await cli('list', '--seller', seller, '--status', 'reversal_pending'));
      expect(out).toMatch(new RegExp(`│ ${c.text.replace('.', '\\.')}\\s+│ ${c.partialText.replace('.', '\\.')}\\s+│`));
      const json = JSON.parse(ok(await cli('list', '--seller', seller, '--json'))) as { transfers: Array<{ amount: string }> };
      const major = c.text.split(' ')[0]!.replaceAll(',', '');
      expect(json.transfers.map((t) => t.amount)).toEqual([major, major, major]);
    }));

  it('stats and doctor: the payouts waiting for funds, a count next to their sum', async () => {
    const [stats, doctor] = await Promise.all([cli('stats'), cli('doctor')]);
    ok(stats);
    expectNoMinorUnits(doctor.stdout); // doctor exits non-zero: payouts are waiting
    for (const c of CASES) {
      expect(stats.stdout).toMatch(new RegExp(`│ ${c.code.toUpperCase()}\\s+│ 2\\s+│ ${c.twoText.replace('.', '\\.')}\\s+│ 2\\s+│`));
      expect(doctor.stdout).toContain(`2 payout(s), ${c.twoText}`);
    }
  });

  it('retry and fail: their results print no amount in minor units', () =>
    eachCurrency(async (c) => {
      ok(await cli('retry', rows.get(c.code)!.waiting[0]!, '--reason', 'golden: balance topped up'));
      const pending = await db.pool.query<{ id: string }>(
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
         values (gen_random_uuid(), gen_random_uuid(), 'acct_fail' || $1, $2, $1) returning id`,
        [c.code, c.amount],
      );
      ok(await cli('fail', pending.rows[0]!.id, '--reason', 'golden: give up'));
    }));
});

describe('reconcile: Stripe amounts in the unit', () => {
  let sim: StripeSimulator;
  let stripe: Stripe;
  beforeAll(async () => {
    ({ sim, stripe } = await simulatorWithClient('sk_test_golden'));
  });
  afterAll(async () => {
    await sim?.close();
  });

  it('a transfer that differs by one minor unit, in each currency', async () => {
    const rows: Record<string, string> = {};
    for (const c of CASES) {
      const { rows: r } = await db.pool.query<{ id: string }>(
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
         values (gen_random_uuid(), gen_random_uuid(), 'acct_recon' || $1, $2, $1) returning id`,
        [c.code, c.amount],
      );
      const id = r[0]!.id;
      const t = await stripe.transfers.create({
        amount: c.amount + 1,
        currency: c.code,
        destination: `acct_recon${c.code}`,
        transfer_group: `seller_transfer_${id}`,
        metadata: { seller_transfer_id: id },
      });
      await db.pool.query(`select marketplace.mark_seller_transfer_paid($1, $2, '')`, [id, t.id]);
      rows[c.code] = id;
    }
    const run = await runCli(['reconcile', '--json'], {
      DATABASE_URL: db.url,
      STRIPE_SECRET_KEY: 'sk_test_golden',
      STRIPE_API_BASE: sim.url,
    });
    const report = JSON.parse(run.stdout) as { disagreements: Array<{ transfer_id: string; detail: string; fix: string }> };
    expectNoMinorUnits(report.disagreements.map((d) => `${d.detail} ${d.fix}`).join('\n'));
    for (const c of CASES) {
      const d = report.disagreements.find((x) => x.transfer_id === rows[c.code]);
      expect(d?.detail).toBe(`amount ${c.plusOneText} at Stripe, ${c.text} in the row`);
    }
  });
});

describe('console: amounts in the unit', () => {
  let con: TestConsole;
  let cookie: string;
  let csrf: string;
  const get = async (path: string) => {
    const res = await fetch(`${con.url}${path}`, { headers: { cookie } });
    const html = await res.text();
    expect(res.status, html.slice(0, 500)).toBe(200);
    // The list's amount filter still takes minor units (its label says so): input, not a printed amount.
    expectNoMinorUnits(html.replace('Amount from (minor units)', ''));
    return html;
  };
  const post = async (path: string, form: Record<string, string | string[]>) => {
    const body = new URLSearchParams({ _csrf: csrf });
    for (const [k, v] of Object.entries(form)) for (const x of [v].flat()) body.append(k, x);
    const res = await fetch(`${con.url}${path}`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded' },
      body,
    });
    return { status: res.status, html: await res.text() };
  };
  const rowOf = async (code: string, status: string) =>
    (
      await db.pool.query<{ id: string }>(
        `select id from marketplace.seller_transfers where currency = $1 and status = $2 and stripe_account_id = 'acct_golden' || $1 limit 1`,
        [code, status],
      )
    ).rows[0]!.id;

  beforeAll(async () => {
    con = await startTestConsole(db.url);
    cookie = sessionCookie(await postLogin(con.url, OPERATOR.name, OPERATOR.password));
    csrf = csrfOf(await (await fetch(`${con.url}/`, { headers: { cookie } })).text());
  });
  afterAll(async () => {
    await con?.close();
  });

  it.each(CASES.map((c) => [c.code.toUpperCase(), c] as const))('%s: list, transfer page, reverse preview and refusal', async (_n, c) => {
    const id = await rowOf(c.code, 'reversal_pending');
    expect(await get(`/transfers?status=reversal_pending&account=acct_golden${c.code}`)).toContain(c.text);
    const page = await get(`/transfers/${id}`);
    expect(page).toContain(c.text);
    expect(page).toContain(`${c.partialText} reversed or requested`);

    // A fresh paid row: the confirm page of a partial reversal, and the refusal of too much.
    const { rows } = await db.pool.query<{ id: string }>(
      `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
       values (gen_random_uuid(), gen_random_uuid(), 'acct_console' || $1, $2, $1) returning id`,
      [c.code, c.amount],
    );
    const paid = rows[0]!.id;
    await db.pool.query(`select marketplace.mark_seller_transfer_paid($1, $2, '')`, [paid, `tr_${paid.replaceAll('-', '')}`]);
    const preview = await post(`/transfers/${paid}/preview`, { action: 'reverse', reason: 'golden', amount: c.partial });
    expect(preview.status, preview.html.slice(0, 500)).toBe(200);
    expect(preview.html).toContain(c.text);
    expect(preview.html).toContain(c.partialText);
    expectNoMinorUnits(preview.html.replace(/amount_cents/g, ''));
    const over = await post(`/transfers/${paid}/preview`, { action: 'reverse', reason: 'golden', amount: c.over });
    expect(over.status).toBe(400);
    expect(over.html).toContain(`reversal amount ${c.overText} exceeds the transfer amount of ${c.text}`);
    // A refusal's DETAIL as a person reads it: the text, not the fields line programs read.
    const refused = await post(`/transfers/${paid}/preview`, { action: 'fail', reason: 'golden' });
    expect(refused.status, refused.html.slice(0, 500)).toBe(400);
    expect(refused.html).toContain(`seller transfer ${paid}: allowed from completed: reversal_pending`);
    expect(refused.html).not.toContain('seller_transfer_id=');
  });

  it('overview and doctor: the payouts waiting for funds, counted, and their sum', async () => {
    const overview = await get('/');
    const doctor = await get('/doctor');
    for (const c of CASES) {
      expect(overview).toMatch(
        new RegExp(`>${c.code.toUpperCase()}</a></th><td class="num">2</td><td class="num">${c.twoText.replace('.', '\\.')}</td>`),
      );
      expect(doctor).toContain(`2 payout(s), ${c.twoText}`);
    }
  });

  it('bulk preview: counts, no amount in minor units', async () => {
    const waiting = await Promise.all(CASES.map((c) => rowOf(c.code, 'failed')));
    const preview = await post('/bulk/preview', { action: 'retry', reason: 'golden', ids: waiting });
    expect(preview.status, preview.html.slice(0, 500)).toBe(200);
    expect(preview.html).toContain(`<strong>${waiting.length} of ${waiting.length}</strong>`);
    expectNoMinorUnits(preview.html);
  });
});

describe('demo: amounts in the unit, in each currency it can run with', () => {
  // Each run in a database of its own: the demo's stats and totals are its rows alone.
  it('demo --currency usd|jpy|kwd: the payouts, the refunds, and a count next to what they add up to', () =>
    eachCurrency(async (c) => {
      const own = await createTestDatabase();
      try {
        const run = await runCli(
          ['demo', '--timeout', '60', '--currency', c.code.toUpperCase()],
          { DATABASE_URL: own.url, STRIPE_SECRET_KEY: undefined, STRIPE_API_BASE: undefined },
          150_000,
        );
        expect(run.code, run.stderr + run.stdout).toBe(0);
        const out = ok(run);
        const uuid = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
        const re = (t: string) => t.replace(/[.$()]/g, '\\$&');
        for (const payout of c.demo.payouts) expect(out).toMatch(new RegExp(`^  ${uuid}  ${re(payout)}  pending$`, 'm'));
        expect(out).toContain(`== 5. two orders are refunded: one whole, ${c.demo.partial} of another`);
        expect(out).toContain(`reversal of ${c.demo.payouts[0]} requested`);
        expect(out).toContain(`reversal of ${c.demo.partial} requested`);
        expect(out).toContain(`the demo's payouts: paid 3 payout(s), ${c.demo.paid}; reversed 2 payout(s), ${c.demo.reversed}`);
        // What a person reads of a refusal: the text, not the fields line programs read.
        expect(out).toContain('allowed from reversed: nothing, it is terminal');
        expect(out).not.toContain('seller_transfer_id=');
        const { rows } = await own.pool.query<{ currency: string; n: string }>(
          'select currency, count(*) as n from marketplace.seller_transfers group by currency',
        );
        expect(rows).toEqual([{ currency: c.code, n: '3' }]);
      } finally {
        await destroyTestDatabase(own);
      }
    }));
});

describe('audit: a money fact changed past the guard, said in the unit', () => {
  it('money_facts_changed names both amounts in their currency, in each currency', async () => {
    const ids: Record<string, string> = {};
    for (const c of CASES) {
      const { rows: r } = await db.pool.query<{ id: string }>(
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
         values (gen_random_uuid(), gen_random_uuid(), 'acct_audit' || $1, $2, $1) returning id`,
        [c.code, c.amount],
      );
      ids[c.code] = r[0]!.id;
      await pastTheGuard(db.pool, 'update marketplace.seller_transfers set amount_cents = amount_cents + 1 where id = $1', [r[0]!.id]);
    }
    const run = await cli('audit', '--json');
    expectNoMinorUnits(run.stdout);
    const { problems } = JSON.parse(run.stdout) as { problems: Array<{ transfer_id: string; problem: string; detail: string }> };
    for (const c of CASES) {
      const found = problems.filter((p) => p.transfer_id === ids[c.code]);
      expect(found.map((p) => p.problem)).toEqual(['money_facts_changed']);
      expect(found[0]!.detail).toMatch(
        new RegExp(
          `: created as ${c.text.replace('.', '\\.')} to acct_audit${c.code}, the row now says ${c.plusOneText.replace('.', '\\.')} to acct_audit${c.code}$`,
        ),
      );
    }
  });
});
