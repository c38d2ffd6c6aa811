// The reason a person gives for an action (reverse, retry, fail), checked before the database
// sees it, for the CLI and the console alike: PostgreSQL refuses a NUL character in text
// (22021), and a reason is a sentence for the history, not a document.

/**
 * The longest reason, in characters as PostgreSQL's length() counts them (code points). The
 * database's rule (marketplace.lock_seller_transfer_for_admin, 22001 past it) is the one that
 * holds; this is the same number so the front ends can say so before asking, and
 * test/amounts-golden.test.ts proves the two agree at the limit.
 */
export const REASON_MAX_LENGTH = 500;

/** A reason's length as the database counts it: code points, not UTF-16 units (an emoji is one). */
export const reasonLength = (reason: string): number => [...reason].length;

/** Why this reason cannot be recorded, in one sentence; null when it can. */
export function reasonProblem(reason: string): string | null {
  if (!reason.trim()) return 'a reason is required: say why (it is recorded in the history)';
  if (reason.includes('\u0000')) return 'a reason cannot hold a NUL character (PostgreSQL stores no NUL in text)';
  const length = reasonLength(reason);
  if (length > REASON_MAX_LENGTH) return `a reason is at most ${REASON_MAX_LENGTH} characters, this one has ${length}`;
  return null;
}
