// The simulated Connect world: transfers, reversals, connected-account balances and the
// ledger of real money effects. Endpoint methods validate like Stripe and throw ApiError;
// they only touch state after every check passed, so a failed call never leaves half an effect.
import { PlatformFunds } from './funding.ts';
import type { LedgerEntry, SimReversal, SimTransfer } from './types.ts';
import { int, invalid, metadata, missing, newId, rejectUnknown, str, type Params } from './wire.ts';

export interface List<T> {
  object: 'list';
  data: T[];
  has_more: boolean;
  url: string;
}

const now = () => Math.floor(Date.now() / 1000);

export class SimState {
  private byId = new Map<string, SimTransfer>(); // insertion order = creation order
  private balances = new Map<string, number>();
  private removed = new Set<string>();
  readonly ledger: LedgerEntry[] = [];
  /** The platform's balance and charges (src/stripe-sim/funding.ts). */
  readonly platform = new PlatformFunds();

  constructor(private readonly defaultBalance: number) {}

  balance(account: string, currency: string): number {
    return this.balances.get(`${account}:${currency.toLowerCase()}`) ?? this.defaultBalance;
  }
  setBalance(account: string, currency: string, cents: number): void {
    this.balances.set(`${account}:${currency.toLowerCase()}`, cents);
  }
  removeAccount(account: string): void {
    this.removed.add(account);
  }
  transfers(): SimTransfer[] {
    return structuredClone([...this.byId.values()]);
  }

  createTransfer(p: Params, idempotencyKey: string | null): SimTransfer {
    rejectUnknown(p, ['amount', 'currency', 'destination', 'transfer_group', 'metadata', 'description', 'source_transaction', 'expand']);
    const amount = int(p, 'amount', { required: true, min: 1 })!;
    const currency = str(p, 'currency', true)!.toLowerCase();
    if (!/^[a-z]{3}$/.test(currency)) throw invalid(`Invalid currency: ${currency}.`, 'currency', 'invalid_currency');
    const destination = str(p, 'destination', true)!;
    // Stripe reports unknown and deleted accounts alike; that is a permanent failure for the worker.
    if (!destination.startsWith('acct_') || this.removed.has(destination)) {
      throw invalid(`No such destination: '${destination}'`, 'destination', 'resource_missing');
    }
    const sourceTransaction = str(p, 'source_transaction');
    const takeFunds = this.platform.fund(amount, currency, sourceTransaction);
    const t: SimTransfer = {
      id: newId('tr_'),
      object: 'transfer',
      amount,
      amount_reversed: 0,
      currency,
      destination,
      transfer_group: str(p, 'transfer_group'),
      metadata: metadata(p),
      reversed: false,
      created: now(),
      livemode: false,
      description: str(p, 'description'),
      source_transaction: sourceTransaction,
      reversals: { object: 'list', data: [], has_more: false, total_count: 0, url: '' },
    };
    t.reversals.url = `/v1/transfers/${t.id}/reversals`;
    takeFunds();
    this.byId.set(t.id, t);
    this.setBalance(destination, currency, this.balance(destination, currency) + amount);
    this.record('transfer', t.id, t, amount, t.metadata, idempotencyKey);
    return structuredClone(t);
  }

  retrieveTransfer(id: string): SimTransfer {
    return structuredClone(this.get(id));
  }

  listTransfers(q: Params): List<SimTransfer> {
    rejectUnknown(q, ['limit', 'starting_after', 'transfer_group', 'destination', 'expand']);
    const group = str(q, 'transfer_group');
    const dest = str(q, 'destination');
    const all = [...this.byId.values()]
      .reverse() // newest first, as Stripe lists
      .filter((t) => (group === null || t.transfer_group === group) && (dest === null || t.destination === dest));
    return paginate(all, q, '/v1/transfers');
  }

  createReversal(id: string, p: Params, idempotencyKey: string | null): SimReversal {
    rejectUnknown(p, ['amount', 'metadata', 'description', 'refund_application_fee', 'expand']);
    const t = this.get(id);
    const remaining = t.amount - t.amount_reversed;
    if (remaining === 0) throw invalid(`Transfer ${t.id} is already fully reversed.`, 'amount');
    const amount = int(p, 'amount', { min: 1 }) ?? remaining;
    if (amount > remaining) {
      throw invalid(`Amount (${amount}) is greater than unreversed amount on transfer (${remaining})`, 'amount', 'amount_too_large');
    }
    // Reversals pull money back out of the connected account, so its balance must cover them.
    if (this.balance(t.destination, t.currency) < amount) {
      throw invalid('Insufficient funds in the connected account to reverse this transfer.', undefined, 'balance_insufficient');
    }
    const r: SimReversal = {
      id: newId('trr_'),
      object: 'transfer_reversal',
      amount,
      currency: t.currency,
      transfer: t.id,
      metadata: metadata(p),
      created: now(),
      destination_payment_refund: null,
      source_refund: null,
    };
    this.setBalance(t.destination, t.currency, this.balance(t.destination, t.currency) - amount);
    t.amount_reversed += amount;
    t.reversed = t.amount_reversed === t.amount;
    t.reversals.data.unshift(r);
    t.reversals.total_count += 1;
    this.record('reversal', r.id, t, amount, r.metadata, idempotencyKey);
    return structuredClone(r);
  }

  listReversals(id: string, q: Params): List<SimReversal> {
    rejectUnknown(q, ['limit', 'starting_after', 'expand']);
    const t = this.get(id);
    return paginate(t.reversals.data, q, t.reversals.url);
  }

  private get(id: string): SimTransfer {
    const t = this.byId.get(id);
    if (!t) throw missing(`No such transfer: '${id}'`, 'id');
    return t;
  }

  private record(
    type: LedgerEntry['type'],
    id: string,
    t: SimTransfer,
    amount: number,
    meta: Record<string, string>,
    key: string | null,
  ): void {
    this.ledger.push({
      seq: this.ledger.length + 1,
      type,
      id,
      transfer: t.id,
      amount,
      currency: t.currency,
      destination: t.destination,
      transferGroup: t.transfer_group,
      metadata: { ...meta },
      idempotencyKey: key,
      at: new Date().toISOString(),
    });
  }
}

/** Stripe cursor pagination over a newest-first array: limit (1..100, default 10) and starting_after. */
function paginate<T extends { id: string }>(items: T[], q: Params, url: string): List<T> {
  const limit = int(q, 'limit', { min: 1, max: 100 }) ?? 10;
  const after = str(q, 'starting_after');
  let start = 0;
  if (after !== null) {
    const i = items.findIndex((x) => x.id === after);
    if (i < 0) throw invalid(`No such object: '${after}'`, 'starting_after', 'resource_missing');
    start = i + 1;
  }
  const page = items.slice(start, start + limit);
  return { object: 'list', data: structuredClone(page), has_more: start + limit < items.length, url };
}
