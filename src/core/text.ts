// Text formatting both front ends use for values from the database: timestamps, durations, one
// line of free text. Plain strings, no colours: the same on a terminal, in a pipe, in a page.

/**
 * A time from the database in ISO form. PostgreSQL's infinite times (node-postgres reads them
 * as ±Infinity) and anything else a Date cannot hold are shown as what they are, never thrown
 * on: one odd row must not stop a page or a command from showing the others.
 */
export function timestamp(value: Date | string | number | null | undefined): string {
  if (value === null || value === undefined) return '-';
  if (value === Infinity || value === -Infinity) return value > 0 ? 'infinity' : '-infinity';
  const d = value instanceof Date ? value : new Date(value);
  return Number.isNaN(d.getTime()) ? String(value) : d.toISOString();
}

/** 93784 -> "1d 2h", 3725 -> "1h 2m", 125 -> "2m 5s", 7 -> "7s". */
export function duration(seconds: number | string | null | undefined): string {
  if (seconds === null || seconds === undefined) return '-';
  let s = Math.max(0, Math.floor(Number(seconds)));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${m}m`;
  if (m) return `${m}m ${s}s`;
  return `${s}s`;
}

export function oneLineText(value: string | null | undefined, max = 80): string {
  if (!value) return '-';
  const flat = value.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}
