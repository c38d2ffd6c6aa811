// Templates (views/*.eta) with escaping on by default: `<%= %>` escapes, and no template uses
// the raw form on data (only on partials, which escape). Every page gets the session's user,
// role and CSRF token for its forms, the Stripe environment badge (from the server's
// configuration: ConsoleEnv), and times in the viewer's time zone (viewer-time.ts).
import path from 'node:path';
import { Eta } from 'eta';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { duration, timestamp } from '../core/text.ts';
import { eventWho } from '../core/transfer-text.ts';
import { formatMinor } from '../money.ts';
import { consoleFilesDir } from '../paths/project.ts';
import type { StripeMode } from '../config.ts';
import { parseCookies } from './security.ts';
import { DEFAULT_ZONE, knownZone, shownTime, TZ_COOKIE } from './viewer-time.ts';

/** Which Stripe this console's payouts go to, from its configuration (never from a request). */
export interface ConsoleEnv {
  mode: StripeMode;
  /** STRIPE_API_BASE is set: a Stripe-compatible server, not Stripe itself. */
  apiBase: boolean;
}

declare module 'fastify' {
  interface FastifyInstance {
    consoleEnv: ConsoleEnv;
  }
}

/** The badge's words: what a screenshot in a ticket must say. */
export function envBadge(env: ConsoleEnv): { label: string; detail: string } {
  if (env.mode === 'simulator')
    return { label: 'simulator', detail: 'the built-in Stripe simulator (no STRIPE_SECRET_KEY): no real money' };
  const where = env.apiBase ? 'a Stripe-compatible server (STRIPE_API_BASE)' : 'Stripe';
  if (env.mode === 'live') return { label: 'live', detail: `${where}, live mode (sk_live_ key): real money` };
  return { label: 'test', detail: `${where}, test mode (sk_test_ key): no real money` };
}

/** The refresh intervals a page offers (seconds). */
export const REFRESH_CHOICES = [5, 10, 30, 60] as const;

/** The script's interval when the viewer chose none (seconds). */
export const LIVE_DEFAULT_SECONDS = 10;

/**
 * A page's live refresh. `every`: how often static/live.js updates the page in place (the
 * viewer's choice, else LIVE_DEFAULT_SECONDS; 0: off). `seconds`: the reload a browser without
 * JavaScript makes (<noscript><meta http-equiv="refresh">), only when the viewer chose one, so a
 * page never reloads itself on a timer nobody chose (WCAG 2.2.1). The links change both and keep
 * the URL's other parameters (the filters, the period).
 */
export interface Live {
  seconds: number | null;
  every: number;
  links: Array<{ label: string; href: string; current: boolean }>;
}

/** The refresh a page asks for (`refresh` in its query: off or one of REFRESH_CHOICES). */
export function liveRefresh(request: FastifyRequest, byDefault: number | null): Live {
  const q = request.query as Record<string, unknown>;
  const asked = q['refresh'];
  const chosen = REFRESH_CHOICES.find((c) => String(c) === asked) ?? null;
  const seconds = asked === 'off' ? null : (chosen ?? byDefault);
  const every = asked === 'off' ? 0 : (chosen ?? LIVE_DEFAULT_SECONDS);
  const url = new URL(request.url, 'http://console.invalid');
  const href = (v: string) => {
    url.searchParams.set('refresh', v);
    return `${url.pathname}?${url.searchParams.toString()}`;
  };
  return {
    seconds,
    every,
    links: [
      { label: 'off', href: href('off'), current: every === 0 },
      ...REFRESH_CHOICES.map((c) => ({ label: `${c} s`, href: href(String(c)), current: every === c })),
    ],
  };
}

/** The viewer's time zone (their cookie, when it names a zone this Node knows), else UTC. */
export function viewerZone(request: FastifyRequest): string {
  return knownZone(parseCookies(request.headers.cookie)[TZ_COOKIE]) ?? DEFAULT_ZONE;
}

const eta = new Eta({ views: path.join(consoleFilesDir, 'views'), autoEscape: true, cache: true });

/** 12345 with cap 10000 -> "10,000+": a capped count says it is capped. */
export function cappedCount(n: number | string, cap: number): string {
  return Number(n) > cap ? `${cap.toLocaleString('en-US')}+` : Number(n).toLocaleString('en-US');
}

/** The amount reversed or asked to be: the row's reversal amount; in a reversal status without one, the whole amount. */
export function reversalMinor(r: {
  status: string;
  amount_cents: number | string;
  reversal_amount_cents: number | string | null;
}): number | string | null {
  return r.reversal_amount_cents ?? (['reversal_pending', 'reversed'].includes(r.status) ? r.amount_cents : null);
}

/** Helpers the templates call, so formatting rules live in one place (shared with the CLI). */
const shared = {
  money: formatMinor,
  who: eventWho,
  when: (d: Date | string | null | undefined) => timestamp(d),
  ago: (seconds: number | string | null | undefined) => duration(seconds),
  count: cappedCount,
  reversal: reversalMinor,
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
  const zone = viewerZone(request);
  const now = Date.now();
  const env = envBadge(request.server.consoleEnv);
  const html = eta.render(view, {
    ...data,
    // t(x): a time for the time partial (relative, the absolute one in the viewer's zone as its title).
    h: { ...shared, t: (d: Date | string | number | null | undefined) => shownTime(d, zone, now) },
    zone,
    env,
    renderedAt: shownTime(new Date(now), zone, now).title,
    renderedAtIso: new Date(now).toISOString(),
    user: s?.user ?? null,
    role: s?.role ?? null,
    csrf: data['csrf'] ?? s?.csrf ?? '',
    // The fleet's pause switch (app.ts reads it for every page): the banner while it is on.
    pause: request.pause?.paused ? request.pause : null,
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
