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
