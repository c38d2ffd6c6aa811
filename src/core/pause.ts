// The fleet's pause switch (issue 28), for both front ends: its state (stats, doctor, the
// console's banner), pause and resume (the SQL functions marketplace.pause_seller_transfers and
// resume_seller_transfers, with the person as requested_by like the other admin actions), and
// its history. While paused, dispatch hands nothing out and no worker starts a Stripe call;
// writers keep inserting and their rows wait (docs/operating.md#pause-and-resume).
import type { Queryable } from '../db/connection.ts';
import { namedQueries } from '../db/named-queries.ts';
import { duration, oneLineText, timestamp } from './text.ts';
import { eventWho } from './transfer-text.ts';

const sql = namedQueries('src/core/queries.sql');

export interface PauseState {
  paused: boolean;
  since: Date | null;
  actor: string | null;
  requested_by: string | null;
  reason: string | null;
  paused_seconds: number | null;
}

export interface PauseResult extends Omit<PauseState, 'paused_seconds'> {
  /** Stripe calls that may have been in flight when the pause committed: they finish and are recorded. */
  in_flight: number;
}

export interface PauseEvent {
  id: string;
  action: 'pause' | 'resume';
  occurred_at: Date;
  actor: string;
  requested_by: string | null;
  application_name: string | null;
  reason: string;
  paused_since: Date | null;
}

/** The switch; null when the schema has none yet (older than this build). */
export async function pauseState(db: Queryable): Promise<PauseState | null> {
  const {
    rows: [has],
  } = await db.query<{ ok: boolean }>(sql('has_pause'));
  if (!has?.ok) return null;
  const {
    rows: [s],
  } = await db.query<PauseState>(sql('pause_state'));
  return s ?? null;
}

/** The latest pauses and resumes, newest first. */
export async function pauseHistory(db: Queryable, limit = 20): Promise<PauseEvent[]> {
  return (await db.query<PauseEvent>(sql('pause_history'), [limit])).rows;
}

/** Pauses (or resumes) inside the caller's transaction, for the person requestedBy. */
export async function setPauseInTransaction(db: Queryable, pause: boolean, reason: string, requestedBy: string): Promise<PauseResult> {
  await db.query(sql('set_requested_by'), [requestedBy]);
  const {
    rows: [r],
  } = await db.query<PauseResult>(sql(pause ? 'pause' : 'resume'), [reason]);
  return r!;
}

/** "paused since <time> (<for how long>) by <who>: <why>", one line for the CLI, the console and doctor. */
export function pauseLine(s: Pick<PauseState, 'since' | 'actor' | 'requested_by' | 'reason'> & { paused_seconds?: number | null }): string {
  const long = s.paused_seconds === null || s.paused_seconds === undefined ? '' : ` (${duration(s.paused_seconds)} ago)`;
  const who = s.actor ? eventWho({ actor: s.actor, requested_by: s.requested_by }) : 'unknown';
  return `paused since ${timestamp(s.since)}${long} by ${who}: ${oneLineText(s.reason, 200)}`;
}
