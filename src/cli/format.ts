// Output helpers for the operator commands: plain tables (no colours, so output is the same on
// a terminal, in a pipe and in tests), JSON; timestamps, durations and one-line text are the
// shared core's (src/core/text.ts), re-exported here for the commands.
import Table from 'cli-table3';

export { duration, oneLineText, timestamp } from '../core/text.ts';

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
