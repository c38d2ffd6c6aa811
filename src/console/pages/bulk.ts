// Bulk retry / fail on the ids a person ticked (never "all matching"), at most CONSOLE_BULK_MAX.
// /bulk/preview runs each action rolled back and shows, with the count, what each would do;
// /bulk/act needs that count back (confirm_count) and runs each id in a transaction of its own,
// so one row the worker is busy with does not hold up the others; every outcome is listed and logged.
import type { FastifyInstance } from 'fastify';
import { ActionRefused, runConsoleAction } from '../act.ts';
import { reasonProblem } from '../../core/reason.ts';
import type { ConsoleOptions } from '../options.ts';
import { isUuid } from '../../db/connection.ts';
import { page, problem } from '../render.ts';

interface Outcome {
  id: string;
  ok: boolean;
  from: string | null;
  to: string | null;
  message: string | null;
}

function ids(body: Record<string, unknown>): string[] {
  const raw = body['ids'];
  const list = Array.isArray(raw) ? raw : raw === undefined ? [] : [raw];
  return [...new Set(list.filter((v): v is string => typeof v === 'string').map((v) => v.trim().toLowerCase()))];
}

export function registerBulkPages(app: FastifyInstance, o: ConsoleOptions): void {
  for (const step of ['preview', 'act'] as const) {
    app.post(`/bulk/${step}`, async (request, reply) => {
      const body = (request.body ?? {}) as Record<string, unknown>;
      const action = body['action'];
      const reason = typeof body['reason'] === 'string' ? body['reason'].trim() : '';
      const selected = ids(body);
      const user = request.session!.user;
      if (action !== 'retry' && action !== 'fail')
        return problem(request, reply, 400, 'Refused', 'Bulk actions are retry or fail; nothing was done.', '/transfers');
      if (!selected.length)
        return problem(request, reply, 400, 'Refused', 'No transfer selected: tick the rows to act on; nothing was done.', '/transfers');
      if (selected.length > o.bulkMax)
        return problem(
          request,
          reply,
          400,
          'Refused',
          `${selected.length} transfers selected; at most ${o.bulkMax} at once (CONSOLE_BULK_MAX); nothing was done.`,
          '/transfers',
        );
      const bad = selected.find((id) => !isUuid(id));
      if (bad)
        return problem(
          request,
          reply,
          400,
          'Refused',
          `"${bad.slice(0, 60)}" is not a seller transfer id; nothing was done.`,
          '/transfers',
        );
      const badReason = reasonProblem(reason);
      if (badReason) return problem(request, reply, 400, 'Refused', `${badReason}; nothing was done.`, '/transfers');
      if (step === 'act' && String(body['confirm_count'] ?? '') !== String(selected.length)) {
        return problem(
          request,
          reply,
          400,
          'Refused',
          `The confirmation was for ${String(body['confirm_count'] ?? 'no')} transfers, the request has ${selected.length}; nothing was done.`,
          '/transfers',
        );
      }
      const outcomes: Outcome[] = [];
      for (const id of selected) {
        try {
          const r = await runConsoleAction(o.db, { action, id, reason, user, commit: step === 'act' });
          outcomes.push({ id, ok: true, from: r.fromStatus, to: r.transfer.status, message: null });
        } catch (e) {
          if (!(e instanceof ActionRefused)) throw e;
          outcomes.push({ id, ok: false, from: null, to: null, message: e.message });
        }
      }
      if (step === 'act') {
        o.logger.info(
          {
            request_id: request.id,
            actor: user,
            role: request.session!.role,
            action,
            reason,
            transfer_ids: selected,
            done: outcomes.filter((x) => x.ok).length,
            refused: outcomes.filter((x) => !x.ok).map((x) => ({ id: x.id, why: x.message })),
          },
          'console: bulk action done',
        );
      }
      return page(request, reply, 'bulk', {
        title: step === 'act' ? `Bulk ${action}: done` : `Confirm bulk ${action}`,
        step,
        action,
        reason,
        outcomes,
        ok: outcomes.filter((x) => x.ok).length,
      });
    });
  }
}
