// Audit and doctor, read-only, with the findings and fixes of `seller-transfers audit` and
// `seller-transfers doctor` (the same functions: src/core/audit.ts, src/core/doctor.ts).
import type { FastifyInstance } from 'fastify';
import { AUDIT_LIST_LIMIT, auditFindings, storedFindings, unrecordedFactsNote } from '../../core/audit.ts';
import { doctorChecks } from '../../core/doctor.ts';
import type { ConsoleOptions } from '../options.ts';
import { readSnapshot } from '../db.ts';
import { page } from '../render.ts';

export function registerAuditDoctorPages(app: FastifyInstance, o: ConsoleOptions): void {
  app.get('/audit', async (request, reply) => {
    const raw = (request.query as Record<string, unknown>)['since'];
    const sinceText = typeof raw === 'string' && raw.trim() ? raw.trim() : '';
    if (!sinceText) {
      // What the incremental audit (`seller-transfers audit --since-last`) stored: one index read,
      // whatever the table's size. A live audit is one `since` away.
      const stored = await readSnapshot(o.db, (c) => storedFindings(c));
      return page(request, reply, 'audit', {
        title: 'Audit',
        since: '',
        stored,
        problems: [],
        total: 0,
        transfers: 0,
        limit: AUDIT_LIST_LIMIT,
        note: null,
        error: null,
      });
    }
    const since = new Date(sinceText);
    if (Number.isNaN(since.getTime()) || (sinceText && !/^\d{4}-\d{2}-\d{2}/.test(sinceText))) {
      return page(
        request,
        reply,
        'audit',
        {
          title: 'Audit',
          since: sinceText,
          stored: null,
          problems: [],
          total: 0,
          transfers: 0,
          limit: AUDIT_LIST_LIMIT,
          note: null,
          error: `since: expected a date such as 2025-01-31, got "${sinceText.slice(0, 40)}"`,
        },
        400,
      );
    }
    const { problems, unrecordedFacts } = await readSnapshot(o.db, (c) => auditFindings(c, since));
    return page(request, reply, 'audit', {
      title: 'Audit',
      since: since.toISOString(),
      stored: null,
      problems: problems.slice(0, AUDIT_LIST_LIMIT),
      total: problems.length,
      note: unrecordedFactsNote(unrecordedFacts),
      transfers: new Set(problems.map((p) => p.transfer_id)).size,
      limit: AUDIT_LIST_LIMIT,
      error: null,
    });
  });

  app.get('/doctor', async (request, reply) => {
    const checks = await readSnapshot(o.db, (c) => doctorChecks(c));
    return page(request, reply, 'doctor', {
      title: 'Doctor',
      checks,
      problems: checks.filter((c) => c.status === 'problem').length,
      warnings: checks.filter((c) => c.status === 'warn').length,
    });
  });
}
