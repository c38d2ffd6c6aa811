// Whatever other roles write between two attempts, a transfer (or reversal) Stripe made before
// answering an error is found before the worker uses a new idempotency key: one payout, one
// reversal. The attempt state the decision rests on (stripe_key_generation, the in-doubt flag) is
// the worker's alone; a service cannot write retry_count or the lease at all.
//
// Stripe's `error_after` fault (the simulator): the object is created, the answer is a 500.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { committedAs, insertTransfer, rowOf } from './support/transfers.ts';
import { expectDatabaseMatchesLedger, useTestWorker, waitFor, waitForStatus } from './support/worker.ts';

const db = useTestDatabase();
// Retries far away: between the failed attempt and the next one, the test writes as others would.
const { sim } = useTestWorker(db, { RETRY_BASE_SECONDS: '600', RETRY_MAX_SECONDS: '600', RETRY_JITTER: '0' });

/**
 * A hostile but routine-looking value for every column a service may name in an UPDATE. A column
 * the writer role gains later without an entry here fails the test: decide what a service could do
 * with it first.
 */
const SERVICE_WRITES: Record<string, string> = {
  id: 'gen_random_uuid()',
  order_id: 'gen_random_uuid()',
  seller_id: 'gen_random_uuid()',
  stripe_account_id: `'acct_other'`,
  amount_cents: 'amount_cents + 1',
  currency: `'eur'`,
  source_transaction: `'ch_other'`,
  status: `'pending'`,
  reversal_amount_cents: '1',
  retry_count: '0',
  next_retry_at: 'now()',
  last_error: 'null',
  created_at: `now() - interval '1 hour'`,
  updated_at: 'now()',
  stripe_key_generation: '0',
  stripe_request_in_doubt: 'false',
};

let writerColumns: string[] = [];
beforeAll(async () => {
  const { rows } = await db.pool.query<{ column_name: string }>(
    `select column_name from information_schema.column_privileges
      where grantee = 'marketplace_writer' and table_schema = 'marketplace' and table_name = 'seller_transfers' and privilege_type = 'UPDATE'
      order by column_name`,
  );
  writerColumns = rows.map((r) => r.column_name);
});
afterAll(() => sim.clearFaults());

/** Every write a service could make, each its own statement; returns which were refused. */
async function serviceWritesEverything(id: string): Promise<Record<string, string | null>> {
  const outcome: Record<string, string | null> = {};
  for (const column of writerColumns) {
    expect(SERVICE_WRITES[column], `a hostile value for ${column}, which marketplace_writer may UPDATE`).toBeDefined();
    const err = await committedAs(db.pool, 'marketplace_writer', (c) =>
      c.query(`update marketplace.seller_transfers set ${column} = ${SERVICE_WRITES[column]} where id = $1`, [id]),
    );
    outcome[column] = err ? (err.constraint ?? err.code ?? 'refused') : null;
  }
  // And the whole "retry it now" of the finding, in one statement.
  const err = await committedAs(db.pool, 'marketplace_writer', (c) =>
    c.query(`update marketplace.seller_transfers set retry_count = 0, next_retry_at = now() where id = $1`, [id]),
  );
  outcome['retry_count, next_retry_at'] = err ? (err.constraint ?? err.code ?? 'refused') : null;
  return outcome;
}

/** The owner resets what it can of the attempt state (everything but the worker's columns). */
async function ownerResetsRetryState(id: string): Promise<void> {
  await db.pool.query(`update marketplace.seller_transfers set retry_count = 0, last_error = null where id = $1`, [id]);
  const err = await committedAs(db.pool, null, (c) =>
    c.query(`update marketplace.seller_transfers set stripe_key_generation = 0 where id = $1`, [id]),
  );
  expect(err?.constraint, 'the key generation is the worker’s').toBe('seller_transfer_write_once');
}

describe('a transfer Stripe made before answering 500', () => {
  it('is found before a new key is used, whatever services and the owner write meanwhile: one transfer', async () => {
    sim.injectFault({ operation: 'transfer.create', kind: 'error_after', times: 1 });
    const id = await insertTransfer(db.pool, 4200);
    await waitFor('the failed attempt', async () => (await rowOf(db.pool, id)).retry_count === 1);
    const failed = await rowOf(db.pool, id);
    expect(failed.status).toBe('failed');
    expect(sim.ledger().filter((e) => e.type === 'transfer' && e.metadata.seller_transfer_id === id)).toHaveLength(1);

    const refused = await serviceWritesEverything(id);
    expect(refused['retry_count, next_retry_at'], 'a service cannot write the retry state').toBe('42501');
    for (const column of ['retry_count', 'next_retry_at', 'last_error', 'stripe_key_generation', 'stripe_request_in_doubt'])
      expect(writerColumns, `marketplace_writer may UPDATE ${column}`).not.toContain(column);
    await ownerResetsRetryState(id);

    // The operator's "retry now": the next attempt looks Stripe up and records the transfer it finds.
    await db.pool.query(`select marketplace.retry_seller_transfer($1, 'retry now')`, [id]);
    await waitForStatus(db.pool, id, ['completed']);
    expect(sim.ledger().filter((e) => e.type === 'transfer' && e.metadata.seller_transfer_id === id)).toHaveLength(1);
    await expectDatabaseMatchesLedger(db.pool, sim);
  });
});

describe('a reversal Stripe made before answering 500', () => {
  it('is found before a new key is used: one reversal', async () => {
    const id = await insertTransfer(db.pool, 5100);
    await waitForStatus(db.pool, id, ['completed']);
    sim.injectFault({ operation: 'reversal.create', kind: 'error_after', times: 1 });
    await db.pool.query(`update marketplace.seller_transfers set status = 'reversal_pending' where id = $1`, [id]);
    await waitFor('the failed reversal attempt', async () => (await rowOf(db.pool, id)).retry_count === 1);
    expect(sim.ledger().filter((e) => e.type === 'reversal' && e.metadata.seller_transfer_id === id)).toHaveLength(1);

    const refused = await serviceWritesEverything(id);
    expect(refused['retry_count, next_retry_at']).toBe('42501');
    await ownerResetsRetryState(id);

    await db.pool.query(`select marketplace.retry_seller_transfer($1, 'retry now')`, [id]);
    await waitForStatus(db.pool, id, ['reversed']);
    expect(sim.ledger().filter((e) => e.type === 'reversal' && e.metadata.seller_transfer_id === id)).toHaveLength(1);
    await expectDatabaseMatchesLedger(db.pool, sim);
  });
});

describe('every id PostgreSQL accepts', () => {
  it('a uuid outside RFC 4122 (version nibble 0) is paid', async () => {
    const id = 'aaaaaaaa-0000-0000-0000-000000000001';
    await db.pool.query(
      `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency)
       values ($1, gen_random_uuid(), gen_random_uuid(), 'acct_oddid', 700, 'usd')`,
      [id],
    );
    await waitForStatus(db.pool, id, ['completed']);
    expect(sim.ledger().filter((e) => e.type === 'transfer' && e.metadata.seller_transfer_id === id)).toHaveLength(1);
  });
});
