// The list's query string as a person (or a bookmark) gives it: each filter checked, the first
// mistake reported in one sentence. The keyset cursor is opaque to people: the last row's sort
// key and id, base64url JSON.
import { decodeCursor, encodeCursor } from '../core/cursor.ts';
import { UUID } from '../db/connection.ts';
import { parseMajor } from '../money.ts';

export const PAGE_SIZE = 50;

/** The list of every status (status=all). */
export const ALL = 'all';

export interface ListQuery {
  /** A status, or ALL. */
  status: string;
  order: 'newest' | 'overdue';
  seller: string | null;
  orderId: string | null;
  account: string | null;
  stripeId: string | null;
  currency: string | null;
  /** In the currency's unit as given ("12.50"), until minorAmounts() reads them. */
  min: string | null;
  max: string | null;
  createdFrom: Date | null;
  createdTo: Date | null;
  updatedFrom: Date | null;
  updatedTo: Date | null;
  after: { at: string; id: string } | null;
}

export class BadFilter extends Error {}

/** No filter (nor the cursor) is longer than this: a longer value is a mistake, said so, not a query. */
const MAX_FILTER_LENGTH = 200;

function text(q: Record<string, unknown>, key: string): string | null {
  const v = q[key];
  if (typeof v !== 'string' || v.trim() === '') return null;
  if (v.length > MAX_FILTER_LENGTH) throw new BadFilter(`${key}: at most ${MAX_FILTER_LENGTH} characters, got ${v.length}`);
  return v.trim();
}

function match(q: Record<string, unknown>, key: string, re: RegExp, what: string): string | null {
  const v = text(q, key);
  if (v !== null && !re.test(v)) throw new BadFilter(`${key}: expected ${what}, got "${v.slice(0, 60)}"`);
  return v;
}

function date(q: Record<string, unknown>, key: string): Date | null {
  const v = text(q, key);
  if (v === null) return null;
  const d = new Date(v);
  if (!/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(v) || Number.isNaN(d.getTime())) {
    throw new BadFilter(`${key}: expected a date such as 2025-01-31 or 2025-01-31T12:00Z, got "${v.slice(0, 60)}"`);
  }
  return d;
}

export { encodeCursor };

function cursor(q: Record<string, unknown>): ListQuery['after'] {
  const v = text(q, 'after');
  if (v === null) return null;
  const c = decodeCursor(v);
  if (!c) throw new BadFilter('after: not a page cursor from this console (start again from the first page)');
  return c;
}

export function parseListQuery(q: Record<string, unknown>, statuses: string[]): ListQuery {
  const status = text(q, 'status') ?? statuses[0]!;
  if (status !== ALL && !statuses.includes(status))
    throw new BadFilter(`status: expected ${ALL} or one of ${statuses.join(', ')}, got "${status.slice(0, 40)}"`);
  const order = text(q, 'order') ?? 'newest';
  if (order !== 'newest' && order !== 'overdue') throw new BadFilter(`order: expected newest or overdue, got "${order.slice(0, 20)}"`);
  // Amounts as a person writes them in the currency's unit ("12.50"); minorAmounts() turns them
  // into minor units with the currency's exponent, so an amount filter needs the currency.
  const amount = /^\d{1,18}([.,]\d{0,4})?$/;
  const currency = match(q, 'currency', /^[A-Za-z]{3}$/, 'a currency code (usd, jpy, …)')?.toLowerCase() ?? null;
  const min = match(q, 'min', amount, 'an amount in the currency, e.g. 12.50');
  const max = match(q, 'max', amount, 'an amount in the currency, e.g. 12.50');
  if ((min !== null || max !== null) && currency === null)
    throw new BadFilter("amount: choose a currency too (an amount is in the currency's unit: 12.50 USD, 1,200 JPY)");
  return {
    status,
    order,
    seller: match(q, 'seller', UUID, 'a seller id (UUID)'),
    orderId: match(q, 'order_id', UUID, 'an order id (UUID)'),
    account: match(q, 'account', /^acct_[A-Za-z0-9]+$/, 'a Stripe account id (acct_…)'),
    stripeId: match(q, 'stripe_id', /^trr?_[A-Za-z0-9]+$/, 'a Stripe transfer or reversal id (tr_… or trr_…)'),
    currency,
    min,
    max,
    createdFrom: date(q, 'created_from'),
    createdTo: date(q, 'created_to'),
    updatedFrom: date(q, 'updated_from'),
    updatedTo: date(q, 'updated_to'),
    after: cursor(q),
  };
}

/**
 * The list with its amount filters in minor units, read with the currency's exponent (from
 * marketplace.currencies, by the caller): the same reading as `reverse --amount`.
 */
export function minorAmounts(l: ListQuery, exponent: number | null | undefined): ListQuery {
  const read = (key: 'min' | 'max') => {
    const v = l[key];
    if (v === null || l.currency === null) return v;
    const r = parseMajor(v, l.currency, exponent);
    if ('error' in r) throw new BadFilter(`${key}: ${r.error}`);
    return r.minor;
  };
  return { ...l, min: read('min'), max: read('max') };
}

/**
 * The parameters of list_newest / list_overdue / list_all ($1..$15); $14 the rows to read: by
 * default one more than a page, to know if another follows.
 */
export function listParams(l: ListQuery, after: ListQuery['after'] = l.after, rows = PAGE_SIZE + 1): unknown[] {
  return [
    l.status,
    after?.at ?? null,
    after?.id ?? null,
    l.seller,
    l.orderId,
    l.account,
    l.min,
    l.max,
    l.createdFrom,
    l.createdTo,
    l.updatedFrom,
    l.updatedTo,
    l.stripeId,
    rows,
    l.currency,
  ];
}
