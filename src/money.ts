// Amounts are stored in the currency's minor unit, as Stripe counts them. How many decimals a
// currency has (its exponent) is data in marketplace.currencies, read with the row
// (`currency_exponent` in the queries): nothing here knows a currency. The console and the CLI
// both format and parse through these two functions.

/** An exponent the database gave for a row's currency; null: the currency is not in marketplace.currencies. */
export type Exponent = number | string | null | undefined;

/** 123456 (2) -> "1234.56"; 1200 (0) -> "1200"; 5 (3) -> "0.005": the amount in the currency's unit, for machines (CSV, JSON). Exact for any bigint. */
export function majorUnits(minor: number | string | bigint, exponent: number | string): string {
  const digits = Number(exponent);
  const v = BigInt(minor);
  const abs = (v < 0n ? -v : v).toString().padStart(digits + 1, '0');
  const frac = digits ? `.${abs.slice(abs.length - digits)}` : '';
  return `${v < 0n ? '-' : ''}${abs.slice(0, abs.length - digits)}${frac}`;
}

/** 123456 usd (2) -> "1,234.56 USD"; 1200 jpy (0) -> "1,200 JPY"; 1250 kwd (3) -> "1.250 KWD". Exact for any bigint. */
export function formatMinor(minor: number | string | bigint, currency: string, exponent: Exponent): string {
  if (exponent === null || exponent === undefined)
    return `${BigInt(minor)} ${currency.toUpperCase()} (minor units; currency not in marketplace.currencies)`;
  const [whole, frac] = majorUnits(minor, exponent).split('.');
  return `${whole!.replace(/\B(?=(\d{3})+(?!\d))/g, ',')}${frac === undefined ? '' : `.${frac}`} ${currency.toUpperCase()}`;
}

/**
 * An amount as a person writes it in the currency's unit ("12.5", "1,200") to minor units, or
 * the one line that says why it is not one ("JPY has no decimals"). Whether it fits the
 * transfer is the database's call.
 */
export function parseMajor(text: string, currency: string, exponent: Exponent): { minor: string } | { error: string } {
  const code = currency.toUpperCase();
  if (exponent === null || exponent === undefined)
    return { error: `${code} is not in marketplace.currencies, so an amount in it cannot be read` };
  const digits = Number(exponent);
  const t = text.trim().replace(/[,_ ]/g, '');
  const m = /^(\d{1,18})(?:\.(\d*))?$/.exec(t);
  if (!m)
    return {
      error: `"${text.slice(0, 40)}" is not an amount in ${code} (write it as a person would, e.g. ${digits ? `12.${'5'.padEnd(digits, '0')}` : '1200'})`,
    };
  const fraction = (m[2] ?? '').replace(/0+$/, '');
  if (fraction.length > digits) {
    return {
      error:
        digits === 0
          ? `"${text.slice(0, 40)}": ${code} has no decimals (Stripe counts it in whole units)`
          : `"${text.slice(0, 40)}": ${code} has ${digits} decimals at most`,
    };
  }
  return { minor: (BigInt(m[1]!) * 10n ** BigInt(digits) + BigInt(fraction.padEnd(digits, '0') || '0')).toString() };
}
