// What the console offers on a transfer (marketplace.seller_transfer_admin_actions, derived from the
// matrix and its move owners) is exactly what the admin functions accept, for a plain row (not in
// doubt, no job running) in each of the six statuses: 6 statuses x 3 actions, each run as the
// console's operator role in a transaction rolled back.
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { STATUSES } from './support/expected-matrix.ts';
import { asRole, transferIn } from './support/transfers.ts';

const db = useTestDatabase();

const CALLS = {
  reverse: `select marketplace.reverse_seller_transfer($1, 'offered-actions test')`,
  retry: `select marketplace.retry_seller_transfer($1, 'offered-actions test')`,
  fail: `select marketplace.fail_seller_transfer($1, 'offered-actions test')`,
} as const;
type Action = keyof typeof CALLS;

describe.each(STATUSES)('a %s transfer', (status) => {
  it('is offered exactly the actions the admin functions accept', async () => {
    const offered = await asRole(db.pool, 'marketplace_reader', async (c) => {
      const { rows } = await c.query<{ a: Action[] }>('select marketplace.seller_transfer_admin_actions($1) as a', [status]);
      return rows[0]!.a;
    });
    const accepted: Action[] = [];
    const refusals: string[] = [];
    for (const action of Object.keys(CALLS) as Action[]) {
      await asRole(db.pool, null, async (c) => {
        const id = await transferIn(c, status);
        await c.query('set local role marketplace_operator');
        await c.query('savepoint act');
        try {
          await c.query(CALLS[action], [id]);
          accepted.push(action);
        } catch (e) {
          await c.query('rollback to savepoint act');
          refusals.push(`${action}: ${(e as Error).message}`);
        }
      });
    }
    expect(offered, refusals.join('\n')).toEqual(accepted);
  });
});

it('an unknown status has no actions (null: no such status)', async () => {
  const { rows } = await db.pool.query('select marketplace.seller_transfer_admin_actions($1) as a', ['shipped']);
  expect(rows[0].a).toBeNull();
});
