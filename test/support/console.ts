// The console in-process for tests and scripts: its app on a loopback port against a test
// database, with a viewer and an operator whose passwords the test knows, and its log captured.
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import pino from 'pino';
import { buildConsoleApp, type ConsoleApp } from '../../src/console/app.ts';
import { openConsoleDb, type ConsoleDb } from '../../src/console/db.ts';
import { hashPassword, type ConsoleUser } from '../../src/console/users.ts';
import type { StripeMode } from '../../src/config.ts';

export const VIEWER = { name: 'vera', password: 'viewer-password-1' };
export const OPERATOR = { name: 'otto', password: 'operator-password-1' };

export interface TestConsole extends ConsoleApp {
  url: string;
  db: ConsoleDb;
  logs: Array<Record<string, unknown>>;
  close(): Promise<void>;
}

export async function startTestConsole(
  databaseUrl: string,
  opts: {
    stripeMode?: StripeMode;
    bulkMax?: number;
    loginMaxFailures?: number;
    trustProxy?: false | string[];
    loginFirstDelayMs?: number;
  } = {},
): Promise<TestConsole> {
  const users: ConsoleUser[] = [
    { name: VIEWER.name, role: 'viewer', hash: hashPassword(VIEWER.password) },
    { name: OPERATOR.name, role: 'operator', hash: hashPassword(OPERATOR.password) },
  ];
  const logs: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line));
      done();
    },
  });
  const logger = pino({ level: 'info' }, sink);
  const db = await openConsoleDb(databaseUrl);
  const built = await buildConsoleApp({
    db,
    users,
    logger,
    stripeMode: opts.stripeMode ?? 'test',
    secureCookies: false,
    sessionMinutes: 60,
    bulkMax: opts.bulkMax ?? 100,
    loginMaxFailures: opts.loginMaxFailures ?? 5,
    loopbackOnly: true,
    trustProxy: opts.trustProxy ?? false,
    loginFirstDelayMs: opts.loginFirstDelayMs ?? 20,
  });
  await built.app.listen({ host: '127.0.0.1', port: 0 });
  const url = `http://127.0.0.1:${(built.app.server.address() as AddressInfo).port}`;
  return {
    ...built,
    url,
    db,
    logs,
    close: async () => {
      await built.app.close();
      await db.close();
    },
  };
}

/** The CSRF token of a console page's forms. */
export function csrfOf(html: string): string {
  return /name="_csrf" value="([^"]+)"/.exec(html)![1]!;
}

/** A fresh login page's form: its CSRF cookie and token. */
export async function loginForm(baseUrl: string): Promise<{ cookie: string; csrf: string }> {
  const res = await fetch(`${baseUrl}/login`);
  return { cookie: res.headers.get('set-cookie')!.split(';')[0]!, csrf: csrfOf(await res.text()) };
}

/** Posts a fresh login form as `user`; the response (303 on success) is not followed. */
export async function postLogin(baseUrl: string, user: string, password: string, headers: Record<string, string> = {}): Promise<Response> {
  const form = await loginForm(baseUrl);
  return fetch(`${baseUrl}/login`, {
    method: 'POST',
    redirect: 'manual',
    headers: { cookie: form.cookie, 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams({ _csrf: form.csrf, user, password, next: '/' }),
  });
}

/** The session cookie a successful login set. */
export function sessionCookie(login: Response): string {
  return login.headers
    .getSetCookie()
    .find((s) => s.startsWith('st_console_session='))!
    .split(';')[0]!;
}
