// The console's HTTP application: security on every response, a session on every page but the
// login, the operator role and a CSRF check on every POST, the pause switch for every page's
// banner, then the pages (one module each).
import { randomUUID } from 'node:crypto';
import formbody from '@fastify/formbody';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest, type FastifyServerOptions } from 'fastify';
import { registerActionPages } from './pages/actions.ts';
import { registerAuditDoctorPages } from './pages/audit-doctor.ts';
import { registerBulkPages } from './pages/bulk.ts';
import { registerListPages } from './pages/list.ts';
import { registerLoginPages, SESSION_COOKIE } from './pages/login.ts';
import { registerOverviewPage } from './pages/overview.ts';
import { readPauseBanner, registerPausePages } from './pages/pause.ts';
import type { PauseState } from '../core/pause.ts';
import { registerPreferencePages } from './pages/preferences.ts';
import { registerStaticFiles } from './pages/static.ts';
import { registerTransferPage } from './pages/transfer.ts';
import { registerWorkerPage } from './pages/worker.ts';
import { problem } from './render.ts';
import { csrfRefusal, parseCookies, securityHeaders } from './security.ts';
import { LoginLimiter } from './login-limiter.ts';
import type { ConsoleOptions } from './options.ts';
import { SessionStore, type Session } from './sessions.ts';

export type { ConsoleOptions };

declare module 'fastify' {
  interface FastifyRequest {
    session?: Session;
    /** The fleet's pause switch, for the banner of every page (null: not known). */
    pause?: PauseState | null;
  }
}

const LOOPBACK_HOST = /^(127\.0\.0\.1|localhost|\[::1\])(:\d+)?$/;

/** The app, its sessions, and every route it serves (method and pattern: the tests walk them all). */
export interface ConsoleApp {
  app: FastifyInstance;
  sessions: SessionStore;
  routes: Array<{ method: string; url: string }>;
}

/** Connection refused or lost, the server shutting down or not accepting connections (SQLSTATE classes 08, 57P). */
function isDatabaseUnavailable(e: unknown): boolean {
  const code = String((e as { code?: unknown }).code ?? '');
  return (
    /^(08|57P0[1-3])/.test(code) ||
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND'].includes(code) ||
    /Connection terminated/.test((e as Error).message ?? '')
  );
}

function databaseUnavailable(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  reply.header('Retry-After', '5');
  return problem(
    request,
    reply,
    503,
    'Database unavailable',
    'The console cannot reach its database right now; try again shortly. Nothing was done.',
  );
}

/** Paths anyone may fetch: the login form, the stylesheet and the live-refresh script, robots.txt, the (empty) favicon. */
const PUBLIC = new Set(['/login', '/robots.txt', '/static/console.css', '/static/live.js', '/favicon.ico']);
/** Routes that render no page: no pause banner to read. */
const NO_BANNER = new Set(['/logout', '/transfers.csv', '/transfers.json']);

export async function buildConsoleApp(o: ConsoleOptions): Promise<ConsoleApp> {
  const app = Fastify({
    logger: false,
    genReqId: () => randomUUID(),
    trustProxy: o.trustProxy ?? false,
    ...(o.https ? { https: o.https } : {}),
  } as FastifyServerOptions) as unknown as FastifyInstance;
  const routes: ConsoleApp['routes'] = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) if (method !== 'HEAD') routes.push({ method, url: r.url });
  });
  await app.register(formbody, { bodyLimit: 256 * 1024 });
  const sessions = new SessionStore(o.db.sessions, o.sessionMinutes);
  const limiter = new LoginLimiter({
    maxFailures: o.loginMaxFailures,
    ...(o.loginFirstDelayMs === undefined ? {} : { firstDelayMs: o.loginFirstDelayMs }),
  });
  const log = o.logger;

  app.addHook('onRequest', async (request, reply) => {
    securityHeaders(reply, o.secureCookies);
    reply.header('X-Request-Id', request.id);
    if (o.loopbackOnly && !LOOPBACK_HOST.test(request.headers.host ?? '')) {
      return reply.code(421).type('text/plain; charset=utf-8').send('This console answers only to 127.0.0.1, localhost and [::1].\n');
    }
    let session: Session | undefined;
    try {
      session = await sessions.get(parseCookies(request.headers.cookie)[SESSION_COOKIE]);
    } catch (e) {
      // The database does not answer: the public pages still show (the login form says so when
      // it cannot log in); every other page answers 503, never a 500 with nothing to act on.
      log.warn({ request_id: request.id, err: (e as Error).message }, 'console: could not read the session (database unavailable)');
      if (!PUBLIC.has(request.routeOptions.url ?? '')) return databaseUnavailable(request, reply);
    }
    // Sessions outlive a restart: one whose person or role this process no longer has (taken out
    // of CONSOLE_USERS, made a viewer) is no session here.
    request.session = session && o.users.some((u) => u.name === session.user && u.role === session.role) ? session : undefined;
    // The matched route, never request.url (which carries the query string): "/login?x=1" is /login.
    if (PUBLIC.has(request.routeOptions.url ?? '')) return;
    if (!request.session) {
      if (request.method === 'GET') return reply.redirect(`/login?next=${encodeURIComponent(request.url)}`, 303);
      return problem(request, reply, 401, 'Not logged in', 'Log in first; nothing was done.', '/login');
    }
  });

  // Every POST after the session check: the CSRF check; every POST but logout and the viewer's
  // own display preferences (the time zone): the operator role.
  app.addHook('preHandler', async (request, reply) => {
    const route = request.routeOptions.url;
    if (request.method !== 'POST' || route === '/login') return;
    const s = request.session!;
    const refused = csrfRefusal(request, s.csrf);
    if (refused) {
      log.warn(
        { request_id: request.id, actor: s.user, path: request.url.split('?')[0], why: refused },
        'console: state-changing request refused (CSRF)',
      );
      return problem(request, reply, 403, 'Refused', `${refused}; nothing was done.`);
    }
    if (route !== '/logout' && route !== '/preferences' && s.role !== 'operator') {
      log.warn(
        { request_id: request.id, actor: s.user, role: s.role, path: request.url.split('?')[0] },
        'console: action refused (viewer)',
      );
      return problem(request, reply, 403, 'Not allowed', `${s.user} is a viewer: only operators act on transfers; nothing was done.`);
    }
  });

  // The pause switch, for the banner every page shows while it is on: read for each page a person
  // sees (not for the public files, logging out or an export), as marketplace_reader.
  app.addHook('preHandler', async (request) => {
    const route = request.routeOptions.url ?? '';
    if (!request.session || PUBLIC.has(route) || NO_BANNER.has(route)) return;
    request.pause = await readPauseBanner(o.db);
  });

  app.addHook('onResponse', async (request, reply) => {
    log.debug(
      {
        request_id: request.id,
        method: request.method,
        path: request.url.split('?')[0],
        status: reply.statusCode,
        ms: Math.round(reply.elapsedTime),
        actor: request.session?.user,
      },
      'console: request',
    );
  });

  app.setNotFoundHandler((request, reply) => problem(request, reply, 404, 'Not found', 'There is no such page.', '/'));
  app.setErrorHandler((error, request, reply) => {
    if (isDatabaseUnavailable(error)) {
      log.error({ request_id: request.id, err: (error as Error).message }, 'console: database unavailable');
      return databaseUnavailable(request, reply);
    }
    const status = (error as { statusCode?: number }).statusCode ?? 500;
    if (status >= 500) log.error({ request_id: request.id, err: error }, 'console: request failed');
    // The message of a 4xx (e.g. a malformed body) is safe to show; a 5xx says only where to look.
    return problem(
      request,
      reply,
      status,
      status >= 500 ? 'Something went wrong' : 'Bad request',
      status >= 500
        ? `The console could not complete this request (request id ${request.id} in its log); nothing was changed by this page.`
        : (error as Error).message,
    );
  });

  app.decorate('consoleEnv', { mode: o.stripeMode, apiBase: o.stripeApiBase ?? false });
  registerStaticFiles(app);
  registerPreferencePages(app, o.secureCookies);
  registerLoginPages(app, { users: o.users, sessions, limiter, secureCookies: o.secureCookies, sessionMinutes: o.sessionMinutes, log });
  registerOverviewPage(app, o);
  registerListPages(app, o);
  registerTransferPage(app, o);
  registerWorkerPage(app, o);
  registerActionPages(app, o);
  registerPausePages(app, o);
  registerBulkPages(app, o);
  registerAuditDoctorPages(app, o);
  return { app, sessions, routes };
}
