// Who may log in: CONSOLE_USERS ("name:role:hash", comma-separated), or in development with
// nothing configured, one operator "dev" with a password generated at start and printed once.
// Hashes are scrypt (node:crypto): "scrypt$N$r$p$salt$key", salt and key base64url. A log-in's
// check runs scrypt on libuv's thread pool (crypto.scrypt), never on the event loop: a burst of
// log-ins must not hold up every other request. Making a hash (at start, --hash-password) is
// synchronous.
import { randomBytes, scrypt, scryptSync, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { ConfigError } from '../config.ts';

export type Role = 'viewer' | 'operator';
export interface ConsoleUser {
  name: string;
  role: Role;
  hash: string;
}

const SCRYPT = { N: 16384, r: 8, p: 1, keylen: 32 };
const HASH = /^scrypt\$(\d+)\$(\d+)\$(\d+)\$([\w-]+)\$([\w-]+)$/;

export function hashPassword(password: string): string {
  const salt = randomBytes(16);
  const key = scryptSync(password, salt, SCRYPT.keylen, { N: SCRYPT.N, r: SCRYPT.r, p: SCRYPT.p });
  return `scrypt$${SCRYPT.N}$${SCRYPT.r}$${SCRYPT.p}$${salt.toString('base64url')}$${key.toString('base64url')}`;
}

function scryptAsync(password: string, salt: Buffer, keylen: number, options: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => scrypt(password, salt, keylen, options, (err, key) => (err ? reject(err) : resolve(key))));
}

export async function verifyPassword(password: string, hash: string): Promise<boolean> {
  const m = HASH.exec(hash);
  if (!m) return false;
  const [, N, r, p, salt, key] = m;
  const expected = Buffer.from(key!, 'base64url');
  const actual = await scryptAsync(password, Buffer.from(salt!, 'base64url'), expected.length, {
    N: Number(N),
    r: Number(r),
    p: Number(p),
    maxmem: 256 * 1024 * 1024,
  });
  return timingSafeEqual(actual, expected);
}

/** A hash to compare against when the user name is unknown, so both cases cost one scrypt. */
export const DUMMY_HASH = hashPassword(randomBytes(16).toString('hex'));

export function parseUsers(value: string): ConsoleUser[] {
  const users = value
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((entry) => {
      const [name, role, hash, ...rest] = entry.split(':');
      if (!name || !/^[\w.@-]{1,64}$/.test(name) || rest.length)
        throw new ConfigError(
          `invalid configuration: CONSOLE_USERS: each entry is name:role:hash (name of letters, digits, . @ _ -), got one starting "${entry.slice(0, 20)}"`,
        );
      if (role !== 'viewer' && role !== 'operator')
        throw new ConfigError(`invalid configuration: CONSOLE_USERS: ${name}'s role must be viewer or operator`);
      if (!hash || !HASH.test(hash))
        throw new ConfigError(
          `invalid configuration: CONSOLE_USERS: ${name}'s hash is not an scrypt hash (make one with \`seller-transfers console --hash-password\`)`,
        );
      return { name, role, hash } satisfies ConsoleUser;
    });
  if (!users.length) throw new ConfigError('invalid configuration: CONSOLE_USERS lists no user');
  if (new Set(users.map((u) => u.name)).size !== users.length)
    throw new ConfigError('invalid configuration: CONSOLE_USERS names a user twice');
  return users;
}

/** The development login: one operator with a fresh password, valid until this process stops. */
export function oneTimeUser(): { user: ConsoleUser; password: string } {
  const password = randomBytes(12).toString('base64url');
  return { user: { name: 'dev', role: 'operator', hash: hashPassword(password) }, password };
}
