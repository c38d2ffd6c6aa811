// The table is the queue: a writer's transaction writes the row and its history row, nothing
// else. No graphile-worker job, no notification, no lock beyond the rows and relations the
// statement itself needs, whatever the writer does: insert, status change, same-state bump,
// refund, bulk move.
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, statusUpdateSql, transferIn } from './support/transfers.ts';

const db = useTestDatabase();
let listener: pg.Client;
const notifications: string[] = [];

beforeAll(async () => {
  listener = new pg.Client({ connectionString: db.url });
  await listener.connect();
  listener.on('notification', (n) => notifications.push(n.channel));
  // graphile-worker's channel, and what a hand-written enqueue would use.
  await listener.query('listen "jobs:insert"');
  await listener.query('listen seller_transfers');
});
afterAll(async () => {
  await listener?.end();
});

/** Relations the writer's own statement may lock: the table, its history, the statuses and the currencies (foreign keys), and their indexes. */
const ALLOWED = `
  select c.oid from pg_class c
   where c.oid in ('marketplace.seller_transfers'::regclass, 'marketplace.seller_transfer_events'::regclass,
                   'marketplace.seller_transfer_statuses'::regclass, 'marketplace.currencies'::regclass)
      or c.oid in (select indexrelid from pg_index
                    where indrelid in ('marketplace.seller_transfers'::regclass, 'marketplace.seller_transfer_events'::regclass,
                                       'marketplace.seller_transfer_statuses'::regclass, 'marketplace.currencies'::regclass))
      or c.oid = pg_get_serial_sequence('marketplace.seller_transfer_events', 'id')::regclass`;

interface WriterTrace {
  extraLocks: string[];
  advisoryLocks: number;
  jobsBefore: number;
  jobsAfter: number;
}

/** Runs `write` in a transaction, looks at its locks before commit, commits, then looks at graphile-worker. */
async function traceWriter(write: (c: pg.PoolClient) => Promise<void>): Promise<WriterTrace> {
  const count = async () => Number((await db.pool.query('select count(*) from graphile_worker._private_jobs')).rows[0].count);
  const jobsBefore = await count();
  const c = await db.pool.connect();
  try {
    await c.query('begin');
    await c.query(`set local marketplace.transition_reason = 'writer path test'`);
    await write(c);
    const { rows: locks } = await c.query<{ locktype: string; relation: string | null }>(
      `select l.locktype, l.relation::regclass::text as relation
         from pg_locks l
        where l.pid = pg_backend_pid()
          and l.locktype not in ('virtualxid', 'transactionid')
          and not (l.locktype = 'relation' and (l.relation in (${ALLOWED}) or l.relation in (select oid from pg_class where relnamespace = 'pg_catalog'::regnamespace)))`,
    );
    await c.query('commit');
    await new Promise((resolve) => setTimeout(resolve, 150)); // let any notification arrive
    return {
      extraLocks: locks.filter((l) => l.locktype !== 'advisory').map((l) => `${l.locktype}:${l.relation}`),
      advisoryLocks: locks.filter((l) => l.locktype === 'advisory').length,
      jobsBefore,
      jobsAfter: await count(),
    };
  } finally {
    c.release();
  }
}

describe("a writer's transaction writes the row and its history, nothing else", () => {
  const cases: Array<[string, (c: pg.PoolClient) => Promise<void>]> = [
    [
      'insert',
      async (c) => {
        await insertTransfer(c);
      },
    ],
    [
      'insert of 500 rows in one statement',
      async (c) => {
        await c.query(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
                     select gen_random_uuid(), gen_random_uuid(), 'acct_bulk', 100 + i, 'usd' from generate_series(1, 500) i`);
      },
    ],
    [
      'status change pending -> completed',
      async (c) => {
        await c.query(statusUpdateSql(), [await insertTransfer(c), 'completed']);
      },
    ],
    [
      'status change pending -> failed',
      async (c) => {
        await c.query(statusUpdateSql(), [await insertTransfer(c), 'failed']);
      },
    ],
    [
      'refund completed -> reversal_pending',
      async (c) => {
        const id = await transferIn(c, 'completed');
        await c.query(`update marketplace.seller_transfers set status = 'reversal_pending', reversal_amount_cents = 10 where id = $1`, [
          id,
        ]);
      },
    ],
    [
      'same-state bump that moves next_retry_at',
      async (c) => {
        const id = await transferIn(c, 'failed');
        await c.query(
          `update marketplace.seller_transfers set retry_count = retry_count + 1, next_retry_at = now() + interval '5 minutes' where id = $1`,
          [id],
        );
      },
    ],
    [
      'bulk move of 500 rows into a worker status',
      async (c) => {
        await c.query(`insert into marketplace.seller_transfers (order_id, seller_id, stripe_account_id, amount_cents, currency)
                     select gen_random_uuid(), gen_random_uuid(), 'acct_bulkmove', 100 + i, 'usd' from generate_series(1, 500) i`);
        await c.query(`update marketplace.seller_transfers set status = 'failed', next_retry_at = now(), last_error = 'bulk'
                      where stripe_account_id = 'acct_bulkmove'`);
      },
    ],
  ];

  it.each(cases)('%s: no job, no notification, no advisory lock, no other relation locked', async (_name, write) => {
    notifications.length = 0;
    const trace = await traceWriter(write);
    expect(trace.jobsAfter, 'graphile-worker jobs').toBe(trace.jobsBefore);
    expect(notifications, 'notifications sent').toEqual([]);
    expect(trace.advisoryLocks, 'advisory locks taken').toBe(0);
    expect(trace.extraLocks, 'relations locked beyond the row, its history and the statuses').toEqual([]);
  });

  it('the history still records every status change of those writes', async () => {
    const c = await db.pool.connect();
    try {
      const id = await transferIn(c, 'reversal_pending');
      const { rows } = await c.query(
        'select from_status, to_status from marketplace.seller_transfer_events where transfer_id = $1 order by id',
        [id],
      );
      expect(rows.map((r) => `${r.from_status}->${r.to_status}`)).toEqual([
        'null->pending',
        'pending->completed',
        'completed->reversal_pending',
      ]);
    } finally {
      c.release();
    }
  });

  it('the trace can fail: a writer that also enqueues a job is caught', async () => {
    notifications.length = 0;
    const trace = await traceWriter(async (c) => {
      const id = await insertTransfer(c);
      await c.query(`select graphile_worker.add_job('seller_transfer_create', json_build_object('id', $1::uuid))`, [id]);
    });
    expect(trace.jobsAfter).toBe(trace.jobsBefore + 1);
    expect(notifications).toContain('jobs:insert');
    expect(trace.extraLocks.length).toBeGreaterThan(0);
    await db.pool.query('delete from graphile_worker._private_jobs');
  });
});
