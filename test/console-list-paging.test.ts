// The console's lists page by keyset (the last row's sort key and id): every row appears exactly
// once, in order, however many share a millisecond (a JavaScript Date keeps milliseconds, the
// database microseconds), in both orders. Odd cursors are console-odd-input.test.ts's.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OPERATOR, postLogin, sessionCookie, startTestConsole, type TestConsole } from './support/console.ts';
import { useTestDatabase } from './support/database.ts';

const db = useTestDatabase();
let c: TestConsole;
let cookie: string;
beforeAll(async () => {
  c = await startTestConsole(db.url);
  cookie = sessionCookie(await postLogin(c.url, OPERATOR.name, OPERATOR.password));
});
afterAll(async () => {
  await c?.close();
});

/** Follows "Next page" from `first` to the end: the ids of every page, in order. */
async function walk(first: string): Promise<{ ids: string[]; pages: number }> {
  const ids: string[] = [];
  let path: string | null = first;
  let pages = 0;
  while (path) {
    const res: Response = await fetch(`${c.url}${path}`, { headers: { cookie } });
    const html: string = await res.text();
    expect(res.status, html.slice(0, 500)).toBe(200);
    pages++;
    ids.push(...[...html.matchAll(/<a href="\/transfers\/([0-9a-f-]{36})">/g)].map((m) => m[1]!));
    path = /<a rel="next" href="([^"]+)">/.exec(html)?.[1]?.replaceAll('&amp;', '&') ?? null;
    expect(pages).toBeLessThan(20);
  }
  return { ids, pages };
}

describe('keyset paging', () => {
  it('120 rows created within one millisecond: each shown once, newest first and longest due first', async () => {
    const seller = randomUUID();
    // created_at = one millisecond boundary + i microseconds, ids random: the order is (created_at, id).
    const { rows } = await db.pool.query<{ id: string }>(
      `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency, created_at)
       select gen_random_uuid(), $1, 'acct_paging', 100 + i, 'usd', date_trunc('milliseconds', now()) - interval '1 second' + i * interval '1 microsecond'
         from generate_series(0, 119) i
       returning id`,
      [seller],
    );
    const byKey = (
      await db.pool.query<{ id: string }>(
        'select id from marketplace.seller_transfers where seller_id = $1 order by created_at desc, id desc',
        [seller],
      )
    ).rows.map((r) => r.id);
    expect(byKey).toHaveLength(rows.length);

    const newest = await walk(`/transfers?status=pending&seller=${seller}`);
    expect(newest.pages).toBe(3);
    expect(newest.ids).toEqual(byKey);

    const overdue = await walk(`/transfers?status=pending&order=overdue&seller=${seller}`);
    expect(overdue.pages).toBe(3);
    expect(overdue.ids).toEqual([...byKey].reverse());
  });
});
