// Actions on one transfer, POST only (the CSRF check and the operator role run before these, in
// app.ts): /preview shows what will happen (the real call, rolled back), /act does it. Each
// action is logged with the person, the reason and the request id; the history records the
// person too (requested_by, application_name).
import type { FastifyInstance } from 'fastify';
import type { AdminAction } from '../../core/admin-actions.ts';
import { TransferNotFound } from '../../core/errors.ts';
import { transferDetail } from '../../core/read-model.ts';
import { reasonProblem } from '../../core/reason.ts';
import { ACTIONS, ActionRefused, runConsoleAction } from '../act.ts';
import type { ConsoleOptions } from '../options.ts';
import { readSnapshot } from '../db.ts';
import { isUuid } from '../../db/connection.ts';
import { formatMinor, parseMajor } from '../../money.ts';
import { page, problem } from '../render.ts';

function field(body: Record<string, unknown>, key: string): string {
  const v = body[key];
  return typeof v === 'string' ? v.trim() : '';
}

export function registerActionPages(app: FastifyInstance, o: ConsoleOptions): void {
  for (const step of ['preview', 'act'] as const) {
    app.post(`/transfers/:id/${step}`, async (request, reply) => {
      const { id: rawId } = request.params as { id: string };
      const body = (request.body ?? {}) as Record<string, unknown>;
      const back = `/transfers/${encodeURIComponent(rawId)}`;
      const action = field(body, 'action') as AdminAction;
      const reason = field(body, 'reason');
      const amountText = field(body, 'amount');
      const user = request.session!.user;
      if (!isUuid(rawId))
        return problem(request, reply, 404, 'Not found', `"${rawId.slice(0, 60)}" is not a seller transfer id; nothing was done.`, '/');
      const id = rawId.toLowerCase();
      if (!ACTIONS.includes(action)) return problem(request, reply, 400, 'Refused', 'Unknown action; nothing was done.', back);
      const badReason = reasonProblem(reason);
      if (badReason) return problem(request, reply, 400, 'Refused', `${badReason}; nothing was done.`, back);
      let t;
      try {
        t = await readSnapshot(o.db, (c) => transferDetail(c, id));
      } catch (e) {
        if (e instanceof TransferNotFound)
          return problem(request, reply, 404, 'Not found', `No seller transfer ${id}; nothing was done.`, '/');
        throw e;
      }
      let amountCents: string | undefined;
      if (action === 'reverse' && amountText !== '') {
        const parsed = parseMajor(amountText, t.currency, t.currency_exponent);
        if ('error' in parsed) return problem(request, reply, 400, 'Refused', `Amount ${parsed.error}; nothing was done.`, back);
        amountCents = parsed.minor;
      }
      const logged = {
        request_id: request.id,
        actor: user,
        role: request.session!.role,
        action,
        transfer_id: id,
        reason,
        amount_cents: amountCents ?? null,
      };
      try {
        const result = await runConsoleAction(o.db, { action, id, reason, amountCents, user, commit: step === 'act' });
        if (step === 'preview') {
          const reversed = action === 'reverse' ? Number(amountCents ?? t.amount_cents) : null;
          return page(request, reply, 'confirm', {
            title: `Confirm: ${action}`,
            t,
            action,
            reason,
            amountText,
            result,
            reversedText: reversed === null ? null : formatMinor(reversed, t.currency, t.currency_exponent),
            remainingText: reversed === null ? null : formatMinor(Number(t.amount_cents) - reversed, t.currency, t.currency_exponent),
          });
        }
        o.logger.info({ ...logged, from_status: result.fromStatus, to_status: result.transfer.status }, 'console: action done');
        return reply.redirect(`${back}?done=${action}`, 303);
      } catch (e) {
        if (!(e instanceof ActionRefused)) throw e;
        o.logger.warn({ ...logged, step, refused: e.message }, 'console: action refused by the database');
        return problem(request, reply, 400, 'Refused', `${e.message}; nothing was done.`, back);
      }
    });
  }
}
