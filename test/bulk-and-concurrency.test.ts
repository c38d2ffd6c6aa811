// Multi-row statements and racing writers: the guard holds for every row of every statement.
import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { expectedAllowed, STATUSES } from './support/expected-matrix.ts';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, pgError, statusUpdateSql, transferIn } from './support/transfers.ts';

const db = useTestDatabase();

describe('multi-row statements', () => {
  it('fails a whole UPDATE that mixes legal and illegal rows, changing nothing', async () => {
    const legal = [await transferIn(db.pool, 'pending'), await transferIn(db.pool, 'pending')];
    const illegal = await transferIn(db.pool, 'reversed');
    const ids = [...legal, illegal];
    const eventsBefore = (await db.pool.query('select count(*)::int as n from marketplace.seller_transfer_events')).rows[0].n;
    const err = await pgError(() =>
      db.pool.query(`update marketplace.seller_transfers set status = 'failed', next_retry_at = now() where id = any($1)`, [ids]),
    );
    expect(err.code).toBe('23514');
    expect(err.message).toBe('illegal seller transfer status transition: reversed -> failed');
    const { rows } = await db.pool.query('select id, status from marketplace.seller_transfers where id = any($1) order by id', [ids]);
    expect(Object.fromEntries(rows.map((r) => [r.id, r.status]))).toEqual({
      [legal[0]!]: 'pending',
      [legal[1]!]: 'pending',
      [illegal]: 'reversed',
    });
    const eventsAfter = (await db.pool.query('select count(*)::int as n from marketplace.seller_transfer_events')).rows[0].n;
    expect(eventsAfter).toBe(eventsBefore);
  });

  it('moves 100k rows in one legal UPDATE and writes 100k history rows', async () => {
    const client = await db.pool.connect();
    try {
      await client.query('begin');
      await client.query(`set local marketplace.transition_reason = 'bulk test'`);
      const {
        rows: [batch],
      } = await client.query<{ id: string }>(`select gen_random_uuid() as id`);
      await client.query(
        `insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
         select $1, gen_random_uuid(), 'acct_bulk', 100 + i, 'eur' from generate_series(1, 100000) i`,
        [batch!.id],
      );
      const upd = await client.query(
        `update marketplace.seller_transfers set status = 'failed', retry_count = 1, next_retry_at = now() + interval '1 minute'
          where order_id = $1`,
        [batch!.id],
      );
      expect(upd.rowCount).toBe(100_000);
      const {
        rows: [h],
      } = await client.query(
        `select count(*)::int as n, count(distinct transfer_id)::int as ids, bool_and(reason = 'bulk test') as reasons
           from marketplace.seller_transfer_events e
          where e.from_status = 'pending' and e.to_status = 'failed'
            and e.transfer_id in (select id from marketplace.seller_transfers where order_id = $1)`,
        [batch!.id],
      );
      expect(h).toEqual({ n: 100_000, ids: 100_000, reasons: true });
      await client.query('commit');
    } finally {
      client.release();
    }
  });

  it('writes no history for same-state bulk bumps', async () => {
    const ids = await Promise.all([1, 2, 3].map(() => transferIn(db.pool, 'failed')));
    const before = (await db.pool.query('select count(*)::int as n from marketplace.seller_transfer_events')).rows[0].n;
    await db.pool.query(
      `update marketplace.seller_transfers set status = status, retry_count = retry_count + 1, next_retry_at = now() where id = any($1)`,
      [ids],
    );
    const after = (await db.pool.query('select count(*)::int as n from marketplace.seller_transfer_events')).rows[0].n;
    expect(after).toBe(before);
  });
});

describe('racing writers', () => {
  it('never stores an illegal move: the history replays pair by pair through the matrix', async () => {
    const rowCount = 20;
    const ids: string[] = [];
    for (let i = 0; i < rowCount; i++) ids.push(await insertTransfer(db.pool));
    const sessions = 12;
    const attemptsPerSession = 60;
    let refused = 0;
    let applied = 0;
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const plan = Array.from({ length: sessions }, () =>
      Array.from({ length: attemptsPerSession }, () => ({ id: ids[rand(rowCount)]!, to: STATUSES[rand(STATUSES.length)]! })),
    );
    await Promise.all(
      plan.map(async (attempts) => {
        const client = new pg.Client({ connectionString: db.url });
        await client.connect();
        try {
          for (const { id, to } of attempts) {
            try {
              const r = await client.query(statusUpdateSql(), [id, to]);
              applied += r.rowCount ?? 0;
            } catch (e) {
              expect((e as pg.DatabaseError).code).toBe('23514');
              refused++;
            }
          }
        } finally {
          await client.end();
        }
      }),
    );
    expect(applied + refused).toBe(sessions * attemptsPerSession);
    expect(refused).toBeGreaterThan(0);

    const { rows } = await db.pool.query<{ transfer_id: string; from_status: string | null; to_status: string }>(
      `select transfer_id, from_status, to_status from marketplace.seller_transfer_events where transfer_id = any($1) order by transfer_id, id`,
      [ids],
    );
    const finals = new Map(
      (await db.pool.query('select id, status from marketplace.seller_transfers where id = any($1)', [ids])).rows.map((r) => [
        r.id,
        r.status,
      ]),
    );
    for (const id of ids) {
      const events = rows.filter((r) => r.transfer_id === id);
      expect(events[0]).toMatchObject({ from_status: null, to_status: 'pending' });
      let state = 'pending';
      for (const e of events.slice(1)) {
        expect(e.from_status, `history of ${id} is a chain`).toBe(state);
        expect(expectedAllowed(e.from_status!, e.to_status), `${e.from_status} -> ${e.to_status}`).toBe(true);
        state = e.to_status;
      }
      expect(finals.get(id)).toBe(state);
    }
  });
});
