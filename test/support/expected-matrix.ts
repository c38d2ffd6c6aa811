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
    for (const n of LEGAL_MOVES[s]) if (!seen.has(n)) { seen.add(n); prev.set(n, s); queue.push(n); }
  }
  const path: Status[] = [target];
  while (path[0] !== 'pending') {
    const p = prev.get(path[0]!);
    if (!p) throw new Error(`no legal path to ${target}`);
    path.unshift(p);
  }
  return path.slice(1);
}
