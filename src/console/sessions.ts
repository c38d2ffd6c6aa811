// Sessions in PostgreSQL (marketplace.console_sessions, as marketplace_console), so every console
// process on the database shares them, a restart logs nobody out, and logout or expiry ends a
// session everywhere at once. The cookie holds a random token; the table holds its SHA-256 (the
// hashing and the expiry rule are in the named queries). The form (CSRF) token is derived from
// the session token, so it is the same on every process and never stored.
import { createHmac, randomBytes } from 'node:crypto';
import type pg from 'pg';
import { namedQueries } from '../db/named-queries.ts';
import type { Role } from './users.ts';

const sql = namedQueries('src/console/queries.sql');

export interface Session {
  id: string;
  user: string;
  role: Role;
  csrf: string;
  expiresAt: Date;
}

/** A token is 32 random bytes, base64url: anything else is no session (and never reaches the database). */
const TOKEN = /^[\w-]{43}$/;

interface SessionRow {
  user_name: string;
  console_role: Role;
  expires_at: Date;
}

export class SessionStore {
  constructor(
    private readonly pool: pg.Pool,
    private readonly ttlMinutes: number,
  ) {}

  async create(user: string, role: Role): Promise<Session> {
    const id = randomBytes(32).toString('base64url');
    await this.pool.query(sql('sessions_sweep'));
    const {
      rows: [row],
    } = await this.pool.query<SessionRow>(sql('session_create'), [id, user, role, this.ttlMinutes]);
    return session(id, row!);
  }

  async get(id: string | undefined): Promise<Session | undefined> {
    if (!id || !TOKEN.test(id)) return undefined;
    const {
      rows: [row],
    } = await this.pool.query<SessionRow>(sql('session_get'), [id]);
    return row ? session(id, row) : undefined;
  }

  async delete(id: string | undefined): Promise<void> {
    if (id && TOKEN.test(id)) await this.pool.query(sql('session_end'), [id]);
  }
}

function session(id: string, row: SessionRow): Session {
  return {
    id,
    user: row.user_name,
    role: row.console_role,
    csrf: createHmac('sha256', id).update('console form token').digest('base64url'),
    expiresAt: row.expires_at,
  };
}
