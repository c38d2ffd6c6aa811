// Keyset page cursors, for the console's lists and the CLI's `list`: the last row's sort key to
// the microsecond, exactly as the list queries write it (`cursor_at`, UTC), and its id; opaque
// to people (base64url JSON). A JavaScript Date keeps milliseconds: a cursor made from one would
// skip or repeat rows written within one millisecond. The time is checked before PostgreSQL sees
// it: JavaScript's Date reads far more ("0", years beyond PostgreSQL's range) than PostgreSQL
// takes (22007, 22008).
import { isUuid } from '../db/connection.ts';

export interface Cursor {
  at: string;
  id: string;
}

/** A sort key as the list queries give it (cursor_at): UTC, to the microsecond. */
const CURSOR_AT = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z$/;

export function encodeCursor(at: string, id: string): string {
  return Buffer.from(JSON.stringify([at, id])).toString('base64url');
}

/** Exactly the form the queries write, a real date and time (no February 30th, no 24:00), year 1 to 9999. */
function cursorTime(at: unknown): string | null {
  if (typeof at !== 'string') return null;
  const m = CURSOR_AT.exec(at);
  if (!m || m[1] === '0000') return null;
  const d = new Date(`${at.slice(0, 23)}Z`);
  return !Number.isNaN(d.getTime()) && d.toISOString().slice(0, 23) === at.slice(0, 23) ? at : null;
}

/** The cursor a list wrote, or null for anything else. */
export function decodeCursor(text: string): Cursor | null {
  try {
    const value: unknown = JSON.parse(Buffer.from(text, 'base64url').toString());
    if (Array.isArray(value) && value.length === 2) {
      const [at, id] = value as unknown[];
      const time = cursorTime(at);
      if (time !== null && typeof id === 'string' && isUuid(id)) return { at: time, id: id.toLowerCase() };
    }
  } catch {
    // not JSON: not one of ours
  }
  return null;
}
