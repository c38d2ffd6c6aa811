// Text formatting both front ends use for values from the database: timestamps, durations, one
// line of free text. Plain strings, no colours: the same on a terminal, in a pipe, in a page.

export function timestamp(value: Date | string | null | undefined): string {
  if (value === null || value === undefined) return '-';
  return (value instanceof Date ? value : new Date(value)).toISOString();
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
