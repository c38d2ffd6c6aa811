// The platform's side of "separate charges and transfers": its balance (available and pending
// funds per currency) and the charges that fund it. What Stripe documents, and this models:
//
// - "By default, a transfer request fails when the amount exceeds the platform's available
//   account balance. If the transfer has a source_transaction defined, the transfer request
//   automatically succeeds but the transfer itself doesn't occur until the funds from the
//   source_transaction become available." (docs.stripe.com/connect/separate-charges-and-transfers)
// - A charge's funds are pending until its balance transaction's `available_on`, then available
//   (docs.stripe.com/api/balance: "available" funds can be transferred, "pending" are not yet).
// - source_transaction names a charge (`ch_…`; Stripe answers that a PaymentIntent id is not
//   one); the transfers funded from one charge cannot exceed its amount, and the transfer is in
//   the charge's currency.
//
// Not modelled: fees (a charge here funds its whole amount), refunds and disputes of charges,
// payouts of the platform's balance (Stripe: automatic payouts can empty the balance under
// transfers that have no source_transaction; a test sets the balance instead), the connected
// account's pending funds (a transfer credits the destination's available balance at once, as
// before), and the exact wording of Stripe's messages (paraphrased, marked "simulated").
//
// A currency whose platform balance was never set is unlimited (a platform with a float), so
// tests that do not care about funding need no setup; setting it (control endpoint) or making a
// charge in it turns the model on for that currency.
import { int, invalid, metadata, missing, newId, rejectUnknown, str, type Params } from './wire.ts';

export interface SimCharge {
  id: string;
  object: 'charge';
  amount: number;
  amount_captured: number;
  currency: string;
  paid: true;
  captured: true;
  status: 'succeeded';
  transfer_group: string | null;
  metadata: Record<string, string>;
  description: string | null;
  created: number;
  livemode: false;
  /** Sim-only fields (Stripe keeps them on the balance transaction): when the funds become available, and how much transfers took. */
  available_on: number;
  amount_transferred: number;
}

export interface PlatformBalance {
  currency: string;
  available: number | null;
  pending: number;
}

const now = () => Math.floor(Date.now() / 1000);
/** Seconds until a charge made through POST /v1/charges is available: Stripe's usual 2 days in the US. */
export const DEFAULT_CHARGE_AVAILABLE_AFTER_SECONDS = 2 * 24 * 3600;

export class PlatformFunds {
  private charges = new Map<string, SimCharge>();
  /** Per currency: funds available other than from charges (set by a test), minus what unsourced transfers spent. */
  private own = new Map<string, number>();

  setAvailable(currency: string, amount: number): void {
    const c = currency.toLowerCase();
    // "available" = own + available charge funds not transferred: set own so the sum is `amount`.
    this.own.set(c, amount - this.availableFromCharges(c));
  }

  balance(currency: string): PlatformBalance {
    const c = currency.toLowerCase();
    return { currency: c, available: this.available(c), pending: this.pendingFromCharges(c) };
  }

  /** A charge whose funds are pending until `availableInSeconds` from now (0: available at once). */
  makeCharge(p: {
    amount: number;
    currency: string;
    availableInSeconds?: number;
    transferGroup?: string | null;
    metadata?: Record<string, string>;
    description?: string | null;
  }): SimCharge {
    const currency = p.currency.toLowerCase();
    if (!this.own.has(currency)) this.own.set(currency, 0); // the model is on for this currency from now
    const created = now();
    const ch: SimCharge = {
      id: newId('ch_'),
      object: 'charge',
      amount: p.amount,
      amount_captured: p.amount,
      currency,
      paid: true,
      captured: true,
      status: 'succeeded',
      transfer_group: p.transferGroup ?? null,
      metadata: p.metadata ?? {},
      description: p.description ?? null,
      created,
      livemode: false,
      available_on: created + (p.availableInSeconds ?? DEFAULT_CHARGE_AVAILABLE_AFTER_SECONDS),
      amount_transferred: 0,
    };
    this.charges.set(ch.id, ch);
    return structuredClone(ch);
  }

  /** POST /v1/charges, minimal: amount, currency, source (any test token), transfer_group, metadata, description. */
  createCharge(p: Params): SimCharge {
    rejectUnknown(p, ['amount', 'currency', 'source', 'customer', 'transfer_group', 'metadata', 'description', 'expand']);
    const amount = int(p, 'amount', { required: true, min: 1 })!;
    const currency = str(p, 'currency', true)!.toLowerCase();
    if (!/^[a-z]{3}$/.test(currency)) throw invalid(`Invalid currency: ${currency}.`, 'currency', 'invalid_currency');
    return this.makeCharge({
      amount,
      currency,
      transferGroup: str(p, 'transfer_group'),
      metadata: metadata(p),
      description: str(p, 'description'),
    });
  }

  retrieveCharge(id: string): SimCharge {
    const ch = this.charges.get(id);
    if (!ch) throw missing(`No such charge: '${id}'`, 'id');
    return structuredClone(ch);
  }

  /**
   * Checks that a transfer of `amount` `currency` can be funded, and returns the commit that
   * takes the funds (called only once every other check of the transfer passed).
   */
  fund(amount: number, currency: string, sourceTransaction: string | null): () => void {
    if (sourceTransaction !== null) return this.fundFromCharge(amount, currency, sourceTransaction);
    const available = this.available(currency);
    if (available === null) return () => {};
    if (amount > available) {
      // Stripe's own text points at automatic payouts emptying the balance; paraphrased.
      throw invalid(
        'You have insufficient available funds in your Stripe account to make this transfer (simulated). ' +
          'Transfers without a source_transaction are paid from the available balance; automatic payouts may have emptied it.',
        undefined,
        'balance_insufficient',
      );
    }
    return () => this.spendAvailable(currency, amount);
  }

  /** Takes `amount` from the available balance: the platform's own funds first, then available charge funds, oldest first. */
  private spendAvailable(currency: string, amount: number): void {
    const own = this.own.get(currency)!;
    let left = amount - Math.max(0, Math.min(own, amount));
    this.own.set(currency, own - (amount - left));
    const t = now();
    for (const ch of this.charges.values()) {
      if (left === 0) break;
      if (ch.currency !== currency || ch.available_on > t) continue;
      const take = Math.min(left, ch.amount - ch.amount_transferred);
      ch.amount_transferred += take; // a source_transaction transfer cannot spend these funds again
      left -= take;
    }
  }

  private fundFromCharge(amount: number, currency: string, id: string): () => void {
    const ch = this.charges.get(id);
    // A PaymentIntent id (pi_…) is not a charge either: Stripe wants the charge it made.
    if (!ch) throw invalid(`No such charge: '${id}'`, 'source_transaction', 'resource_missing');
    if (ch.currency !== currency) {
      throw invalid(
        `The currency of the transfer (${currency}) must match the currency of the source_transaction ${id} (${ch.currency}) (simulated).`,
        'currency',
      );
    }
    const left = ch.amount - ch.amount_transferred;
    if (amount > left) {
      throw invalid(
        `The transfer amount (${amount}) exceeds what is left to transfer from source_transaction ${id} (${left} of ${ch.amount} ${ch.currency}) (simulated).`,
        'amount',
      );
    }
    // Pending or available, the charge funds it: the request succeeds at once (see the top).
    return () => {
      ch.amount_transferred += amount;
    };
  }

  private available(currency: string): number | null {
    const own = this.own.get(currency);
    return own === undefined ? null : own + this.availableFromCharges(currency);
  }

  private availableFromCharges(currency: string): number {
    let sum = 0;
    const t = now();
    for (const ch of this.charges.values()) if (ch.currency === currency && ch.available_on <= t) sum += ch.amount - ch.amount_transferred;
    return sum;
  }

  private pendingFromCharges(currency: string): number {
    let sum = 0;
    const t = now();
    for (const ch of this.charges.values()) if (ch.currency === currency && ch.available_on > t) sum += ch.amount - ch.amount_transferred;
    return sum;
  }

  /** GET /v1/balance: the platform's balance in Stripe's shape (currencies the model knows). */
  balanceObject(): unknown {
    const currencies = [...this.own.keys()].sort();
    return {
      object: 'balance',
      livemode: false,
      available: currencies.map((c) => ({ amount: this.available(c)!, currency: c, source_types: { card: this.available(c)! } })),
      pending: currencies.map((c) => ({
        amount: this.pendingFromCharges(c),
        currency: c,
        source_types: { card: this.pendingFromCharges(c) },
      })),
    };
  }
}
