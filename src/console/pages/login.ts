// Login and logout. The login form has its own CSRF token (a cookie plus the same value in the
// form: a cross-site page can make the browser send the cookie, never read it). A failed login
// is logged with the user name and address, never the password; past CONSOLE_LOGIN_MAX_FAILURES
// within 15 minutes further tries from that address are refused, and each failure for a name
// makes its next try wait longer (src/console/login-limiter.ts). A try counts before its
// password is checked, and the check (scrypt) runs off the event loop.
import { randomBytes } from 'node:crypto';
import { setTimeout } from 'node:timers/promises';
import type { FastifyInstance } from 'fastify';
import type { AppLogger } from '../../logger.ts';
import { localPath } from '../local-path.ts';
import { page } from '../render.ts';
import { csrfRefusal, parseCookies } from '../security.ts';
import type { LoginLimiter } from '../login-limiter.ts';
import type { SessionStore } from '../sessions.ts';
import { DUMMY_HASH, verifyPassword, type ConsoleUser } from '../users.ts';

export const SESSION_COOKIE = 'st_console_session';
const LOGIN_COOKIE = 'st_console_login';

interface LoginDeps {
  users: ConsoleUser[];
  sessions: SessionStore;
  limiter: LoginLimiter;
  secureCookies: boolean;
  sessionMinutes: number;
  log: AppLogger;
}

export function registerLoginPages(app: FastifyInstance, d: LoginDeps): void {
  const cookie = (name: string, value: string, maxAge: number) =>
    `${name}=${value}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${d.secureCookies ? '; Secure' : ''}`;

  const form = (
    request: Parameters<typeof page>[0],
    reply: Parameters<typeof page>[1],
    next: string,
    error: string | null,
    status = 200,
  ) => {
    // Keep a token the browser already holds: a second login tab (or any page load in between)
    // must not invalidate the form of the first.
    const held = parseCookies(request.headers.cookie)[LOGIN_COOKIE];
    const token = held && /^[\w-]{32}$/.test(held) ? held : randomBytes(24).toString('base64url');
    reply.header('Set-Cookie', cookie(LOGIN_COOKIE, token, 600));
    return page(request, reply, 'login', { title: 'Log in', next, error, csrf: token }, status);
  };

  app.get('/login', async (request, reply) => {
    if (request.session) return reply.redirect('/', 303);
    return form(request, reply, localPath((request.query as Record<string, unknown>)['next']), null);
  });

  app.post('/login', async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const name = typeof body['user'] === 'string' ? body['user'].trim().slice(0, 64) : '';
    const password = typeof body['password'] === 'string' ? body['password'] : '';
    const next = localPath(body['next']);
    const refused = csrfRefusal(request, parseCookies(request.headers.cookie)[LOGIN_COOKIE]);
    if (refused) {
      d.log.warn({ request_id: request.id, user: name, address: request.ip, why: refused }, 'console: login refused (CSRF)');
      return form(request, reply, next, `Log-in refused: ${refused}.`, 403);
    }
    // The try counts now, before its password is checked: tries posted at once cannot all pass.
    const attempt = d.limiter.attempt(name, request.ip);
    if (!attempt) {
      d.log.warn(
        { request_id: request.id, user: name, address: request.ip },
        'console: login refused (too many failures from this address)',
      );
      return form(request, reply, next, 'Too many failed log-ins from this address: wait 15 minutes and try again.', 429);
    }
    const wait = attempt.waitMs;
    if (wait) await setTimeout(wait);
    const user = d.users.find((u) => u.name === name);
    // Unknown names cost one scrypt too, so timing does not tell which names exist.
    const ok = (await verifyPassword(password, user?.hash ?? DUMMY_HASH)) && !!user;
    if (!ok) {
      d.log.warn({ request_id: request.id, user: name, address: request.ip, waited_ms: wait }, 'console: login failed');
      return form(request, reply, next, 'Wrong user name or password.', 401);
    }
    attempt.succeeded();
    const session = await d.sessions.create(user.name, user.role);
    d.log.info({ request_id: request.id, actor: user.name, role: user.role, address: request.ip }, 'console: logged in');
    reply.header('Set-Cookie', [cookie(SESSION_COOKIE, session.id, d.sessionMinutes * 60), cookie(LOGIN_COOKIE, '', 0)]);
    return reply.redirect(next, 303);
  });

  app.post('/logout', async (request, reply) => {
    await d.sessions.delete(request.session?.id);
    reply.header('Set-Cookie', cookie(SESSION_COOKIE, '', 0));
    return reply.redirect('/login', 303);
  });
}
