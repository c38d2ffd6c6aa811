// `seller-transfers pause / resume --reason "…"`: the fleet's pause switch (issue 28). One call
// to marketplace.pause_seller_transfers / resume_seller_transfers in a transaction of its own,
// with the person (the OS user) as requested_by, as the other admin actions record it. A refusal
// (already paused, not paused, no reason, not an operator) is the database's error, one line.
import type { Command } from 'commander';
import { pauseLine, setPauseInTransaction, type PauseResult } from '../core/pause.ts';
import { inTransaction } from '../db/connection.ts';
import { reasonOption, requiredReason } from './admin-action.ts';
import { print, printJson } from './format.ts';
import { cliRequester, operatorContext, withOperatorDb } from './operator-db.ts';

export function renderPause(pause: boolean, r: PauseResult): string {
  if (!pause) return 'seller transfers resumed: dispatch hands the waiting rows out again and the worker calls Stripe';
  const lines = [
    `seller transfers ${pauseLine(r)}`,
    'no worker starts a Stripe call and dispatch hands nothing out; writers keep inserting, their rows wait (nothing is lost)',
  ];
  if (r.in_flight > 0) lines.push(`${r.in_flight} Stripe call(s) were in flight at the pause: they finish and are recorded as usual`);
  lines.push('resume with: seller-transfers resume --reason "..."');
  return lines.join('\n');
}

function register(program: Command, pause: boolean): void {
  const name = pause ? 'pause' : 'resume';
  program
    .command(name)
    .description(
      pause
        ? 'pause the whole fleet: no worker starts a new Stripe call and nothing is dispatched (a call in flight finishes and is recorded); writers keep inserting, rows wait; recorded with who and why'
        : 'resume the fleet after `pause`: the waiting rows are dispatched and paid; recorded with who and why',
    )
    .usage('--reason <text> [options]')
    .addOption(reasonOption(`recorded in the pause history (marketplace.seller_transfer_pause_events)`))
    .option('--json', 'print { paused, since, actor, requested_by, reason, in_flight } as JSON')
    .action(async (opts: { reason?: string; json?: boolean }) => {
      const reason = requiredReason(opts.reason);
      const { config, logger } = operatorContext();
      const result = await withOperatorDb(config, logger, (db) =>
        inTransaction(db, () => setPauseInTransaction(db, pause, reason, cliRequester())),
      );
      if (opts.json) return printJson(result);
      print(renderPause(pause, result));
    });
}

export function registerPauseCommand(program: Command): void {
  register(program, true);
}

export function registerResumeCommand(program: Command): void {
  register(program, false);
}
