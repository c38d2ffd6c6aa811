// Transfers as machines read them, for `seller-transfers list --format json|csv` and the
// console's export alike: one set of columns, amounts in the currency's unit (the exponent from
// marketplace.currencies, src/money.ts), CSV per RFC 4180 with spreadsheet formulas defused.
import { majorUnits } from '../money.ts';
import type { TransferListRow } from './read-model.ts';

/** The amount in the currency's unit for machines; null when marketplace.currencies does not know the currency. */
function amount(minor: number | string | null, exponent: number | null): string | null {
  return minor === null || exponent === null ? null : majorUnits(minor, exponent);
}

/** One transfer as a JSON object (the `transfers` of `list --format json` and of the console's JSON export). */
export function transferJson(r: TransferListRow) {
  return {
    id: r.id,
    status: r.status,
    amount: amount(r.amount_cents, r.currency_exponent),
    currency: r.currency,
    amount_minor: r.amount_cents,
    reversal_amount: amount(r.reversal_amount_cents, r.currency_exponent),
    reversal_amount_minor: r.reversal_amount_cents,
    seller_id: r.seller_id,
    order_id: r.order_id,
    stripe_account_id: r.stripe_account_id,
    stripe_transfer_id: r.stripe_transfer_id,
    stripe_reversal_id: r.stripe_reversal_id,
    retry_count: r.retry_count,
    next_retry_at: r.next_retry_at,
    last_error: r.last_error,
    created_at: r.created_at,
    updated_at: r.updated_at,
  };
}

/**
 * One CSV field (RFC 4180: quoted when it holds a comma, a quote or a line break). Text that a
 * spreadsheet would run as a formula (=, +, -, @, tab, carriage return first) is prefixed with
 * a quote mark: an error text from Stripe must not become a formula in finance's spreadsheet.
 */
export function csvField(value: unknown, { text = true } = {}): string {
  if (value === null || value === undefined) return '';
  let s = value instanceof Date ? value.toISOString() : String(value);
  if (text && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export const CSV_COLUMNS = [
  'id',
  'status',
  'amount',
  'currency',
  'reversal_amount',
  'seller_id',
  'order_id',
  'stripe_account_id',
  'stripe_transfer_id',
  'stripe_reversal_id',
  'retry_count',
  'next_retry_at',
  'last_error',
  'created_at',
  'updated_at',
] as const;
const CSV_NUMBERS = new Set<string>(['amount', 'reversal_amount', 'retry_count']);

/** The CSV header line (no line break). */
export const CSV_HEADER = CSV_COLUMNS.join(',');

/** One transfer as a CSV line (no line break). */
export function csvLine(r: TransferListRow): string {
  const j = transferJson(r) as Record<string, unknown>;
  return CSV_COLUMNS.map((c) => csvField(j[c], { text: !CSV_NUMBERS.has(c) })).join(',');
}

/** Header and rows, lines separated by CRLF (RFC 4180), no final line break. */
export function csv(rows: TransferListRow[]): string {
  return [CSV_HEADER, ...rows.map(csvLine)].join('\r\n');
}
