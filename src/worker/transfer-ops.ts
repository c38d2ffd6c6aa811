// What a transfer task does with one row: claim it (lock + read), talk to Stripe once, record
// the outcome through the SQL functions (so the trigger checks the move and writes the history)
// and release the row at that commit. A failure's next_retry_at makes the row due again later:
// the table is the queue.
//
// Why that moves each payout and each reversal exactly once, whatever crashes (idempotency keys
// from stripe_key_generation, a lookup before any new key, one worker per row, no transaction
// open across a Stripe call): docs/architecture.md#exactly-once-money. Why a 429 is not a failed
// attempt, and how long a job keeps a rate-limited row (RATE_LIMIT_WAIT_MS, RATE_LIMIT_TRIES)
// before handing it back unchanged: docs/operating.md#stripe-request-budget.
import type pg from 'pg';
import type Stripe from 'stripe';
import { classifyStripeError, needsNewKey, type ClassifiedFailure } from '../stripe/errors.ts';
import { rateLimitedReason, STRIPE_ENDPOINTS, type RequestBudget } from '../stripe/request-budget.ts';
import type { AppLogger } from '../logger.ts';
import { attemptsExhausted, retryDelaySeconds, type RetryPolicy } from './retry-policy.ts';
import type { TransferJobPayload } from './payload.ts';
import { namedQueries } from '../db/named-queries.ts';
import { formatMinor } from '../money.ts';

const sql = namedQueries('src/worker/queries.sql');

export const TRANSFER_TASKS = ['seller_transfer_create', 'seller_transfer_retry', 'seller_transfer_reverse'] as const;
export type TransferTask = (typeof TRANSFER_TASKS)[number];

/** Rows whose state is older than this are looked up before a first attempt (Stripe prunes keys after 24 h). */
const LOOKUP_WHEN_OLDER_THAN_MS = 12 * 3600 * 1000;

export interface StripeCallObserver {
  (
    operation: 'transfer.create' | 'transfer.lookup' | 'transfer.retrieve' | 'reversal.create' | 'reversal.lookup',
    outcome: string,
    seconds: number,
  ): void;
}

/** How long one job keeps a rate-limited row, re-sending as the budget allows, before handing it back. */
export const RATE_LIMIT_WAIT_MS = 60_000;
/** Most 429s one job takes for one request before handing the row back. */
export const RATE_LIMIT_TRIES = 10;

export interface WorkerDeps {
  pool: pg.Pool;
  stripe: Stripe;
  policy: RetryPolicy;
  logger: AppLogger;
  /** The fleet's Stripe request budget; absent: calls are not paced (429s are still not failures). */
  budget?: RequestBudget;
  /** Aborted when the worker stops: a job waiting out a 429 hands its row back at once. */
  stopping?: AbortSignal;
  /** Bounds of the in-job waiting after 429s (defaults RATE_LIMIT_WAIT_MS, RATE_LIMIT_TRIES). */
  rateLimitWaitMs?: number;
  rateLimitTries?: number;
  onStripeCall?: StripeCallObserver;
  onTransition?: (from: string, to: string) => void;
  /** An outcome the database did not take (the row moved meanwhile): counted, never dropped silently. */
  onOutcomeNotRecorded?: (operation: string) => void;
}

/** A row brought in by seller-transfers adopt run: what the handover needs (worker queries.sql, adoption_handover). */
interface Adoption {
  adopted_transfer_id: string | null;
  created_at: Date;
  /** The legacy transfer_group the adoption recorded (its map named one), else null. */
  transfer_group: string | null;
}

interface ClaimedRow extends TransferRow {
  outcome: 'claimed' | 'busy' | 'missing' | 'not_actionable';
}

interface TransferRow {
  id: string;
  status: string;
  stripe_account_id: string;
  amount_cents: string;
  currency: string;
  order_id: string;
  seller_id: string;
  stripe_transfer_id: string | null;
  reversal_amount_cents: string | null;
  retry_count: number;
  last_error: string | null;
  stripe_key_generation: number;
  stripe_request_in_doubt: boolean;
  state_since: Date | null;
  /** The charge (ch_…/py_…) the transfer is funded from, or null: the platform's available balance. */
  source_transaction: string | null;
  /** marketplace.currencies.exponent of the row's currency (null: not there). */
  currency_exponent: number | null;
}

/**
 * Another worker holds the row (e.g. its job ran past the lease and the row was handed out
 * again). Thrown so graphile-worker runs this job again shortly; and if it never can, the
 * row's lease runs out and dispatch hands it out again: nothing is stranded.
 */
export class RowBusyError extends Error {
  constructor(readonly transferId: string) {
    super(`seller transfer ${transferId} is being processed by another worker; this job will run again`);
    this.name = 'RowBusyError';
  }
}

export type TaskOutcome =
  | 'missing'
  | 'not_actionable'
  | 'completed'
  | 'reversed'
  | 'adopted'
  | 'failed'
  | 'permanently_failed'
  | 'rescheduled'
  | 'rate_limited'
  | 'held_for_review'
  | 'not_recorded'
  | 'paused';

/** Thrown out of a Stripe call that stayed rate limited for as long as one job waits. */
class StillRateLimited extends Error {
  constructor(
    readonly reason: string,
    readonly tries: number,
  ) {
    super(`rate limited by Stripe (${reason}) ${tries} time(s)`);
  }
}

/** The fleet is paused (marketplace.seller_transfers_paused): no Stripe call was made. */
class FleetPaused extends Error {
  constructor() {
    super('seller transfers are paused: no Stripe call made');
  }
}

/** A Stripe call's own failure (as opposed to the database's), carried out of stripeCall. */
class StripeCallFailed extends Error {
  constructor(readonly original: unknown) {
    super(original instanceof Error ? original.message : String(original));
  }
}

const RATE_LIMITED_PREFIX = /^rate limited by Stripe \([^)]*\); waiting for the request budget(?:; previous error: )?/;

/**
 * last_error while a row waits for the budget. The previous error is kept after it: it is what
 * the attempt limits read (a balance failure's limit is its own), and what operators need.
 */
export function rateLimitedMessage(reason: string, previous: string | null): string {
  const before = previous?.replace(RATE_LIMITED_PREFIX, '') || null;
  return `rate limited by Stripe (${reason}); waiting for the request budget${before ? `; previous error: ${before}` : ''}`.slice(0, 2000);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

/**
 * Runs one task for one row: claim (lock + read, one round trip), at most one Stripe call
 * (plus a lookup when needed), then record the outcome and release the row in one statement
 * (the lock is handed to that transaction and released at its commit).
 */
export async function runTransferTask(deps: WorkerDeps, task: TransferTask, job: TransferJobPayload): Promise<TaskOutcome> {
  const client = await deps.pool.connect();
  let broken: Error | undefined;
  let op: RowOperation | undefined;
  try {
    const {
      rows: [row],
    } = await client.query<ClaimedRow>({
      name: 'seller-transfers-claim',
      text: sql('claim'),
      values: [job.id, task, job.lease ?? null],
    });
    if (!row || row.outcome === 'busy') throw new RowBusyError(job.id);
    if (row.outcome !== 'claimed') return row.outcome;
    op = new RowOperation(deps, client, row);
    return task === 'seller_transfer_reverse' ? await op.reverse() : await op.pay();
  } catch (e) {
    // A connection in doubt is destroyed: its session ends, and with it the row's claim.
    if (!(e instanceof RowBusyError)) broken = e as Error;
    throw e;
  } finally {
    if (op && !op.released && !broken) await client.query(sql('unlock'), [job.id]);
    client.release(broken);
  }
}

class RowOperation {
  /** The outcome was recorded and the row handed back (at that statement's commit). */
  released = false;

  constructor(
    private deps: WorkerDeps,
    private db: pg.PoolClient,
    private row: TransferRow,
  ) {}

  /** Records an outcome and releases the row in one statement: one round trip, one commit. */
  private async record<R extends pg.QueryResultRow>(name: string, text: string, values: unknown[]): Promise<R | undefined> {
    const {
      rows: [r],
    } = await this.db.query<R>({
      name: `seller-transfers-${name}`,
      text,
      values,
    });
    this.released = true;
    return r;
  }

  private get log() {
    return this.deps.logger.child({ transferId: this.row.id, status: this.row.status, attempt: this.row.retry_count + 1 });
  }

  /**
   * Look Stripe up before calling it: after any attempt whose outcome Stripe may hold (a new key
   * generation, a request in doubt), and for a row whose state is old enough for Stripe to have
   * pruned its keys. Decided from the columns only the worker's recording functions write
   * (stripe_key_generation, stripe_request_in_doubt): nothing a service writes can skip it.
   */
  private mustLookUp(): boolean {
    const since = this.row.state_since?.getTime() ?? 0;
    return (
      this.row.stripe_key_generation > 0 ||
      this.row.stripe_request_in_doubt ||
      this.row.retry_count > 0 ||
      !Number.isFinite(since) ||
      Date.now() - since > LOOKUP_WHEN_OLDER_THAN_MS
    );
  }

  /**
   * Out of attempts, and safe to stop: the lookup just found nothing, and no earlier request can
   * still be running at Stripe. With a request in doubt we keep re-sending its key instead.
   */
  private get exhausted(): boolean {
    return attemptsExhausted(this.deps.policy, this.row.retry_count, this.row.last_error) && !this.row.stripe_request_in_doubt;
  }

  /** Past the attempt limit, and the lookup just proved Stripe has nothing: safe to give up. */
  private async giveUp(): Promise<TaskOutcome> {
    const { row } = this;
    const message = `gave up after ${row.retry_count} failed attempts; Stripe has no ${row.status === 'reversal_pending' ? 'reversal' : 'transfer'} for this row. Last error: ${row.last_error ?? 'none'}`;
    const r = await this.record<{ result: string | null }>('give-up', sql('record_give_up'), [
      row.id,
      row.status,
      message,
      `worker: retry limit reached (${row.retry_count} attempts)`,
    ]);
    if (!r?.result) return this.notRecorded('give-up', { error: message });
    this.deps.onTransition?.(row.status, 'permanently_failed');
    this.log.error({ error: message }, 'retry limit reached');
    return 'permanently_failed';
  }

  private key(operation: 'transfer' | 'reversal'): string {
    return `seller_transfer:${this.row.id}:${operation}:${this.row.stripe_key_generation}`;
  }

  private async timed<T>(operation: Parameters<StripeCallObserver>[0], call: () => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    try {
      const result = await call();
      this.deps.onStripeCall?.(operation, 'ok', seconds());
      return result;
    } catch (e) {
      this.deps.onStripeCall?.(operation, classifyStripeError(e).kind, seconds());
      throw e;
    }
  }

  /**
   * One Stripe request: a slot of the fleet's budget first; on a 429 the budget is told and the
   * same request (same idempotency key: `call` is the same closure) is sent again in a new slot.
   * Stripe errors come out as StripeCallFailed, a 429 that outlasted the job's patience as
   * StillRateLimited; anything else (the database, for the budget) as is.
   */
  private async stripeCall<T>(operation: Parameters<StripeCallObserver>[0], endpoint: string, call: () => Promise<T>): Promise<T> {
    const { deps } = this;
    const waitMs = deps.rateLimitWaitMs ?? RATE_LIMIT_WAIT_MS;
    const maxTries = deps.rateLimitTries ?? RATE_LIMIT_TRIES;
    let limitedSince: number | undefined;
    for (let tries = 0; ;) {
      if (limitedSince !== undefined && deps.stopping?.aborted) throw new StillRateLimited(this.limitedReason ?? 'unknown', tries);
      await deps.budget?.acquire(endpoint);
      // The pause switch, read right before each Stripe call (one row by primary key): once a
      // pause commits, no new call starts; one already sent finishes and is recorded as usual.
      await this.refuseWhilePaused();
      try {
        return await this.timed(operation, call);
      } catch (e) {
        const reason = rateLimitedReason(e);
        if (reason === null) throw new StripeCallFailed(e);
        tries++;
        limitedSince ??= Date.now();
        this.limitedReason = reason;
        // The fleet slows down; a failure to tell it (database trouble) must not turn into a failed attempt.
        await deps.budget
          ?.rateLimited(endpoint, reason)
          .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'could not report a Stripe 429 to the request budget'));
        if (tries === 1) await this.showWaiting(reason);
        if (tries >= maxTries || Date.now() - limitedSince >= waitMs || deps.stopping?.aborted) throw new StillRateLimited(reason, tries);
        // With a budget the next slot is the wait; without one, a short capped back-off with jitter.
        if (!deps.budget) await sleep(Math.min(5_000, 250 * 2 ** (tries - 1)) * (0.5 + Math.random() / 2), deps.stopping);
      }
    }
  }

  private limitedReason: string | undefined;

  private async refuseWhilePaused(): Promise<void> {
    const {
      rows: [r],
    } = await this.db.query<{ paused: boolean }>({ name: 'seller-transfers-paused', text: sql('paused') });
    if (r?.paused) throw new FleetPaused();
  }

  /** Paused before a Stripe call: the row is due again now and released; nothing else changes. */
  private async handBackPaused(): Promise<TaskOutcome> {
    const { row } = this;
    await this.record<{ result: string | null }>('record-paused', sql('record_paused'), [row.id, row.status]);
    this.log.info('seller transfers are paused: no Stripe call made; row handed back, due when resumed');
    return 'paused';
  }

  /** While a job waits out a 429, the row says so (same state: no history row, no other column). */
  private async showWaiting(reason: string): Promise<void> {
    const message = rateLimitedMessage(reason, this.row.last_error);
    await this.db.query({
      name: 'seller-transfers-show-rate-limited',
      text: sql('show_rate_limited'),
      values: [this.row.id, this.row.status, message],
    });
    this.log.info({ reason }, 'Stripe answered 429 (rate limited): not a failed attempt; waiting for the request budget');
  }

  /** Still rate limited after waiting within the job: hand the row back, no attempt counted. */
  private async handBackRateLimited(limited: StillRateLimited): Promise<TaskOutcome> {
    const { row } = this;
    const retryAt = new Date(Date.now() + 1000 + Math.random() * 2000);
    const message = rateLimitedMessage(limited.reason, row.last_error);
    const r = await this.record<{ result: string | null }>('record-rate-limited', sql('record_rate_limited'), [
      row.id,
      row.status,
      message,
      retryAt,
    ]);
    if (!r?.result) return this.notRecorded('record-rate-limited', { reason: limited.reason });
    this.log.warn(
      { reason: limited.reason, tries: limited.tries, nextRetryAt: retryAt },
      'still rate limited by Stripe: row handed back unchanged (not a failed attempt), due again shortly',
    );
    return 'rate_limited';
  }

  async pay(): Promise<TaskOutcome> {
    const { row, deps } = this;
    const group = `seller_transfer_${row.id}`;
    try {
      if (this.mustLookUp() || (await this.adoption())) {
        const found = await this.stripeCall('transfer.lookup', STRIPE_ENDPOINTS.transferList, () =>
          deps.stripe.transfers.list({ transfer_group: group, limit: 10 }),
        );
        const ours = found.data.filter((t) => t.metadata?.seller_transfer_id === row.id).sort((a, b) => a.created - b.created);
        if (ours.length > 1)
          this.log.error({ stripeTransferIds: ours.map((t) => t.id) }, 'more than one Stripe transfer for one row: adopting the oldest');
        const existing = ours[0];
        if (existing) {
          const mismatch = this.differs(existing);
          if (mismatch) return this.holdForReview(`Stripe transfer ${existing.id} for this row differs: ${mismatch}`);
          return this.markPaid(existing.id, `worker: adopted Stripe transfer ${existing.id} found by lookup`, 'adopted');
        }
        if (this.exhausted && !(await this.adoption())) return this.giveUp();
      }
      const legacy = await this.legacyTransfer();
      if (legacy) return this.markPaid(legacy.id, `worker: handover: the legacy system's Stripe transfer ${legacy.id} recorded`, 'adopted');
      if (this.exhausted && (await this.adoption())) return this.giveUp();
      const transfer = await this.stripeCall('transfer.create', STRIPE_ENDPOINTS.transferCreate, () =>
        deps.stripe.transfers.create(
          {
            amount: Number(row.amount_cents),
            currency: row.currency,
            destination: row.stripe_account_id,
            transfer_group: group,
            description: `seller payout for order ${row.order_id}`,
            metadata: { seller_transfer_id: row.id, order_id: row.order_id, seller_id: row.seller_id },
            // Funded from the order's charge: Stripe accepts it while the charge's funds are pending.
            ...(row.source_transaction !== null && { source_transaction: row.source_transaction }),
          },
          { idempotencyKey: this.key('transfer') },
        ),
      );
      return await this.markPaid(transfer.id, `worker: Stripe transfer ${transfer.id} created`, 'completed');
    } catch (e) {
      return this.afterStripeError(e);
    }
  }

  async reverse(): Promise<TaskOutcome> {
    const { row, deps } = this;
    const transferId = row.stripe_transfer_id!;
    const amount = Number(row.reversal_amount_cents ?? row.amount_cents);
    try {
      const notOurs = await this.transferNotOurs(transferId);
      if (notOurs) return this.holdForReview(notOurs);
      const adopted = await this.adoption();
      if (this.mustLookUp() || adopted) {
        const found = await this.stripeCall('reversal.lookup', STRIPE_ENDPOINTS.reversalList, () =>
          deps.stripe.transfers.listReversals(transferId, { limit: 100 }),
        );
        // Handover: on an adopted row, a reversal the legacy worker made (with its own metadata)
        // and no other row records is this row's.
        const existing =
          found.data.find((r) => r.metadata?.seller_transfer_id === row.id) ??
          (adopted ? await this.notRecordedElsewhere(found.data.filter((r) => !r.metadata?.seller_transfer_id)) : undefined);
        if (existing) {
          if (existing.amount !== amount) {
            return this.holdForReview(
              `Stripe reversal ${existing.id} for this row differs: amount ${this.money(existing.amount)} != ${this.money(amount)}`,
            );
          }
          return this.markReversed(
            existing.id,
            existing.amount,
            `worker: adopted Stripe reversal ${existing.id} found by lookup`,
            'adopted',
          );
        }
        if (this.exhausted) return this.giveUp();
      }
      const reversal = await this.stripeCall('reversal.create', STRIPE_ENDPOINTS.reversalCreate, () =>
        deps.stripe.transfers.createReversal(
          transferId,
          {
            amount,
            description: `reversal of seller payout ${row.id}`,
            metadata: { seller_transfer_id: row.id, order_id: row.order_id },
          },
          { idempotencyKey: this.key('reversal') },
        ),
      );
      return await this.markReversed(reversal.id, reversal.amount, `worker: Stripe reversal ${reversal.id} created`, 'reversed');
    } catch (e) {
      return this.afterStripeError(e);
    }
  }

  /** Only Stripe's answers become outcomes; a database error (the record failed) propagates. */
  private afterStripeError(e: unknown): Promise<TaskOutcome> {
    if (e instanceof FleetPaused) return this.handBackPaused();
    if (e instanceof StillRateLimited) return this.handBackRateLimited(e);
    if (e instanceof StripeCallFailed) return this.fail(classifyStripeError(e.original));
    throw e;
  }

  private adopted: Promise<Adoption | null> | undefined;

  /** The row's adoption (seller-transfers adopt run), or null: read once per task. */
  private adoption(): Promise<Adoption | null> {
    this.adopted ??= this.db
      .query<Adoption>({
        name: 'seller-transfers-adoption-handover',
        text: sql('adoption_handover'),
        values: [this.row.id],
      })
      .then((r) => r.rows[0] ?? null);
    return this.adopted;
  }

  /** The first of these Stripe objects (oldest first) that no other row records. */
  private async notRecordedElsewhere<T extends { id: string; created: number }>(candidates: T[]): Promise<T | undefined> {
    if (!candidates.length) return undefined;
    const { rows } = await this.db.query<{ id: string }>({
      name: 'seller-transfers-stripe-ids-recorded-elsewhere',
      text: sql('stripe_ids_recorded_elsewhere'),
      values: [candidates.map((c) => c.id), this.row.id],
    });
    const taken = new Set(rows.map((r) => r.id));
    return [...candidates].sort((a, b) => a.created - b.created).find((c) => !taken.has(c.id));
  }

  /**
   * Handover (docs/adopting.md#handover): before its first transfer for an adopted row, what the
   * legacy worker may already have paid for it, with keys we do not know. Stripe lists the
   * candidates (by the legacy transfer_group when the adoption recorded one, else by destination);
   * which one is this row's is the database's rule (seller_transfer_handover_transfer).
   */
  private async legacyTransfer(): Promise<Stripe.Transfer | undefined> {
    const adoption = await this.adoption();
    if (!adoption) return undefined;
    const { row, deps } = this;
    const found = await this.stripeCall('transfer.lookup', STRIPE_ENDPOINTS.transferList, () =>
      deps.stripe.transfers.list(
        adoption.transfer_group !== null
          ? { transfer_group: adoption.transfer_group, limit: 100 }
          : { destination: row.stripe_account_id, limit: 100 },
      ),
    );
    if (!found.data.length) return undefined;
    const candidates = found.data.map((t) => ({
      id: t.id,
      amount: t.amount,
      currency: t.currency,
      destination: typeof t.destination === 'string' ? t.destination : (t.destination?.id ?? null),
      created: t.created,
      transfer_group: t.transfer_group ?? null,
      metadata: t.metadata ?? {},
    }));
    const { rows } = await this.db.query<{ id: string | null }>({
      name: 'seller-transfers-handover-transfer',
      text: sql('handover_transfer'),
      values: [row.id, JSON.stringify(candidates)],
    });
    const id = rows[0]?.id ?? null;
    return id === null ? undefined : found.data.find((t) => t.id === id);
  }

  /** An amount of this row's currency, in its unit (last_error and the log are read by people). */
  private money(minor: number | string): string {
    return formatMinor(minor, this.row.currency, this.row.currency_exponent);
  }

  private differs(t: Stripe.Transfer): string | null {
    const { row } = this;
    const destination = typeof t.destination === 'string' ? t.destination : t.destination?.id;
    if (t.amount !== Number(row.amount_cents)) return `amount ${this.money(t.amount)} != ${this.money(row.amount_cents)}`;
    if (t.currency !== row.currency) return `currency ${t.currency} != ${row.currency}`;
    if (destination !== row.stripe_account_id) return `destination ${destination} != ${row.stripe_account_id}`;
    const source = typeof t.source_transaction === 'string' ? t.source_transaction : (t.source_transaction?.id ?? null);
    if (source !== row.source_transaction) return `source_transaction ${source ?? 'none'} != ${row.source_transaction ?? 'none'}`;
    return null;
  }

  /**
   * Stripe holds an object for this row that differs from it: money moved, so the row must not
   * say it did not (permanently_failed). Possible only after a write past the guard (the money
   * facts are write-once). The row is held in doubt, never due, for a person.
   */
  private async holdForReview(message: string): Promise<TaskOutcome> {
    const { row } = this;
    const r = await this.record<{ result: string | null }>('hold-for-review', sql('record_hold_for_review'), [
      row.id,
      row.status,
      `${message}; held for review: Stripe moved money, the row is not given up (see docs/runbook.md#transfersheldforreview)`,
      'worker: Stripe differs from the row; held for review',
    ]);
    const newStatus = r?.result ?? null;
    if (!newStatus) return this.notRecorded('hold-for-review', { error: message });
    if (newStatus !== row.status) this.deps.onTransition?.(row.status, newStatus);
    this.log.error({ error: message, newStatus }, 'Stripe differs from the row: held for review, not retried automatically');
    return 'held_for_review';
  }

  /**
   * Before reversing: is the Stripe transfer on the row the one the worker created for it? The
   * history says so when the worker recorded it (migration 000017 on); otherwise Stripe does: our
   * transfers carry the row's id in metadata and transfer_group. A row given another row's
   * transfer (a write past the guard) is held for review, never reversed. Returns why not, or null.
   */
  private async transferNotOurs(transferId: string): Promise<string | null> {
    const { row, deps } = this;
    const {
      rows: [recorded],
    } = await this.db.query<{ stripe_transfer_id: string | null; transfer_recorded_by: string | null }>({
      name: 'seller-transfers-recorded-stripe-ids',
      text: sql('recorded_stripe_ids'),
      values: [row.id],
    });
    // An adopted row's transfer came with the row from the legacy system (its adopted event holds
    // it): the legacy worker's, not ours to check by our metadata.
    if (recorded?.transfer_recorded_by !== 'worker' && (await this.adoption())?.adopted_transfer_id === transferId) return null;
    if (recorded?.transfer_recorded_by === 'worker') {
      return recorded.stripe_transfer_id === transferId
        ? null
        : `the row names Stripe transfer ${transferId}, but the worker recorded ${recorded.stripe_transfer_id} for it`;
    }
    let transfer: Stripe.Transfer;
    try {
      transfer = await this.stripeCall('transfer.retrieve', STRIPE_ENDPOINTS.transferRetrieve, () =>
        deps.stripe.transfers.retrieve(transferId),
      );
    } catch (e) {
      if (e instanceof StripeCallFailed && (e.original as { statusCode?: number }).statusCode === 404)
        return `Stripe has no transfer ${transferId}`;
      throw e;
    }
    const owner = transfer.metadata?.seller_transfer_id;
    if (owner === row.id && transfer.transfer_group === `seller_transfer_${row.id}`) return null;
    return `Stripe transfer ${transferId} is not this row's (metadata.seller_transfer_id ${owner ?? 'none'}, transfer_group ${transfer.transfer_group ?? 'none'})`;
  }

  /**
   * The database did not take an outcome: the row moved meanwhile (another writer, a person). The
   * outcome is not dropped: logged at error with what Stripe did, counted, and the row held for
   * review when it is still in a status the worker works on (a terminal row is left for audit and
   * reconcile, which name it). Never a success line for a row that does not say so.
   */
  private async notRecorded(operation: string, what: Record<string, unknown>): Promise<TaskOutcome> {
    const { row } = this;
    this.deps.onOutcomeNotRecorded?.(operation);
    const {
      rows: [now],
    } = await this.db.query<{ status: string; stripe_transfer_id: string | null; stripe_reversal_id: string | null }>({
      name: 'seller-transfers-row-now',
      text: sql('row_now'),
      values: [row.id],
    });
    this.log.error(
      { ...what, operation, statusNow: now?.status ?? 'missing' },
      `the database did not record the worker's outcome: seller transfer ${row.id} moved from ${row.status} meanwhile`,
    );
    if (now) {
      const held = await this.db.query<{ result: string | null }>({
        name: 'seller-transfers-hold-not-recorded',
        text: sql('hold_not_recorded'),
        values: [
          row.id,
          now.status,
          `outcome not recorded (${operation}: ${JSON.stringify(what)}): the row moved from ${row.status} to ${now.status} meanwhile; held for review`,
          'worker: outcome not recorded; held for review',
        ],
      });
      if (held.rows[0]?.result)
        this.log.error({ heldIn: held.rows[0].result }, 'held for review: see docs/runbook.md#transfersheldforreview');
    }
    return 'not_recorded';
  }

  private async markPaid(stripeTransferId: string, reason: string, outcome: 'completed' | 'adopted'): Promise<TaskOutcome> {
    const r = await this.record<{ result: boolean }>('mark-paid', sql('record_paid'), [this.row.id, stripeTransferId, reason]);
    if (!r?.result) return this.notRecorded('mark-paid', { stripeTransferId });
    this.deps.onTransition?.(this.row.status, 'completed');
    this.log.info({ stripeTransferId }, reason);
    return outcome;
  }

  private async markReversed(
    stripeReversalId: string,
    amount: number,
    reason: string,
    outcome: 'reversed' | 'adopted',
  ): Promise<TaskOutcome> {
    const r = await this.record<{ result: boolean }>('mark-reversed', sql('record_reversed'), [
      this.row.id,
      stripeReversalId,
      amount,
      reason,
    ]);
    if (!r?.result) return this.notRecorded('mark-reversed', { stripeReversalId, amount });
    this.deps.onTransition?.(this.row.status, 'reversed');
    this.log.info({ stripeReversalId, amount }, reason);
    return outcome;
  }

  private async fail(failure: ClassifiedFailure): Promise<TaskOutcome> {
    const { row } = this;
    const delay = retryDelaySeconds(this.deps.policy, row.retry_count + 1, failure.kind);
    const retryAt = delay === null ? null : new Date(Date.now() + delay * 1000);
    const reason = `worker: ${failure.kind}: ${failure.message}`.slice(0, 500);
    const r = await this.record<{ result: string | null }>('record-failure', sql('record_failure'), [
      row.id,
      row.status,
      failure.message,
      retryAt,
      reason,
      needsNewKey(failure.kind),
      failure.kind === 'unanswered',
    ]);
    const newStatus = r?.result ?? null;
    if (!newStatus) return this.notRecorded('record-failure', { failure: failure.kind, error: failure.message });
    this.deps.onTransition?.(row.status, newStatus);
    const level = retryAt ? 'warn' : 'error';
    this.log[level]({ failure: failure.kind, error: failure.message, nextRetryAt: retryAt, newStatus }, 'Stripe call failed');
    if (!retryAt) return 'permanently_failed';
    return row.status === 'pending' ? 'failed' : 'rescheduled';
  }
}
