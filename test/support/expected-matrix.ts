// The state machine as the specification states it, written independently of the database so
// the tests can catch the table, the trigger or the function drifting from the spec.
export const STATUSES = ['pending', 'completed', 'failed', 'reversal_pending', 'reversed', 'permanently_failed'] as const;
export type Status = (typeof STATUSES)[number];

export const INITIAL: readonly Status[] = ['pending'];
export const TERMINAL: readonly Status[] = ['reversed', 'permanently_failed'];

export const LEGAL_MOVES: Readonly<Record<Status, readonly Status[]>> = {
  pending: ['completed', 'failed'],
  completed: ['reversal_pending'],
  failed: ['completed', 'permanently_failed'],
  reversal_pending: ['reversed', 'permanently_failed'],
  reversed: [],
  permanently_failed: [],
};

export function expectedAllowed(from: string, to: string): boolean {
  if (!(STATUSES as readonly string[]).includes(from)) return false;
  return from === to || (LEGAL_MOVES[from as Status] as readonly string[]).includes(to);
}

/** Shortest legal path from pending to `target` (breadth-first over the expected matrix). */
export function pathTo(target: Status): Status[] {
  const prev = new Map<Status, Status>();
  const queue: Status[] = ['pending'];
  const seen = new Set<Status>(queue);
  while (queue.length) {
    const s = queue.shift()!;
    if (s === target) break;
    for (const n of LEGAL_MOVES[s])
      if (!seen.has(n)) {
        seen.add(n);
        prev.set(n, s);
        queue.push(n);
      }
  }
  const path: Status[] = [target];
  while (path[0] !== 'pending') {
    const p = prev.get(path[0]!);
    if (!p) throw new Error(`no legal path to ${target}`);
    path.unshift(p);
  }
  return path.slice(1);
}

/** Who speaks for a payout (the owner of the table keeps every legal move). */
export type Authority = 'service' | 'worker' | 'operator';

/** Who owns each legal move, as the issue states it: services ask, the worker reports what Stripe did, operators stop. */
export const MOVE_OWNERS: Readonly<Record<string, readonly Authority[]>> = {
  'pending>completed': ['worker'],
  'pending>failed': ['worker', 'operator'],
  'completed>reversal_pending': ['service', 'worker', 'operator'],
  'failed>completed': ['worker'],
  'failed>permanently_failed': ['worker', 'operator'],
  'reversal_pending>reversed': ['worker'],
  'reversal_pending>permanently_failed': ['worker', 'operator'],
};

/** What a plain UPDATE of status by `authority` ('owner': the table owner) gets: accepted, the matrix's refusal, or the owner's. */
export function expectedMove(
  authority: Authority | 'owner',
  from: string,
  to: string,
): 'accepted' | 'seller_transfer_status_transition' | 'seller_transfer_move_owner' {
  if (!expectedAllowed(from, to)) return 'seller_transfer_status_transition';
  if (from === to || authority === 'owner') return 'accepted';
  return MOVE_OWNERS[`${from}>${to}`]!.includes(authority) ? 'accepted' : 'seller_transfer_move_owner';
}
