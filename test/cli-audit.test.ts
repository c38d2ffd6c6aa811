// audit: every row whose history does not lead, by legal steps from an initial status, to its
// status is named, whatever wrote past the guard (session_replication_role = replica, the owner
// editing the history). Reads only.
import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, pastTheGuard, statusUpdateSql, transferIn } from './support/transfers.ts';
import { cliFor, databaseFootprint, expectOneLineError } from './support/cli.ts';

vi.setConfig({ testTimeout: 180_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url);

interface AuditJson {
  since: string | null;
  problems: Array<{ transfer_id: string; problem: string; detail: string }>;
  transfers_without_recorded_facts: number;
}

/** What a superuser can do past the triggers: the same SQL with session_replication_role = replica. */
const asReplica = (sql: string, params: unknown[]) => pastTheGuard(db.pool, sql, params);

async function addEvent(id: string, from: string | null, to: string): Promise<void> {
  await db.pool.query(
    `insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, actor) values ($1, $2, $3, 'test')`,
    [id, from, to],
  );
}

beforeAll(async () => {
  await insertTransfer(db.pool);
  for (const s of ['completed', 'failed', 'reversal_pending', 'reversed', 'permanently_failed'] as const) await transferIn(db.pool, s);
});

describe('audit', () => {
  it('a clean database: exit 0', async () => {
    const run = await cli('audit');
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('every history starts with the insert');
    const json = JSON.parse((await cli('audit', '--json')).stdout) as AuditJson;
    expect(json).toEqual({ since: null, problems: [], transfers_without_recorded_facts: 0 });
  });

  it('names every write past the guard or the history, exits 3, and writes nothing', async () => {
    const ids: Record<string, string> = {};
    // pending straight to reversed, past the guard and the history
    ids.pendingToReversed = await insertTransfer(db.pool);
    await asReplica(statusUpdateSql(), [ids.pendingToReversed, 'reversed']);
    // completed back to pending
    ids.completedToPending = await transferIn(db.pool, 'completed');
    await asReplica(`update marketplace.seller_transfers set status = 'pending' where id = $1`, [ids.completedToPending]);
    // inserted directly as completed
    ids.insertedCompleted = randomUUID();
    await asReplica(
      `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status, stripe_transfer_id)
                     values ($1, gen_random_uuid(), gen_random_uuid(), 'acct_x', 100, 'usd', 'completed', 'tr_replica')`,
      [ids.insertedCompleted],
    );
    // the owner deletes a history row (the insert)
    ids.insertDeleted = await transferIn(db.pool, 'completed');
    await db.pool.query(
      `delete from marketplace.seller_transfer_events where id = (select min(id) from marketplace.seller_transfer_events where transfer_id = $1)`,
      [ids.insertDeleted],
    );
    // an illegal step in the history (completed -> reversed), the row following it
    ids.illegalStep = await transferIn(db.pool, 'completed');
    await asReplica(statusUpdateSql(), [ids.illegalStep, 'reversed']);
    await addEvent(ids.illegalStep, 'completed', 'reversed');
    // a step that does not start where the previous one ended
    ids.brokenChain = await transferIn(db.pool, 'completed');
    await addEvent(ids.brokenChain, 'failed', 'completed');
    // a same-state step
    ids.sameState = await transferIn(db.pool, 'completed');
    await addEvent(ids.sameState, 'completed', 'completed');
    // created, according to its history, in a non-initial status
    ids.notInitial = await insertTransfer(db.pool);
    await db.pool.query(`update marketplace.seller_transfer_events set to_status = 'failed' where transfer_id = $1`, [ids.notInitial]);
    // history of a row that does not exist
    ids.orphan = randomUUID();
    await addEvent(ids.orphan, null, 'pending');
    // the money facts rewritten past the write-once guard: 1 cent in eur to another account
    ids.moneyChanged = await transferIn(db.pool, 'completed');
    await asReplica(
      `update marketplace.seller_transfers set amount_cents = 1, currency = 'eur', stripe_account_id = 'acct_EVIL' where id = $1`,
      [ids.moneyChanged],
    );

    const before = await databaseFootprint(db.pool);
    const run = await cli('audit', '--json');
    expect(run.code, run.stderr).toBe(3);
    expect(await databaseFootprint(db.pool)).toEqual(before);
    const { problems } = JSON.parse(run.stdout) as AuditJson;
    const of = (id: string) =>
      problems
        .filter((p) => p.transfer_id === id)
        .map((p) => p.problem)
        .sort();
    // Ids written past the guard are not the ones the worker recorded (pending straight to reversed names two).
    expect(of(ids.pendingToReversed)).toEqual(['status_mismatch', 'stripe_id_not_from_worker', 'stripe_id_not_from_worker']);
    expect(of(ids.completedToPending)).toEqual(['status_mismatch']);
    expect(of(ids.insertedCompleted)).toEqual(['no_history']);
    expect(of(ids.insertDeleted)).toEqual(['first_event_not_insert']);
    expect(of(ids.illegalStep)).toEqual(['illegal_step', 'stripe_id_not_from_worker']);
    expect(of(ids.brokenChain)).toEqual(['broken_chain']);
    expect(of(ids.sameState)).toEqual(['same_state_step']);
    expect(of(ids.notInitial)).toEqual(['initial_status_not_initial', 'status_mismatch']);
    expect(of(ids.orphan)).toEqual(['history_without_row']);
    expect(of(ids.moneyChanged)).toEqual(['money_facts_changed']);
    expect(problems.find((p) => p.transfer_id === ids.moneyChanged)!.detail).toMatch(
      /created as 10\.00 USD to acct_test\w+, the row now says 0\.01 EUR to acct_EVIL/,
    );
    expect(new Set(problems.map((p) => p.transfer_id))).toEqual(new Set(Object.values(ids)));
    expect(problems.find((p) => p.transfer_id === ids.pendingToReversed)!.detail).toBe('status reversed, but the history ends in pending');

    const text = await cli('audit');
    expect(text.code).toBe(3);
    expect(text.stdout).toContain(ids.illegalStep);
    expect(text.stdout).toMatch(/14 problem\(s\) on 10 transfer\(s\)/);
  });

  it('--since: only rows created or changed since then', async () => {
    const future = new Date(Date.now() + 3600_000).toISOString();
    const run = await cli('audit', '--since', future, '--json');
    expect(run.code, run.stderr).toBe(0);
    expect((JSON.parse(run.stdout) as AuditJson).problems).toEqual([]);
    const old = await cli('audit', '--since', '2000-01-01', '--json');
    expect(old.code).toBe(3);
    expect((JSON.parse(old.stdout) as AuditJson).problems.length).toBe(14);
  });

  it('rows created before money facts were recorded are judged by what they hold today, and the output says so', async () => {
    const id = await transferIn(db.pool, 'completed');
    // What an insert event written before migration 000010 looks like: no facts.
    await db.pool.query(
      `update marketplace.seller_transfer_events set amount_cents = null, currency = null, stripe_account_id = null
                          where transfer_id = $1 and from_status is null`,
      [id],
    );
    await asReplica(`update marketplace.seller_transfers set amount_cents = 7 where id = $1`, [id]);
    const run = await cli('audit', '--json');
    const json = JSON.parse(run.stdout) as AuditJson;
    expect(json.problems.filter((p) => p.transfer_id === id)).toEqual([]);
    expect(json.transfers_without_recorded_facts).toBe(1);
    expect((await cli('audit')).stdout).toContain(
      '1 transfer(s) were created before their money facts were recorded in the history (migration 000010): their amount, currency and destination are judged by what they hold today',
    );
  });

  it('bad input is one line on stderr', async () => {
    expectOneLineError(await cli('audit', '--since', 'notadate'), '--since takes an ISO date', 2);
    expectOneLineError(await cli('audit', '--frobnicate'), "unknown option '--frobnicate'", 2);
  });
});

describe('audit output at scale', () => {
  it('lists the first problems of a huge result and counts them all (a table of a million rows overflowed the stack)', async () => {
    const { renderAudit } = await import('../src/cli/audit-command.ts');
    const { AUDIT_LIST_LIMIT } = await import('../src/core/audit.ts');
    const problems = Array.from({ length: 1_000_000 }, (_, i) => ({
      transfer_id: `00000000-0000-0000-0000-${String(i).padStart(12, '0')}`,
      problem: 'no_history',
      detail: 'the row has no history',
    }));
    const text = renderAudit(problems, null);
    expect(text).toContain(`(first ${AUDIT_LIST_LIMIT} of 1000000 problems listed; --json prints them all)`);
    expect(text).toContain('1000000 problem(s) on 1000000 transfer(s)');
    expect(text.split('\n').length).toBeLessThan(AUDIT_LIST_LIMIT * 3);
  });
});
