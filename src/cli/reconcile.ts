// Database vs Stripe. Lists every disagreement; with fix, adopts what Stripe proves through the
// same SQL functions the worker uses (mark_seller_transfer_paid / mark_seller_transfer_reversed,
// and reverse_seller_transfer when a paid row must first ask for the reversal Stripe already
// has), so the guard and the history apply. Whether a row may move is asked of
// the database (can_transition_transfer_status), never decided here.
import type pg from 'pg';
import Stripe from 'stripe';
import { CliError } from './context.ts';
import { inTransaction, isUuid } from '../db/connection.ts';
import { namedQueries } from '../db/named-queries.ts';
import { formatMinor } from '../money.ts';

const sql = namedQueries('src/cli/queries.sql');

export type DisagreementKind =
  | 'stripe_transfer_without_row' // a Stripe transfer names a row that does not exist
  | 'transfer_not_recorded' // Stripe has a transfer for a row that records none
  | 'other_stripe_transfer' // Stripe has a transfer for a row that records another one
  | 'stripe_transfer_missing' // the row records a transfer Stripe does not have
  | 'transfer_differs' // amount, currency, destination or owner differ
  | 'reversal_not_recorded' // Stripe has a reversal the row does not record
  | 'stripe_reversal_missing' // the row records a reversal Stripe does not have
  | 'reversal_differs'; // the recorded reversal's amount differs

type FixStep =
  | { fn: 'mark_seller_transfer_paid'; stripeId: string }
  | { fn: 'reverse_seller_transfer'; stripeId: string; amount: number }
  | { fn: 'mark_seller_transfer_reversed'; stripeId: string; amount: number };

export interface Disagreement {
  kind: DisagreementKind;
  transfer_id: string | null;
  row_status: string | null;
  stripe_id: string | null;
  detail: string;
  /** What --fix does (or did) about it. */
  fix: string;
  fixed: boolean;
  steps?: FixStep[];
}

export interface ReconcileReport {
  since: string | null;
  fix: boolean;
  checked: { rows: number; stripe_transfers: number; stripe_transfers_ignored: number; reversal_lists: number };
  disagreements: Disagreement[];
  fixed: number;
  remaining: number;
}

interface Row {
  id: string;
  status: string;
  amount_cents: string;
  currency: string;
  stripe_account_id: string;
  stripe_transfer_id: string | null;
  stripe_reversal_id: string | null;
  reversal_amount_cents: string | null;
}

/** The row a Stripe transfer belongs to: metadata.seller_transfer_id, else transfer_group seller_transfer_<id>. */
function ownerOf(t: Stripe.Transfer): string | null {
  const meta = t.metadata?.seller_transfer_id;
  if (meta) return meta.toLowerCase();
  const group = /^seller_transfer_(.+)$/.exec(t.transfer_group ?? '');
  return group ? group[1]!.toLowerCase() : null;
}

/** An amount as a person reads it (1,234.56 USD, 1,200 JPY), the exponent from marketplace.currencies. */
type Money = (minor: number | string, currency: string) => string;

const destinationOf = (t: Stripe.Transfer) => (typeof t.destination === 'string' ? t.destination : (t.destination?.id ?? null));

function differences(row: Row, t: Stripe.Transfer, money: Money): string[] {
  const out: string[] = [];
  if (t.amount !== Number(row.amount_cents) || t.currency !== row.currency)
    out.push(`amount ${money(t.amount, t.currency)} at Stripe, ${money(row.amount_cents, row.currency)} in the row`);
  if (destinationOf(t) !== row.stripe_account_id)
    out.push(`destination ${destinationOf(t)} at Stripe, ${row.stripe_account_id} in the row`);
  const owner = ownerOf(t);
  if (owner !== null && owner !== row.id) out.push(`Stripe says it belongs to seller transfer ${owner}`);
  return out;
}

async function stripeCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (e) {
    if (e instanceof Stripe.errors.StripeError)
      throw new CliError(`Stripe ${what} failed: ${e.type}${e.statusCode ? ` (${e.statusCode})` : ''}: ${e.message.split('\n')[0]}`);
    throw e;
  }
}

async function retrieveTransfer(stripe: Stripe, id: string): Promise<Stripe.Transfer | null> {
  try {
    return await stripe.transfers.retrieve(id);
  } catch (e) {
    if (e instanceof Stripe.errors.StripeError && (e.statusCode === 404 || e.code === 'resource_missing')) return null;
    return stripeCall(`retrieve of transfer ${id}`, () => Promise.reject(e));
  }
}

export async function reconcile(db: pg.Client, stripe: Stripe, opts: { since: Date | null; fix: boolean }): Promise<ReconcileReport> {
  const sinceSeconds = opts.since ? Math.floor(opts.since.getTime() / 1000) : null;

  // Stripe first, then the database: a transfer the worker creates in between is then either in
  // neither or already recorded, and the row-side lookups below find it.
  const stripeTransfers: Stripe.Transfer[] = [];
  let ignored = 0;
  await stripeCall('list of transfers', async () => {
    for await (const t of stripe.transfers.list({ limit: 100 })) {
      if (sinceSeconds !== null && t.created < sinceSeconds) break; // newest first
      if (ownerOf(t) === null) ignored++;
      else stripeTransfers.push(t);
    }
  });

  const ownerIds = [...new Set(stripeTransfers.map(ownerOf).filter((id): id is string => id !== null && isUuid(id)))];
  const { rows } = await db.query<Row>(sql('reconcile_rows'), [opts.since, ownerIds]);
  const { rows: currencies } = await db.query<{ code: string; exponent: number }>(sql('currency_exponents'));
  const exponents = new Map(currencies.map((c) => [c.code, c.exponent]));
  const money: Money = (minor, currency) => formatMinor(minor, currency, exponents.get(currency.toLowerCase()) ?? null);
  const { rows: moves } = await db.query<{ from_status: string; to_status: string; ok: boolean }>(sql('legal_moves'));
  const legal = new Set(moves.filter((m) => m.ok && m.from_status !== m.to_status).map((m) => `${m.from_status}>${m.to_status}`));
  const canMove = (from: string, to: string) => legal.has(`${from}>${to}`);

  const rowsById = new Map(rows.map((r) => [r.id, r]));
  const byOwner = new Map<string, Stripe.Transfer[]>();
  const findings: Disagreement[] = [];
  const add = (d: Omit<Disagreement, 'fixed' | 'fix'> & { fix?: string }) => findings.push({ fix: 'needs a person', fixed: false, ...d });

  for (const t of stripeTransfers) {
    const owner = ownerOf(t)!;
    const row = rowsById.get(owner);
    if (!row) {
      add({
        kind: 'stripe_transfer_without_row',
        transfer_id: owner,
        row_status: null,
        stripe_id: t.id,
        detail: `${money(t.amount, t.currency)} to ${destinationOf(t)}; no seller transfer ${owner} in the database`,
      });
      continue;
    }
    byOwner.set(owner, [...(byOwner.get(owner) ?? []), t]);
  }

  let reversalLists = 0;
  for (const row of rows) {
    const atStripe = byOwner.get(row.id) ?? [];
    let status = row.status; // as it will be after the fixes planned so far
    let transfer: Stripe.Transfer | null = null; // the Stripe transfer the row's reversal lives on

    if (row.stripe_transfer_id) {
      transfer = atStripe.find((t) => t.id === row.stripe_transfer_id) ?? (await retrieveTransfer(stripe, row.stripe_transfer_id));
      if (!transfer) {
        add({
          kind: 'stripe_transfer_missing',
          transfer_id: row.id,
          row_status: row.status,
          stripe_id: row.stripe_transfer_id,
          detail: `the row records ${row.stripe_transfer_id}, which Stripe does not have`,
        });
      } else {
        const diff = differences(row, transfer, money);
        if (diff.length)
          add({ kind: 'transfer_differs', transfer_id: row.id, row_status: row.status, stripe_id: transfer.id, detail: diff.join('; ') });
      }
      for (const other of atStripe.filter((t) => t.id !== row.stripe_transfer_id)) {
        add({
          kind: 'other_stripe_transfer',
          transfer_id: row.id,
          row_status: row.status,
          stripe_id: other.id,
          detail: `Stripe also has ${other.id} (${money(other.amount, other.currency)}) for this row, which records ${row.stripe_transfer_id}`,
        });
      }
    } else if (atStripe.length) {
      const only = atStripe.length === 1 ? atStripe[0]! : null;
      const diff = only ? differences(row, only, money) : [];
      for (const t of atStripe) {
        const d: Omit<Disagreement, 'fixed' | 'fix'> & { fix?: string } = {
          kind: 'transfer_not_recorded',
          transfer_id: row.id,
          row_status: row.status,
          stripe_id: t.id,
          detail: `Stripe has ${money(t.amount, t.currency)} to ${destinationOf(t)} for this ${row.status} row${only ? '' : ` (${atStripe.length} transfers for one row)`}`,
        };
        if (only && diff.length) d.detail += `, but it differs: ${diff.join('; ')}`;
        else if (only && canMove(status, 'completed')) {
          d.fix = `adopt: ${status} -> completed with ${t.id}`;
          d.steps = [{ fn: 'mark_seller_transfer_paid', stripeId: t.id }];
          status = 'completed';
          transfer = t;
        } else if (only) d.fix = `needs a person: ${status} -> completed is not a legal move`;
        add(d);
      }
    }

    if (transfer && (transfer.amount_reversed > 0 || row.stripe_reversal_id)) {
      reversalLists++;
      const reversals: Stripe.TransferReversal[] = [];
      await stripeCall(`list of reversals of ${transfer.id}`, async () => {
        for await (const r of stripe.transfers.listReversals(transfer!.id, { limit: 100 })) reversals.push(r);
      });
      if (row.stripe_reversal_id) {
        const recorded = reversals.find((r) => r.id === row.stripe_reversal_id);
        const expected = Number(row.reversal_amount_cents ?? row.amount_cents);
        if (!recorded) {
          add({
            kind: 'stripe_reversal_missing',
            transfer_id: row.id,
            row_status: row.status,
            stripe_id: row.stripe_reversal_id,
            detail: `the row records reversal ${row.stripe_reversal_id}, which Stripe does not list for ${transfer.id}`,
          });
        } else if (recorded.amount !== expected) {
          add({
            kind: 'reversal_differs',
            transfer_id: row.id,
            row_status: row.status,
            stripe_id: recorded.id,
            detail: `reversal amount ${money(recorded.amount, recorded.currency)} at Stripe, ${money(expected, row.currency)} in the row`,
          });
        }
      }
      const unrecorded = reversals.filter((r) => r.id !== row.stripe_reversal_id);
      for (const r of unrecorded) {
        const d: Omit<Disagreement, 'fixed' | 'fix'> & { fix?: string } = {
          kind: 'reversal_not_recorded',
          transfer_id: row.id,
          row_status: row.status,
          stripe_id: r.id,
          detail: `Stripe has a reversal of ${money(r.amount, r.currency)} on ${transfer.id} that this ${row.status} row does not record`,
        };
        const asked = Number(row.reversal_amount_cents ?? row.amount_cents);
        if (row.stripe_reversal_id || unrecorded.length > 1) {
          d.detail += row.stripe_reversal_id ? ` (it records ${row.stripe_reversal_id})` : ` (${unrecorded.length} reversals for one row)`;
        } else if (status === 'reversal_pending' && r.amount !== asked) {
          // The reversal amount is write-once: it was chosen when the refund was requested.
          d.fix = `needs a person: Stripe reversed ${money(r.amount, r.currency)}, the row asks for ${money(asked, row.currency)} (the reversal amount is fixed once requested)`;
        } else if (canMove(status, 'reversed')) {
          d.fix = `adopt: ${status} -> reversed with ${r.id}`;
          d.steps = [{ fn: 'mark_seller_transfer_reversed', stripeId: r.id, amount: r.amount }];
        } else if (canMove(status, 'reversal_pending') && canMove('reversal_pending', 'reversed')) {
          d.fix = `adopt: ${status} -> reversal_pending -> reversed with ${r.id}`;
          d.steps = [
            { fn: 'reverse_seller_transfer', stripeId: r.id, amount: r.amount },
            { fn: 'mark_seller_transfer_reversed', stripeId: r.id, amount: r.amount },
          ];
        } else d.fix = `needs a person: ${status} -> reversed is not a legal move`;
        add(d);
      }
    }
  }

  let fixed = 0;
  if (opts.fix) fixed = await applyFixes(db, findings);
  else for (const d of findings) if (d.steps) d.fix = `would ${d.fix}`;

  for (const d of findings) delete d.steps;
  return {
    since: opts.since ? opts.since.toISOString() : null,
    fix: opts.fix,
    checked: {
      rows: rows.length,
      stripe_transfers: stripeTransfers.length,
      stripe_transfers_ignored: ignored,
      reversal_lists: reversalLists,
    },
    disagreements: findings,
    fixed,
    remaining: findings.filter((d) => !d.fixed).length,
  };
}

/**
 * Per row, all of its planned steps in one transaction while holding the row's worker lock (so
 * no worker acts on it meanwhile). A step that finds the row changed undoes the row's fixes.
 */
async function applyFixes(db: pg.Client, findings: Disagreement[]): Promise<number> {
  const byRow = new Map<string, Disagreement[]>();
  for (const d of findings) if (d.steps && d.transfer_id) byRow.set(d.transfer_id, [...(byRow.get(d.transfer_id) ?? []), d]);
  let fixed = 0;
  for (const [id, planned] of byRow) {
    const {
      rows: [lock],
    } = await db.query<{ ok: boolean }>(sql('try_lock'), [id]);
    if (!lock?.ok) {
      for (const d of planned) d.fix = `skipped: the worker is processing this row right now; run reconcile again (planned: ${d.fix})`;
      continue;
    }
    try {
      await inTransaction(db, async () => {
        for (const d of planned) {
          for (const step of d.steps!) {
            const ok = await runStep(db, id, step);
            if (!ok) throw new RowChanged();
          }
        }
      });
      for (const d of planned) {
        d.fix = `fixed: ${d.fix.replace(/^adopt: /, 'adopted: ')}`;
        d.fixed = true;
        fixed++;
      }
    } catch (e) {
      const why = e instanceof RowChanged ? 'the row changed meanwhile' : isDatabaseError(e) ? `refused: ${e.message}` : null;
      if (why === null) throw e;
      for (const d of planned) d.fix = `skipped: ${why}; run reconcile again (planned: ${d.fix})`;
    } finally {
      await db.query(sql('unlock'), [id]);
    }
  }
  return fixed;
}

class RowChanged extends Error {}

function isDatabaseError(e: unknown): e is Error & { code: string } {
  return e instanceof Error && 'severity' in e && typeof (e as { code?: unknown }).code === 'string';
}

async function runStep(db: pg.Client, id: string, step: FixStep): Promise<boolean> {
  switch (step.fn) {
    case 'mark_seller_transfer_paid': {
      const {
        rows: [r],
      } = await db.query<{ ok: boolean }>(sql('adopt_paid'), [
        id,
        step.stripeId,
        `reconcile: adopted Stripe transfer ${step.stripeId} found at Stripe`,
      ]);
      return r?.ok === true;
    }
    case 'reverse_seller_transfer': {
      await db.query(sql('adopt_reversal_requested'), [id, `reconcile: Stripe already has reversal ${step.stripeId}`, step.amount]);
      return true;
    }
    case 'mark_seller_transfer_reversed': {
      const {
        rows: [r],
      } = await db.query<{ ok: boolean }>(sql('adopt_reversed'), [
        id,
        step.stripeId,
        step.amount,
        `reconcile: adopted Stripe reversal ${step.stripeId} found at Stripe`,
      ]);
      return r?.ok === true;
    }
  }
}
