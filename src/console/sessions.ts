// Sessions in memory (one console process; a restart logs everyone out, which is the safe
// side). The cookie holds only a random id; the session holds the user, role and CSRF token.
// Failed logins are counted per user name and per client address; past the limit further
// tries are refused for the rest of the window, whatever the password.
import { randomBytes } from 'node:crypto';
import type { Role } from './users.ts';

export interface Session { id: string; user: string; role: Role; csrf: string; expiresAt: number }

export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  constructor(private readonly ttlMs: number) {}

  create(user: string, role: Role): Session {
    this.sweep();
    const session = { id: randomBytes(32).toString('base64url'), user, role, csrf: randomBytes(32).toString('base64url'), expiresAt: Date.now() + this.ttlMs };
    this.sessions.set(session.id, session);
    return session;
  }

  get(id: string | undefined): Session | undefined {
    if (!id) return undefined;
    const s = this.sessions.get(id);
    if (!s || s.expiresAt < Date.now()) {
      this.sessions.delete(id);
      return undefined;
    }
    return s;
  }

  delete(id: string | undefined): void {
    if (id) this.sessions.delete(id);
  }

  private sweep(): void {
    const now = Date.now();
    for (const [id, s] of this.sessions) if (s.expiresAt < now) this.sessions.delete(id);
  }
}

const WINDOW_MS = 15 * 60_000;

export class LoginLimiter {
  private readonly failures = new Map<string, number[]>();
  constructor(private readonly maxFailures: number) {}

  /** True when this user name or this address has used up its failures in the window. */
  blocked(user: string, address: string): boolean {
    return this.recent(`u:${user}`) >= this.maxFailures || this.recent(`a:${address}`) >= this.maxFailures;
  }

  fail(user: string, address: string): void {
    for (const key of [`u:${user}`, `a:${address}`]) this.failures.set(key, [...(this.failures.get(key) ?? []), Date.now()]);
  }

  succeed(user: string): void {
    this.failures.delete(`u:${user}`);
  }

  private recent(key: string): number {
    const since = Date.now() - WINDOW_MS;
    const kept = (this.failures.get(key) ?? []).filter((t) => t > since);
    if (kept.length) this.failures.set(key, kept);
    else this.failures.delete(key);
    return kept.length;
  }
}
