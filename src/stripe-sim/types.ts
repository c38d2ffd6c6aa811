// Public types of the Stripe simulator. Other code (worker tests, benches) imports
// these through index.ts, so keep the names and shapes stable.
import type { PlatformBalance, SimCharge } from './funding.ts';
import type { RateLimitedReason, SimLatency, SimLimits, SimStats } from './limits.ts';

export type Operation =
  | 'transfer.create'
  | 'transfer.retrieve'
  | 'transfer.list'
  | 'reversal.create'
  | 'reversal.list'
  | 'charge.create'
  | 'charge.retrieve'
  | 'balance.retrieve';
export type FaultKind = 'latency' | 'rate_limit' | 'error_before' | 'error_after' | 'drop_after';

export interface FaultSpec {
  operation: Operation | 'any';
  kind: FaultKind;
  times?: number /* default 1 */;
  latencyMs?: number;
}
export interface RandomFaults {
  rate: number;
  kinds: FaultKind[];
  operations?: Operation[];
  latencyMs?: number;
  seed?: number;
}

export interface StripeSimulatorOptions {
  port?: number; // 0 = random
  host?: string; // default 127.0.0.1
  defaultBalanceCents?: number; // starting available balance of any connected account, default 0
  idempotencyTtlMs?: number; // default 24h
  limits?: Partial<SimLimits>; // Stripe's limiters; default unlimited (null)
  latency?: Partial<SimLatency>; // default none
}

/** One real money movement. Replays, faults that fire before the effect, and errors never appear here. */
export interface LedgerEntry {
  seq: number;
  type: 'transfer' | 'reversal';
  id: string; // tr_… or trr_…
  transfer: string; // tr_ id (own id for transfers)
  amount: number; // always positive; `type` says which way the money went
  currency: string;
  destination: string;
  transferGroup: string | null;
  metadata: Record<string, string>;
  idempotencyKey: string | null;
  at: string; // ISO timestamp
}

/** Every /v1 request received, in arrival order. */
export interface CallRecord {
  seq: number;
  method: string;
  path: string;
  operation: Operation | null; // null for unknown routes
  endpoint: string | null; // Stripe's limiter key, e.g. 'POST /v1/transfers/{id}/reversals'; null for unknown routes
  idempotencyKey: string | null;
  outcome: string; // 'ok' | 'replayed' | 'fault:<kind>' | 'error:<code>' | 'rate_limited:<reason>'
  status: number | null; // null when the response was dropped (drop_after)
  fault: FaultKind | null; // fault drawn for this request, even one that did not change the response (latency)
  rateLimitedReason: RateLimitedReason | null; // set when a limiter answered 429 (not for injected rate_limit faults)
  at: string;
}

export interface SimReversal {
  id: string;
  object: 'transfer_reversal';
  amount: number;
  currency: string;
  transfer: string;
  metadata: Record<string, string>;
  created: number;
  destination_payment_refund: null;
  source_refund: null;
}

export interface SimTransfer {
  id: string;
  object: 'transfer';
  amount: number;
  amount_reversed: number;
  currency: string;
  destination: string;
  transfer_group: string | null;
  metadata: Record<string, string>;
  reversed: boolean;
  created: number;
  livemode: false;
  description: string | null;
  source_transaction: string | null;
  reversals: { object: 'list'; data: SimReversal[]; has_more: false; total_count: number; url: string };
}

export interface StripeSimulator {
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
  setBalance(account: string, currency: string, cents: number): void;
  balance(account: string, currency: string): number;
  removeAccount(account: string): void;
  /** The platform's available balance in a currency (null: never set, unlimited) and its pending charge funds. */
  platformBalance(currency: string): PlatformBalance;
  /** Sets the platform's available balance in a currency (turns the funding model on for it). */
  setPlatformBalance(currency: string, amount: number): void;
  /** A succeeded charge on the platform whose funds become available `availableInSeconds` from now (default 2 days). */
  makeCharge(c: { amount: number; currency: string; availableInSeconds?: number; transferGroup?: string | null }): SimCharge;
  injectFault(f: FaultSpec): void;
  setRandomFaults(r: RandomFaults | null): void;
  clearFaults(): void;
  expireIdempotencyKeys(): void;
  ledger(): LedgerEntry[];
  calls(): CallRecord[];
  transfers(): SimTransfer[];
  /** Clears state, faults, log and stats, and puts limits and latency back to the start options. */
  reset(): void;
  limits(): SimLimits;
  setLimits(l: Partial<SimLimits>): SimLimits;
  latency(): SimLatency;
  setLatency(l: Partial<SimLatency>): SimLatency;
  stats(): SimStats;
  resetStats(): void;
}
