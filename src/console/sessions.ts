// Sessions in memory (one console process; a restart logs everyone out, which is the safe
// side). The cookie holds only a random id; the session holds the user, role and CSRF token.
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
