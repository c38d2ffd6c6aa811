// `seller-transfers list`: filters (status, seller, account, currency, age), keyset paging with
// --limit and --after, and amounts in the currency's unit in every format (USD two decimals, JPY
// none, KWD three), against a real database through the real CLI.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { cliFor, expectOneLineError } from './support/cli.ts';
import { useTestDatabase } from './support/database.ts';

// Each CLI run is a fresh node process (seconds on a loaded machine): allow for it.
vi.setConfig({ testTimeout: 180_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url);

interface JsonRow {
  id: string;
  status: string;
  amount: string | null;
  currency: string;
  amount_minor: number;
  reversal_amount: string | null;
  seller_id: string;
  stripe_account_id: string;
  last_error: string | null;
}

const seller = randomUUID();
const other = randomUUID();
const ids: Record<string, string> = {};

/** A row as a service writes it, created `ago` before now (the history and guard apply as for any writer). */
async function insert(name: string, o: { seller: string; amount: number; currency: string; account: string; ago: string }): Promise<void> {
  const { rows } = await db.pool.query<{ id: string }>(
    `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, created_at)
     values (gen_random_uuid(), $1, $2, $3, $4, now() - $5::interval) returning id`,
    [o.seller, o.account, o.amount, o.currency, o.ago],
  );
  ids[name] = rows[0]!.id;
}

beforeAll(async () => {
  await insert('usd', { seller, amount: 2500, currency: 'usd', account: 'acct_list1', ago: '5 minutes' });
  await insert('jpy', { seller, amount: 1200, currency: 'jpy', account: 'acct_list1', ago: '3 hours' });
  await insert('kwd', { seller, amount: 1250, currency: 'kwd', account: 'acct_list2', ago: '20 hours' });
  await insert('big', { seller: other, amount: 123456789, currency: 'usd', account: 'acct_list3', ago: '1 minute' });
  // The USD row paid and partly reversed, the JPY row failed with an error a spreadsheet would run.
  await db.pool.query(`select marketplace.mark_seller_transfer_paid($1, $2, '')`, [ids['usd'], `tr_${ids['usd']!.replaceAll('-', '')}`]);
  await db.pool.query(`select marketplace.reverse_seller_transfer($1, 'partial refund', 1050)`, [ids['usd']]);
  await db.pool.query(
    `update marketplace.seller_transfers set status = 'failed', next_retry_at = now() + interval '1 hour', retry_count = 1,
            last_error = '=HYPERLINK("x"), then a "quote"' where id = $1`,
    [ids['jpy']],
  );
});

const listJson = async (...args: string[]) => {
  const run = await cli('list', '--json', ...args);
  expect(run.code, run.stderr).toBe(0);
  return JSON.parse(run.stdout) as { transfers: JsonRow[]; next: string | null };
};

describe('list: amounts in the currency unit', () => {
  it('table: USD with two decimals, JPY none, KWD three, the reversal beside the amount', async () => {
    const run = await cli('list', '--seller', seller);
    expect(run.code, run.stderr).toBe(0);
    const line = (name: string) => run.stdout.split('\n').find((l) => l.includes(ids[name]!))!;
    expect(line('usd')).toMatch(/│ reversal_pending\s+│ 25\.00 USD\s+│ 10\.50 USD\s+│ acct_list1/);
    expect(line('jpy')).toMatch(/│ failed\s+│ 1,200 JPY\s+│ -\s+│ acct_list1/);
    expect(line('kwd')).toMatch(/│ pending\s+│ 1\.250 KWD\s+│ -\s+│ acct_list2/);
    expect(run.stdout).toContain('3 shown, newest first; no more');
    expect((await cli('list', '--seller', other)).stdout).toContain('1,234,567.89 USD');
  });

  it('json: the amount in the unit as a string, the minor units beside it, newest first', async () => {
    const { transfers, next } = await listJson('--seller', seller);
    expect(next).toBeNull();
    expect(transfers.map((t) => [t.id, t.status, t.amount, t.currency, t.amount_minor, t.reversal_amount])).toEqual([
      [ids['usd'], 'reversal_pending', '25.00', 'usd', 2500, '10.50'],
      [ids['jpy'], 'failed', '1200', 'jpy', 1200, null],
      [ids['kwd'], 'pending', '1.250', 'kwd', 1250, null],
    ]);
  });

  it('csv: RFC 4180 quoting, amounts in the unit, and no formula a spreadsheet would run', async () => {
    const run = await cli('list', '--seller', seller, '--format', 'csv');
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trimEnd().split('\r\n');
    expect(lines[0]).toBe(
      'id,status,amount,currency,reversal_amount,seller_id,order_id,stripe_account_id,stripe_transfer_id,stripe_reversal_id,retry_count,next_retry_at,last_error,created_at,updated_at',
    );
    expect(lines).toHaveLength(4);
    expect(lines[1]).toMatch(new RegExp(`^${ids['usd']},reversal_pending,25\\.00,usd,10\\.50,${seller},`));
    expect(lines[2]).toMatch(new RegExp(`^${ids['jpy']},failed,1200,jpy,,${seller},`));
    expect(lines[2]).toContain(`,"'=HYPERLINK(""x""), then a ""quote""",`);
    expect(lines[3]).toMatch(new RegExp(`^${ids['kwd']},pending,1\\.250,kwd,,`));
  });
});

describe('list: filters', () => {
  const idsOf = async (...args: string[]) => (await listJson(...args)).transfers.map((t) => t.id);

  it('status (one or several), seller, account, currency (any case), age', async () => {
    expect(await idsOf('--seller', seller, '--status', 'failed')).toEqual([ids['jpy']]);
    expect(await idsOf('--seller', seller, '--status', 'pending,failed')).toEqual([ids['jpy'], ids['kwd']]);
    expect(await idsOf('--account', 'acct_list1')).toEqual([ids['usd'], ids['jpy']]);
    expect(await idsOf('--currency', 'KWD', '--seller', seller)).toEqual([ids['kwd']]);
    expect(await idsOf('--seller', seller, '--older-than', '1h')).toEqual([ids['jpy'], ids['kwd']]);
    expect(await idsOf('--seller', seller, '--newer-than', '10h')).toEqual([ids['usd'], ids['jpy']]);
    expect(await idsOf('--seller', seller, '--older-than', '1h', '--newer-than', '10h')).toEqual([ids['jpy']]);
    expect(await idsOf('--seller', seller, '--status', 'completed')).toEqual([]);
    expect((await cli('list', '--seller', seller, '--status', 'completed')).stdout).toBe('no transfer matches\n');
  });

  it('--limit and --after page through every row once, in order, in every format', async () => {
    const all = await idsOf('--limit', '1000');
    expect(all.length).toBeGreaterThanOrEqual(4);
    const seen: string[] = [];
    let after: string | null = null;
    for (let pages = 0; pages < 10; pages++) {
      const page: { transfers: JsonRow[]; next: string | null } = await listJson('--limit', '2', ...(after ? ['--after', after] : []));
      seen.push(...page.transfers.map((t) => t.id));
      after = page.next;
      if (!after) break;
    }
    expect(seen).toEqual(all);
    const first = await listJson('--limit', '2');
    const table = await cli('list', '--limit', '2');
    expect(table.stdout).toContain(`2 shown, newest first; the next page: the same command with --after ${first.next}`);
    const csv = await cli('list', '--limit', '2', '--format', 'csv');
    expect(csv.stderr).toBe(`more transfers: run again with --after ${first.next}\n`);
  });
});

describe('list: mistakes are one line, exit 2', () => {
  it.each([
    [['--format', 'xml'], "argument 'xml' is invalid"],
    [['--limit', '0'], '--limit takes a whole number from 1 to 1000'],
    [['--limit', '5000'], '--limit takes a whole number from 1 to 1000'],
    [['--status', 'stuck'], '--status: "stuck" is not a status (pending, '],
    [['--seller', 'bob'], '--seller: "bob" is not a seller id'],
    [['--account', 'bob'], '--account: "bob" is not a Stripe account id'],
    [['--currency', 'xyz'], '--currency: "xyz" is not in marketplace.currencies'],
    [['--older-than', 'yesterday'], '--older-than takes an age such as 90s'],
    [['--after', 'MA'], '--after: "MA" is not a cursor `list` printed'],
  ])('list %j', async (args, message) => {
    expectOneLineError(await cli('list', ...args), message, 2);
  });
});
