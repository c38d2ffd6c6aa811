// Amounts are stored in the currency's minor unit, as Stripe counts them. Stripe's zero-decimal
// currencies (the minor unit is the unit) and three-decimal ones come from Stripe's currency
// docs, not from Intl: Intl's digits differ from Stripe's for several (e.g. ISK, UGX, HUF).
const ZERO_DECIMAL = new Set(['bif', 'clp', 'djf', 'gnf', 'jpy', 'kmf', 'krw', 'mga', 'pyg', 'rwf', 'ugx', 'vnd', 'vuv', 'xaf', 'xof', 'xpf']);
const THREE_DECIMAL = new Set(['bhd', 'jod', 'kwd', 'omr', 'tnd']);

export function currencyDigits(currency: string): number {
  const c = currency.toLowerCase();
  return ZERO_DECIMAL.has(c) ? 0 : THREE_DECIMAL.has(c) ? 3 : 2;
}

/** 123456 usd -> "1,234.56 USD"; 1200 jpy -> "1,200 JPY". Exact for any bigint (no floats). */
export function formatMinor(minor: number | string | bigint, currency: string): string {
  const digits = currencyDigits(currency);
  const v = BigInt(minor);
  const abs = (v < 0n ? -v : v).toString().padStart(digits + 1, '0');
  const whole = abs.slice(0, abs.length - digits).replace(/\B(?=(\d{3})+(?!\d))/g, ',');
  const frac = digits ? `.${abs.slice(abs.length - digits)}` : '';
  return `${v < 0n ? '-' : ''}${whole}${frac} ${currency.toUpperCase()}`;
}

/**
 * An amount as a person types it in the currency's unit ("12.5", "1,200") to minor units, or
 * null when it is not a plain amount with at most the currency's decimals. Whether it fits the
 * transfer is the database's call.
 */
export function parseMajor(text: string, currency: string): string | null {
  const digits = currencyDigits(currency);
  const t = text.trim().replace(/[,_ ]/g, '');
  const m = /^(\d{1,18})(?:\.(\d*))?$/.exec(t);
  if (!m || (m[2] ?? '').length > digits) return null;
  return (BigInt(m[1]!) * 10n ** BigInt(digits) + BigInt((m[2] ?? '').padEnd(digits, '0') || '0')).toString();
}
