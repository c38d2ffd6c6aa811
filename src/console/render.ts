// Templates (views/*.eta) with escaping on by default: `<%= %>` escapes, and no template uses
// the raw form on data. Every page gets the session's user, role and CSRF token for its forms.
import path from 'node:path';
import { Eta } from 'eta';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { duration, timestamp } from '../core/text.ts';
import { eventWho } from '../core/transfer-text.ts';
import { formatMinor } from '../money.ts';
import { consoleFilesDir } from '../paths/project.ts';

const eta = new Eta({ views: path.join(consoleFilesDir, 'views'), autoEscape: true, cache: true });

/** 12345 with cap 10000 -> "10,000+": a capped count says it is capped. */
export function cappedCount(n: number | string, cap: number): string {
  return Number(n) > cap ? `${cap.toLocaleString('en-US')}+` : Number(n).toLocaleString('en-US');
}

/** Helpers the templates call, so formatting rules live in one place (shared with the CLI). */
const helpers = {
  money: formatMinor,
  who: eventWho,
  when: (d: Date | string | null | undefined) => timestamp(d),
  ago: (seconds: number | string | null | undefined) => duration(seconds),
  count: cappedCount,
  qs: (params: Record<string, string | number | null | undefined>) =>
    new URLSearchParams(
      Object.entries(params)
        .filter(([, v]) => v !== null && v !== undefined && v !== '')
        .map(([k, v]) => [k, String(v)]),
    ).toString(),
};

export function page(
  request: FastifyRequest,
  reply: FastifyReply,
  view: string,
  data: Record<string, unknown>,
  status = 200,
): FastifyReply {
  const s = request.session;
  const html = eta.render(view, {
    ...data,
    h: helpers,
    user: s?.user ?? null,
    role: s?.role ?? null,
    csrf: data['csrf'] ?? s?.csrf ?? '',
    requestId: request.id,
  });
  return reply.code(status).type('text/html; charset=utf-8').send(html);
}

/** One clear message on a page of its own (bad input, refused, not found). */
export function problem(
  request: FastifyRequest,
  reply: FastifyReply,
  status: number,
  title: string,
  message: string,
  back?: string,
): FastifyReply {
  return page(request, reply, 'problem', { title, message, back: back ?? null }, status);
}
