// Output helpers for the operator commands: plain tables (no colours, so output is the same on
// a terminal, in a pipe and in tests), timestamps, durations, JSON.
import Table from 'cli-table3';

export function table(head: string[], rows: Array<Array<string | number | null | undefined>>): string {
  const t = new Table({ head, style: { head: [], border: [] } });
  for (const row of rows) t.push(row.map((c) => (c === null || c === undefined ? '-' : String(c))));
  return t.toString();
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

export function print(text = ''): void {
  process.stdout.write(`${text}\n`);
}

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
