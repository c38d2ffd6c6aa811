// The reason a person gives for an action (reverse, retry, fail), checked before the database
// sees it, for the CLI and the console alike: PostgreSQL refuses a NUL character in text
// (22021), and a reason is a sentence for the history, not a document.

/** The longest reason the front ends pass on, in characters. */
export const REASON_MAX_LENGTH = 500;

/** Why this reason cannot be recorded, in one sentence; null when it can. */
export function reasonProblem(reason: string): string | null {
  if (!reason.trim()) return 'a reason is required: say why (it is recorded in the history)';
  if (reason.includes('\u0000')) return 'a reason cannot hold a NUL character (PostgreSQL stores no NUL in text)';
  if (reason.length > REASON_MAX_LENGTH) return `a reason is at most ${REASON_MAX_LENGTH} characters, this one has ${reason.length}`;
  return null;
}
