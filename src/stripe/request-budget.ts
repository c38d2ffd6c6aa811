// The fleet's Stripe request budget, this process's side. What the budget is, its rates and how
// it reacts to 429s: docs/operating.md#stripe-request-budget. The shared schedule is SQL
// (marketplace.reserve_stripe_request_slots, marketplace.report_stripe_rate_limited in
// migrations/schema.sql); this file decides when to reserve and releases each request at its slot.
//
// Every Stripe call first awaits acquire(endpoint). A process keeps one FIFO queue of waiting
// requests (all endpoints together). Its dispatcher takes the oldest waiter's endpoint E and
// reserves, in ONE database round trip (marketplace.reserve_stripe_request_slots), as many
// slots as there are waiters for E right now, capped at what the budget allows in
// `batchHorizonMs`: at low traffic that is one slot (nothing hoarded that another process
// could use), at high traffic one round trip serves a whole batch. Each waiter of the batch is
// released at its slot's time. The next reservation starts only when this process's last
// reserved slot is less than `lookaheadMs` away, so a process holds at most about one batch
// of the fleet's future at a time and processes take turns at the shared schedule.
//
// Clock: slot times are the database's clock; each process turns them into local timers with an
// offset (database clock minus performance.now()) estimated from its reservations like NTP does:
// a round trip bounds the database's "now" to [sent, received], so the midpoint is within half
// the round trip; the estimate kept is the one with the smallest such bound, aged by a drift
// allowance (CLOCK_DRIFT) so it is renewed now and then. Taking each reservation's own midpoint
// instead shifts a batch by half of any wait for the row lock, towards the batch of the process
// that held it: bunched slots at batch edges, which Stripe's sliding window counts as a burst.
//
// Fairness: the head of the queue decides the next batch, and a batch spans at most
// `batchHorizonMs`, so a request of one kind (a reversal) waits behind at most one batch of
// another kind (a burst of transfers) before its own batch is reserved.
//
// Endpoints are Stripe's limiter keys: method + path template ('POST /v1/transfers',
// 'POST /v1/transfers/{id}/reversals', 'GET /v1/transfers', …). All draw from the global
// budget; the two POST endpoints also from their own.
import type pg from 'pg';
import client from 'prom-client';
import Stripe from 'stripe';
import { namedQueries } from '../db/named-queries.ts';

const sql = namedQueries('src/stripe/queries.sql');

export const STRIPE_ENDPOINTS = {
  transferCreate: 'POST /v1/transfers',
  transferList: 'GET /v1/transfers',
  transferRetrieve: 'GET /v1/transfers/{id}',
  reversalCreate: 'POST /v1/transfers/{id}/reversals',
  reversalList: 'GET /v1/transfers/{id}/reversals',
} as const;

export interface RequestBudgetOptions {
  /** The fleet's rate for all Stripe requests (STRIPE_REQUESTS_PER_SECOND). */
  requestsPerSecond: number;
  /** The fleet's rate per rate-limited endpoint (STRIPE_ENDPOINT_REQUESTS_PER_SECOND). */
  endpointPerSecond: number;
  /** Longest span of one batch of slots (default 500 ms): bounds hoarding and head-of-line waits. */
  batchHorizonMs?: number;
  /** Most slots per reservation (default 100). */
  maxBatch?: number;
  /** Reserve the next batch once this process's last reserved slot is this close (default 100 ms). */
  lookaheadMs?: number;
  /** Write the configured rates to the database before the first reservation (default true). */
  configure?: boolean;
  /** Called after every reservation (tests, metrics, logs). */
  onReservation?: (r: Reservation) => void;
}

export interface Reservation {
  endpoint: string;
  slots: number;
  /** Delay of the first slot from the reservation, ms (0 when the budget was idle). */
  firstDelayMs: number;
  spacingMs: number;
  globalPerSecond: number;
  /** null for endpoints without their own budget (lookups). */
  endpointPerSecond: number | null;
}

export interface BudgetState {
  budget: string; // 'global' or an endpoint
  configuredPerSecond: number;
  currentPerSecond: number;
  /** How far into the future slots are already reserved, ms. */
  backlogMs: number;
  rateLimitedAt: Date | null;
  rateLimitedReason: string | null;
  rateLimitedTotal: number;
  reservedTotal: number;
}

/** factor: new rate / old rate (0.95 for a stray 429, 0.5 for repeated ones, 1 within the hold-off). */
export interface RateLimitReport {
  budget: string;
  currentPerSecond: number;
  decreased: boolean;
  factor: number;
}

export interface RequestBudget {
  /** Resolves when a slot for one request to `endpoint` has come. Rejects if the reservation fails or the budget is closed. */
  acquire(endpoint: string, options?: { signal?: AbortSignal }): Promise<void>;
  /** Report a 429 (reason = the Stripe-Rate-Limited-Reason header): lowers the fleet's rate. */
  rateLimited(endpoint: string, reason: string | null | undefined): Promise<RateLimitReport[]>;
  /** The fleet's budgets as stored now (for the metric and operators). */
  read(): Promise<BudgetState[]>;
  /** This process's counters. */
  stats(): { waiting: number; reservations: number; slotsReserved: number };
  /** Rejects every waiter and stops; slots already reserved are simply not used. */
  close(): void;
}

interface Waiter {
  endpoint: string;
  resolve: () => void;
  reject: (e: unknown) => void;
  signal?: AbortSignal;
  onAbort?: () => void;
}

/** The Stripe-Rate-Limited-Reason of a 429 from stripe-node, or null. */
export function rateLimitedReason(err: unknown): string | null {
  if (!(err instanceof Stripe.errors.StripeError) || (err.statusCode !== 429 && !(err instanceof Stripe.errors.StripeRateLimitError)))
    return null;
  const h = err.headers?.['stripe-rate-limited-reason'];
  return typeof h === 'string' && h !== '' ? h : 'unknown';
}

/** Allowance for the drift between performance.now() and the database's clock, ms per ms (500 ppm). */
const CLOCK_DRIFT = 0.0005;

export function createRequestBudget(pool: pg.Pool, options: RequestBudgetOptions): RequestBudget {
  const { requestsPerSecond, endpointPerSecond } = options;
  if (!(requestsPerSecond > 0) || !(endpointPerSecond > 0)) throw new Error('request budget rates must be > 0');
  const horizonMs = options.batchHorizonMs ?? 500;
  const maxBatch = options.maxBatch ?? 100;
  const lookaheadMs = options.lookaheadMs ?? 100;

  const queue: Waiter[] = [];
  const timers = new Set<NodeJS.Timeout>();
  let reserving = false;
  let closed = false;
  let heldUntil = 0; // performance.now() time of this process's last reserved slot
  let wakeAt = Infinity;
  let wake: NodeJS.Timeout | undefined;
  let ratePerSecond = Math.min(requestsPerSecond, endpointPerSecond); // last seen, sizes batches
  const counters = { reservations: 0, slotsReserved: 0 };
  let configured: Promise<unknown> | null = options.configure === false ? Promise.resolve() : null;
  // Database clock (epoch ms) minus performance.now(), from the round trip with the smallest error bound.
  let clock: { offsetMs: number; errorMs: number; at: number } | null = null;

  const later = (ms: number, fn: () => void) => {
    const t = setTimeout(
      () => {
        timers.delete(t);
        fn();
      },
      Math.max(0, ms),
    );
    timers.add(t);
    return t;
  };

  const detach = (w: Waiter) => {
    if (w.onAbort) w.signal?.removeEventListener('abort', w.onAbort);
  };

  function schedulePump(at: number): void {
    if (at >= wakeAt) return;
    if (wake) {
      clearTimeout(wake);
      timers.delete(wake);
    }
    wakeAt = at;
    wake = later(at - performance.now(), () => {
      wake = undefined;
      wakeAt = Infinity;
      void pump();
    });
  }

  async function pump(): Promise<void> {
    if (reserving || closed || queue.length === 0) return;
    const now = performance.now();
    if (heldUntil - now > lookaheadMs) return schedulePump(heldUntil - lookaheadMs);
    reserving = true;
    const endpoint = queue[0]!.endpoint;
    const cap = Math.max(1, Math.min(maxBatch, Math.floor((ratePerSecond * horizonMs) / 1000)));
    const batch: Waiter[] = [];
    for (let i = 0; i < queue.length && batch.length < cap;) {
      if (queue[i]!.endpoint === endpoint) batch.push(...queue.splice(i, 1));
      else i++;
    }
    try {
      configured ??= pool.query(sql('configure_budget'), [requestsPerSecond, endpointPerSecond]);
      await configured;
      const t0 = performance.now();
      const { rows } = await pool.query<{
        first_ms: number;
        reserved_ms: number;
        spacing_ms: number;
        global_per_second: number;
        endpoint_per_second: number | null;
      }>(sql('reserve_slots'), [endpoint, batch.length]);
      const t1 = performance.now();
      const r = rows[0];
      if (!r) throw new Error('no Stripe request budget row (is the stripe request budget migration applied?)');
      // The database's "now" of the reservation lies in [t0, t1]: keep the tightest estimate of the offset.
      const sample = { offsetMs: r.reserved_ms - (t0 + t1) / 2, errorMs: (t1 - t0) / 2, at: t1 };
      if (!clock || sample.errorMs <= clock.errorMs + (t1 - clock.at) * CLOCK_DRIFT) clock = sample;
      const firstDelayMs = Math.max(0, r.first_ms - r.reserved_ms);
      const base = Math.max(t0, r.first_ms - clock.offsetMs);
      ratePerSecond = Math.min(r.global_per_second, r.endpoint_per_second ?? Infinity);
      counters.reservations++;
      counters.slotsReserved += batch.length;
      batch.forEach((w, i) => {
        const at = base + i * r.spacing_ms;
        later(at - performance.now(), () => {
          detach(w);
          w.resolve();
        });
      });
      heldUntil = Math.max(heldUntil, base + (batch.length - 1) * r.spacing_ms);
      options.onReservation?.({
        endpoint,
        slots: batch.length,
        firstDelayMs,
        spacingMs: r.spacing_ms,
        globalPerSecond: r.global_per_second,
        endpointPerSecond: r.endpoint_per_second,
      });
    } catch (e) {
      if (configured && options.configure !== false) configured = null; // try configuring again next time
      for (const w of batch) {
        detach(w);
        w.reject(e);
      }
    } finally {
      reserving = false;
    }
    void pump();
  }

  return {
    acquire(endpoint, opts = {}) {
      if (closed) return Promise.reject(new Error('request budget closed'));
      opts.signal?.throwIfAborted();
      return new Promise<void>((resolve, reject) => {
        const w: Waiter = { endpoint, resolve, reject, signal: opts.signal };
        if (opts.signal) {
          // Aborted while queued: leave the queue. Aborted after its slot was reserved: the slot is forfeited.
          w.onAbort = () => {
            const i = queue.indexOf(w);
            if (i >= 0) queue.splice(i, 1);
            reject(opts.signal!.reason);
          };
          opts.signal.addEventListener('abort', w.onAbort, { once: true });
        }
        queue.push(w);
        void pump();
      });
    },

    async rateLimited(endpoint, reason) {
      const { rows } = await pool.query<{ budget: string; current_per_second: number; decreased: boolean; factor: number }>(
        sql('report_rate_limited'),
        [endpoint, reason ?? null],
      );
      for (const r of rows) ratePerSecond = Math.min(ratePerSecond, r.current_per_second);
      return rows.map((r) => ({ budget: r.budget, currentPerSecond: r.current_per_second, decreased: r.decreased, factor: r.factor }));
    },

    async read() {
      const { rows } = await pool.query<{
        budget: string;
        configured_per_second: number;
        current_per_second: number;
        backlog_ms: number;
        rate_limited_at: Date | null;
        rate_limited_reason: string | null;
        rate_limited_total: string;
        reserved_total: string;
      }>(sql('budget_status'));
      return rows.map((r) => ({
        budget: r.budget,
        configuredPerSecond: r.configured_per_second,
        currentPerSecond: r.current_per_second,
        backlogMs: r.backlog_ms,
        rateLimitedAt: r.rate_limited_at,
        rateLimitedReason: r.rate_limited_reason,
        rateLimitedTotal: Number(r.rate_limited_total),
        reservedTotal: Number(r.reserved_total),
      }));
    },

    stats: () => ({ waiting: queue.length, ...counters }),

    close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const w of queue.splice(0)) {
        detach(w);
        w.reject(new Error('request budget closed'));
      }
    },
  };
}

/**
 * seller_transfers_stripe_budget_requests_per_second{budget, kind="configured"|"current"}: the
 * fleet's budget as stored in the database, read at scrape time.
 */
export function registerRequestBudgetMetrics(registry: client.Registry, budget: RequestBudget): void {
  new client.Gauge({
    name: 'seller_transfers_stripe_budget_requests_per_second',
    help: "The fleet's Stripe request budget per budget (global or endpoint): configured rate and current (adaptive, lowered after 429s) rate.",
    labelNames: ['budget', 'kind'] as const,
    registers: [registry],
    async collect() {
      for (const b of await budget.read()) {
        this.set({ budget: b.budget, kind: 'configured' }, b.configuredPerSecond);
        this.set({ budget: b.budget, kind: 'current' }, b.currentPerSecond);
      }
    },
  });
}
