// A transfer's history and dispatch state in words, the same in the CLI (show, reverse, retry,
// fail) and the console (the transfer page).
import { duration, oneLineText, timestamp } from './text.ts';
import type { DispatchState, HistoryEvent } from './read-model.ts';

/** Who: the person (requested_by) when an action named one, and the database role it ran as. */
export function eventWho(e: Pick<HistoryEvent, 'requested_by' | 'actor'>): string {
  return e.requested_by ? `${e.requested_by} as ${e.actor}` : e.actor;
}

function jobSummary(d: DispatchState): string {
  const attempts = `attempts ${d.attempts}/${d.max_attempts}${d.attempts! >= d.max_attempts! && !d.locked_at ? ' (none left: graphile-worker will not run it again)' : ''}`;
  const running = d.locked_at
    ? `locked by ${d.locked_by} since ${timestamp(d.locked_at)}`
    : `waiting to run (run_at ${timestamp(d.run_at)})`;
  const error = d.last_error ? `, last error: ${oneLineText(d.last_error, 120)}` : '';
  return `${attempts}, ${running}${error}`;
}

/**
 * The dispatch state in words, one line (two when a job left from an earlier dispatch is still
 * there). Every decision (due, handed, scheduled, idle) was made by seller_transfer_dispatch_state().
 */
export function renderDispatch(d: DispatchState): string[] {
  const job = d.job_id === null ? null : `job ${d.job_id} (${d.job_task})`;
  switch (d.state) {
    case 'idle':
      return [
        `nothing for the worker (${d.status}${d.is_terminal ? ', terminal' : ''})${job ? `; ${job} is left over: ${jobSummary(d)}` : ''}`,
      ];
    case 'due':
      return [
        'due now, waiting for the worker: a running worker picks it up within a moment',
        ...(job ? [`${job} from an earlier dispatch is still there: ${jobSummary(d)}`] : []),
      ];
    case 'handed':
      return [`handed to ${job}, lease until ${timestamp(d.lease)}, ${jobSummary(d)}`];
    case 'scheduled': {
      const wait = d.next_retry_at ? duration((new Date(d.next_retry_at).getTime() - Date.now()) / 1000) : '-';
      return [`scheduled: next attempt at ${timestamp(d.next_retry_at)} (in ${wait})`, ...(job ? [`${job}: ${jobSummary(d)}`] : [])];
    }
    default:
      return [`dispatch state ${String(d.state)}`];
  }
}
