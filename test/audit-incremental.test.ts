// The incremental audit (`seller-transfers audit --since-last`): it finds every problem class the
// full audit finds in the history written since its watermark, stores the findings, keeps them
// until the row is fixed or the finding acknowledged, and doctor reports them (and when the audit
// last ran) without auditing anything itself.
import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { useTestDatabase } from './support/database.ts';
import { insertTransfer, pastTheGuard, statusUpdateSql, transferIn } from './support/transfers.ts';
import { cliFor, expectOneLineError } from './support/cli.ts';
import { VIEWER, postLogin, sessionCookie, startTestConsole } from './support/console.ts';

vi.setConfig({ testTimeout: 180_000 });

const db = useTestDatabase();
const cli = cliFor(() => db.url);
const asReplica = (sql: string, params: unknown[]) => pastTheGuard(db.pool, sql, params);

interface Finding {
  transfer_id: string;
  problem: string;
  detail: string;
  acknowledged_at: string | null;
  acknowledged_by: string | null;
}
interface RunJson {
  run: { was_full: boolean; transfers_audited: number; problems_found: number; findings_new: number; findings_fixed: number } | null;
  last_run: { finished_at: string | null } | null;
  open: number;
  acknowledged: number;
  findings: Finding[];
}

async function addEvent(id: string, from: string | null, to: string): Promise<void> {
  await db.pool.query(
    `insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, actor) values ($1, $2, $3, 'test')`,
    [id, from, to],
  );
}

async function sinceLast(...more: string[]): Promise<{ code: number | null; json: RunJson }> {
  const run = await cli('audit', '--since-last', '--json', ...more);
  expect(run.stderr).toBe('');
  return { code: run.code, json: JSON.parse(run.stdout) as RunJson };
}

async function auditCheck(): Promise<{ status: string; detail: string; fix: string }> {
  const { rows } = await db.pool.query(
    `select status, detail, fix from marketplace.seller_transfer_doctor() where check_name = 'audit findings (incremental audit)'`,
  );
  return rows[0];
}

/** One transfer in each problem class, written past the guard or the history (as test/cli-audit.test.ts does). */
async function everyProblemClass(): Promise<Record<string, string>> {
  const ids: Record<string, string> = {};
  ids.pendingToReversed = await insertTransfer(db.pool);
  await asReplica(statusUpdateSql(), [ids.pendingToReversed, 'reversed']);
  ids.completedToPending = await transferIn(db.pool, 'completed');
  await asReplica(`update marketplace.seller_transfers set status = 'pending' where id = $1`, [ids.completedToPending]);
  ids.insertedCompleted = randomUUID();
  await asReplica(
    `insert into marketplace.seller_transfers (id, order_id, seller_id, stripe_account_id, amount_cents, currency, status, stripe_transfer_id)
                   values ($1, gen_random_uuid(), gen_random_uuid(), 'acct_x', 100, 'usd', 'completed', 'tr_replica')`,
    [ids.insertedCompleted],
  );
  ids.insertDeleted = await transferIn(db.pool, 'completed');
  await db.pool.query(
    `delete from marketplace.seller_transfer_events where id = (select min(id) from marketplace.seller_transfer_events where transfer_id = $1)`,
    [ids.insertDeleted],
  );
  ids.illegalStep = await transferIn(db.pool, 'completed');
  await asReplica(statusUpdateSql(), [ids.illegalStep, 'reversed']);
  await addEvent(ids.illegalStep, 'completed', 'reversed');
  ids.brokenChain = await transferIn(db.pool, 'completed');
  await addEvent(ids.brokenChain, 'failed', 'completed');
  ids.sameState = await transferIn(db.pool, 'completed');
  await addEvent(ids.sameState, 'completed', 'completed');
  ids.notInitial = await insertTransfer(db.pool);
  await db.pool.query(`update marketplace.seller_transfer_events set to_status = 'failed' where transfer_id = $1`, [ids.notInitial]);
  ids.orphan = randomUUID();
  await addEvent(ids.orphan, null, 'pending');
  ids.moneyChanged = await transferIn(db.pool, 'completed');
  await asReplica(
    `update marketplace.seller_transfers set amount_cents = 1, currency = 'eur', stripe_account_id = 'acct_EVIL' where id = $1`,
    [ids.moneyChanged],
  );
  return ids;
}

const key = (p: { transfer_id: string; problem: string; detail: string }) => `${p.transfer_id} ${p.problem} ${p.detail}`;

describe('audit --since-last', () => {
  let ids: Record<string, string>;

  it('before its first run, doctor warns that it never ran; the first run audits every transfer', async () => {
    for (const s of ['completed', 'reversed', 'failed'] as const) await transferIn(db.pool, s);
    expect(await auditCheck()).toMatchObject({ status: 'warn', detail: 'the incremental audit has never run' });
    const { code, json } = await sinceLast();
    expect(code).toBe(0);
    expect(json.run).toMatchObject({ was_full: true, transfers_audited: 3, problems_found: 0 });
    expect(json.findings).toEqual([]);
    expect(await auditCheck()).toMatchObject({ status: 'ok' });
  });

  it('finds every problem class the full audit finds in the history since the watermark, and stores them', async () => {
    ids = await everyProblemClass();
    const { code, json } = await sinceLast();
    expect(code).toBe(3);
    expect(json.run!.was_full).toBe(false);
    const full = (await db.pool.query('select transfer_id, problem, detail from marketplace.audit_seller_transfers()')).rows;
    expect(full.length).toBe(14);
    expect(json.findings.map(key).sort()).toEqual(full.map(key).sort());
    expect(new Set(json.findings.map((f) => f.problem))).toEqual(
      new Set([
        'status_mismatch',
        'stripe_id_not_from_worker',
        'no_history',
        'first_event_not_insert',
        'illegal_step',
        'broken_chain',
        'same_state_step',
        'initial_status_not_initial',
        'history_without_row',
        'money_facts_changed',
      ]),
    );
    // The new history, and the rows created in the last 10 minutes (the three clean ones: every run
    // looks back that far for rows written without history).
    expect(json.run!.transfers_audited).toBe(Object.keys(ids).length + 3);
    const check = await auditCheck();
    expect(check.status).toBe('problem');
    expect(check.detail).toMatch(/^14 open finding\(s\) on 10 transfer\(s\): broken_chain, .*stripe_id_not_from_worker; last run /);
    expect(check.fix).toContain('seller-transfers audit --findings');
  });

  it('a run with nothing new keeps the findings; --findings lists them without auditing', async () => {
    const { json } = await sinceLast();
    expect(json.open).toBe(14);
    const text = await cli('audit', '--findings');
    expect(text.code).toBe(3);
    expect(text.stdout).toContain(ids.illegalStep!);
    expect(text.stdout).toContain('14 open finding(s) on 10 transfer(s)');
  });

  it('a fixed row loses its finding at the next run; an acknowledged one stays listed but no longer counts', async () => {
    // The row put back where its history ends (a DBA's repair).
    await asReplica(`update marketplace.seller_transfers set status = 'completed' where id = $1`, [ids.completedToPending]);
    const ack = await cli('audit', '--acknowledge', ids.moneyChanged!, '--reason', 'test refund, agreed with finance', '--json');
    expect(ack.code, ack.stderr).toBe(0);
    expect(JSON.parse(ack.stdout)).toEqual({ transfer_id: ids.moneyChanged, acknowledged: 1 });
    const { json } = await sinceLast();
    expect(json.findings.filter((f) => f.transfer_id === ids.completedToPending)).toEqual([]);
    expect(json.run!.findings_fixed).toBe(1);
    const acked = json.findings.find((f) => f.transfer_id === ids.moneyChanged)!;
    expect(acked.acknowledged_by).toMatch(/\(cli\)$/);
    expect(json.open).toBe(12);
    expect(json.acknowledged).toBe(1);
    expect((await auditCheck()).detail).toMatch(/^12 open finding\(s\) on 8 transfer\(s\)/);
    // --full audits everything again and forgets nothing that is still wrong.
    const again = await sinceLast('--full');
    expect(again.json.run).toMatchObject({ was_full: true, findings_new: 0, findings_fixed: 0 });
    expect(again.json.open).toBe(12);
  });

  it("the console's /audit shows the stored findings and when the audit last ran; ?since= audits live", async () => {
    const app = await startTestConsole(db.url);
    try {
      const cookie = sessionCookie(await postLogin(app.url, VIEWER.name, VIEWER.password));
      const html = await (await fetch(`${app.url}/audit`, { headers: { cookie } })).text();
      expect(html).toContain('12 open finding(s) on 8 transfer(s), 1 acknowledged');
      expect(html).toMatch(/The incremental audit \(<code>seller-transfers audit --since-last<\/code>\) last ran at \d{4}-/);
      expect(html).toContain(ids.illegalStep!);
      expect(html).toContain('test refund, agreed with finance');
      const live = await (await fetch(`${app.url}/audit?since=2000-01-01`, { headers: { cookie } })).text();
      expect(live).toMatch(/13 problem\(s\) on 9 transfer\(s\) since 2000-01-01/);
    } finally {
      await app.close();
    }
  });

  it('refuses what cannot be done, in one line', async () => {
    expectOneLineError(await cli('audit', '--acknowledge', ids.moneyChanged!, '--reason', 'again'), 'no open finding of', 1);
    expectOneLineError(await cli('audit', '--acknowledge', ids.brokenChain!), '--acknowledge needs --reason', 2);
    expectOneLineError(await cli('audit', '--since-last', '--since', '2020-01-01'), 'use one of --since, --since-last', 2);
    expectOneLineError(await cli('audit', '--full'), '--full goes with --since-last', 2);
    expectOneLineError(await cli('audit', '--acknowledge', 'nope', '--reason', 'x'), 'is not a seller transfer id', 2);
  });

  it('two runs never overlap', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      await c.query('select * from marketplace.run_seller_transfer_audit()');
      const second = await cli('audit', '--since-last');
      expect(second.code).not.toBe(0);
      expect(second.stderr).toContain('an audit run is already in progress');
    } finally {
      await c.query('rollback');
      c.release();
    }
  });
});
