// Property: for any sequence of attempted transitions, the database agrees with a model built
// from the expected matrix at every step (status, refusal, and history length).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { expectedAllowed, STATUSES } from './support/expected-matrix.ts';
import { useTestDatabase } from './support/database.ts';
import { historyOf, insertTransfer, setStatus, statusOf } from './support/transfers.ts';

const db = useTestDatabase();
const target = fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...STATUSES) }, { weight: 1, arbitrary: fc.constantFrom('bogus', 'PENDING', '') });

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
          if (allowed && to !== model) { model = to; historyLength++; }
          expect(await statusOf(db.pool, id)).toBe(model);
        }
        expect((await historyOf(db.pool, id)).length).toBe(historyLength);
      }),
      { numRuns: 150, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    );
  });
});

// Property: status moves interleaved with writes of write-once columns by random roles. The model
// says which writes are refused (and with what), and the row's facts never drift from the model.
type Role = 'marketplace_writer' | 'marketplace_worker' | 'marketplace_reader' | 'owner';
type Write = { kind: 'write'; role: Role; column: string } | { kind: 'move'; to: string };
const FIXED_COLUMNS = ['order_id', 'seller_id', 'stripe_account_id', 'amount_cents', 'currency', 'created_at'];
const NEW_VALUE: Record<string, string> = {
  order_id: 'gen_random_uuid()', seller_id: 'gen_random_uuid()', stripe_account_id: `'acct_OTHER'`, amount_cents: 'amount_cents + 1',
  currency: `'eur'`, created_at: `created_at - interval '1 hour'`,
  stripe_transfer_id: `'tr_w' || substr(md5(random()::text), 1, 12)`, stripe_reversal_id: `'trr_w' || substr(md5(random()::text), 1, 12)`,
  reversal_amount_cents: '1',
};
const step: fc.Arbitrary<Write> = fc.oneof(
  fc.record({ kind: fc.constant('move' as const), to: fc.constantFrom(...STATUSES) }),
  fc.record({
    kind: fc.constant('write' as const),
    role: fc.constantFrom<Role>('marketplace_writer', 'marketplace_worker', 'marketplace_reader', 'owner'),
    column: fc.constantFrom(...FIXED_COLUMNS, 'stripe_transfer_id', 'stripe_reversal_id', 'reversal_amount_cents'),
  }),
);

async function facts(id: string): Promise<Record<string, unknown>> {
  const { rows: [r] } = await db.pool.query(
    `select order_id, seller_id, stripe_account_id, amount_cents, currency, created_at, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, status
       from marketplace.seller_transfers where id = $1`, [id]);
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
            const allowed = expectedAllowed(model.status as string, s.to);
            const ok = await setStatus(db.pool, id, s.to).then(() => true, () => false);
            expect(ok, `${model.status} -> ${s.to}`).toBe(allowed);
            if (ok) model = await facts(id); // setStatus fills the Stripe ids a paid status needs
            continue;
          }
          const c = await db.pool.connect();
          let error: { code?: string; constraint?: string } | null = null;
          try {
            await c.query('begin');
            if (s.role !== 'owner') await c.query(`set local role ${s.role}`);
            await c.query(`update marketplace.seller_transfers set ${s.column} = ${NEW_VALUE[s.column]} where id = $1`, [id]);
            await c.query('commit');
          } catch (e) {
            error = e as { code?: string; constraint?: string };
            await c.query('rollback');
          } finally {
            c.release();
          }
          // The model: readers cannot update, services cannot write the worker's Stripe ids; fixed columns and the reversal amount (no move into
          // reversal_pending here) never change; a Stripe id may go from null to a value once, a
          // reversal only on a row that has its transfer.
          const expected =
            s.role === 'marketplace_reader' ? '42501'
              : s.role === 'marketplace_writer' && s.column.startsWith('stripe_') && s.column !== 'stripe_account_id' ? '42501'
              : FIXED_COLUMNS.includes(s.column) || s.column === 'reversal_amount_cents' ? 'seller_transfer_write_once'
                : model[s.column] !== null ? 'seller_transfer_write_once'
                  : s.column === 'stripe_reversal_id' && model.stripe_transfer_id === null ? 'seller_transfer_reversal_needs_transfer'
                    : null;
          expect(error === null ? null : error.code === '42501' ? '42501' : error.constraint, `${s.role} sets ${s.column} on ${JSON.stringify(model)}`).toBe(expected);
          if (expected === null) model = await facts(id);
          expect(await facts(id)).toEqual(model);
        }
      }),
      { numRuns: 60, seed: Number(process.env.FC_SEED ?? Date.now() % 2 ** 31) },
    );
  });
});
