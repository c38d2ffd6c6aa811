// Property: for any sequence of attempted transitions, the database agrees with a model built
// from the expected matrix at every step (status, refusal, and history length).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectedAllowed, expectedMove, STATUSES, type Authority } from './support/expected-matrix.ts';
import { useTestDatabase } from './support/database.ts';
import { committedAs, historyOf, insertTransfer, setStatus, statusOf } from './support/transfers.ts';

const db = useTestDatabase();
const target = fc.oneof(
  { weight: 10, arbitrary: fc.constantFrom(...STATUSES) },
  { weight: 1, arbitrary: fc.constantFrom('bogus', 'PENDING', '') },
);

describe('random transition sequences', () => {
  it('the DB matches the model after every attempt', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(target, { minLength: 1, maxLength: 25 }), async (attempts) => {
        const id = await insertTransfer(db.pool);
        let model = 'pending';
        let historyLength = 1;
        for (const to of attempts) {
          let accepted = true;
          try {
            await setStatus(db.pool, id, to);
          } catch (e) {
            accepted = false;
            const code = (e as { code?: string }).code;
            // Unknown statuses fail on the foreign key, known illegal ones on the guard.
            expect(code).toBe((STATUSES as readonly string[]).includes(to) ? '23514' : '23503');
          }
          const allowed = expectedAllowed(model, to);
          expect(accepted, `${model} -> ${to}`).toBe(allowed);
          if (allowed && to !== model) {
            model = to;
            historyLength++;
          }
          expect(await statusOf(db.pool, id)).toBe(model);
        }
        expect((await historyOf(db.pool, id)).length).toBe(historyLength);
      }),
      { numRuns: 150, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    );
  });
});

// Property: status moves by random roles interleaved with writes of write-once columns by random
// roles. The model says which moves and writes are refused (and with what), and the row's facts
// never drift from the model.
type Role = 'marketplace_writer' | 'marketplace_worker' | 'marketplace_reader' | 'owner';
type Write = { kind: 'write'; role: Role; column: string } | { kind: 'move'; role: Role; to: string };
const AUTHORITY: Record<Role, Authority | 'owner' | null> = {
  marketplace_writer: 'service',
  marketplace_worker: 'worker',
  owner: 'owner',
  marketplace_reader: null,
};
const ROLE = fc.constantFrom<Role>('marketplace_writer', 'marketplace_worker', 'marketplace_reader', 'owner');

/**
 * The model of a move: a reader cannot update; the matrix, then the owner of the move decide; the
 * owner's statement fills the Stripe ids (setStatus), a service's or the worker's names status
 * (and a retry time) only, so a paid status without its Stripe id is refused by the coupling.
 */
function expectedMoveOutcome(role: Role, model: Record<string, unknown>, to: string): string | null {
  const authority = AUTHORITY[role];
  if (authority === null) return '42501';
  const verdict = expectedMove(authority, model.status as string, to);
  if (verdict !== 'accepted') return verdict;
  if (role === 'owner' || to === model.status) return null;
  if (['completed', 'reversal_pending', 'reversed'].includes(to) && model.stripe_transfer_id === null)
    return 'seller_transfer_paid_has_stripe_transfer';
  if (to === 'reversed' && model.stripe_reversal_id === null) return 'seller_transfer_reversed_has_stripe_reversal';
  return null;
}
const FIXED_COLUMNS = ['order_id', 'seller_id', 'stripe_account_id', 'amount_cents', 'currency', 'created_at'];
const NEW_VALUE: Record<string, string> = {
  order_id: 'gen_random_uuid()',
  seller_id: 'gen_random_uuid()',
  stripe_account_id: `'acct_OTHER'`,
  amount_cents: 'amount_cents + 1',
  currency: `'eur'`,
  created_at: `created_at - interval '1 hour'`,
  stripe_transfer_id: `'tr_w' || substr(md5(random()::text), 1, 12)`,
  stripe_reversal_id: `'trr_w' || substr(md5(random()::text), 1, 12)`,
  reversal_amount_cents: '1',
};
const step: fc.Arbitrary<Write> = fc.oneof(
  fc.record({ kind: fc.constant('move' as const), role: ROLE, to: fc.constantFrom(...STATUSES) }),
  fc.record({
    kind: fc.constant('write' as const),
    role: ROLE,
    column: fc.constantFrom(...FIXED_COLUMNS, 'stripe_transfer_id', 'stripe_reversal_id', 'reversal_amount_cents'),
  }),
);

/** Runs `fn` as `role` and commits; returns the database error (rolled back) or null. */
const asRoleCommitted = (
  role: Role,
  fn: (c: import('pg').PoolClient) => Promise<unknown>,
): Promise<{ code?: string; constraint?: string } | null> => committedAs(db.pool, role === 'owner' ? null : role, fn);

async function facts(id: string): Promise<Record<string, unknown>> {
  const {
    rows: [r],
  } = await db.pool.query(
    `select order_id, seller_id, stripe_account_id, amount_cents, currency, created_at, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, status
       from marketplace.seller_transfers where id = $1`,
    [id],
  );
  return r!;
}

describe('random moves and write-once writes by random roles', () => {
  it('refused exactly where the model says, and the facts never drift', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 20 }), async (steps) => {
        const id = await insertTransfer(db.pool);
        let model = await facts(id);
        for (const s of steps) {
          if (s.kind === 'move') {
            const expected = expectedMoveOutcome(s.role, model, s.to);
            const error = await asRoleCommitted(s.role, (c) =>
              s.role === 'owner'
                ? setStatus(c, id, s.to)
                : s.role === 'marketplace_writer'
                  ? // A service names status only: the retry time (the worker's lease) is not its column.
                    c.query(`update marketplace.seller_transfers set status = $2 where id = $1`, [id, s.to])
                  : c.query(
                      `update marketplace.seller_transfers set status = $2, next_retry_at = case when $2 = 'failed' then now() + interval '1 hour' else next_retry_at end
                          where id = $1`,
                      [id, s.to],
                    ),
            );
            expect(
              error === null ? null : error.code === '42501' && !error.constraint ? '42501' : error.constraint,
              `${s.role} moves ${model.status as string} -> ${s.to}`,
            ).toBe(expected);
            if (expected === null) model = await facts(id); // setStatus fills the Stripe ids a paid status needs
            expect(await facts(id)).toEqual(model);
            continue;
          }
          const error = await asRoleCommitted(s.role, (c) =>
            c.query(`update marketplace.seller_transfers set ${s.column} = ${NEW_VALUE[s.column]} where id = $1`, [id]),
          );
          // The model: readers cannot update, services and the worker's role cannot write the Stripe ids by plain UPDATE (the worker
          // writes them through its recording functions); fixed columns and the reversal amount (no move into
          // reversal_pending here) never change; a Stripe id may go from null to a value once, a
          // reversal only on a row that has its transfer.
          const expected =
            s.role === 'marketplace_reader'
              ? '42501'
              : s.role !== 'owner' && s.column.startsWith('stripe_') && s.column !== 'stripe_account_id'
                ? '42501'
                : FIXED_COLUMNS.includes(s.column) || s.column === 'reversal_amount_cents'
                  ? 'seller_transfer_write_once'
                  : model[s.column] !== null
                    ? 'seller_transfer_write_once'
                    : s.column === 'stripe_reversal_id' && model.stripe_transfer_id === null
                      ? 'seller_transfer_reversal_needs_transfer'
                      : null;
          expect(
            error === null ? null : error.code === '42501' ? '42501' : error.constraint,
            `${s.role} sets ${s.column} on ${JSON.stringify(model)}`,
          ).toBe(expected);
          if (expected === null) model = await facts(id);
          expect(await facts(id)).toEqual(model);
        }
      }),
      { numRuns: 60, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    );
  });
});
