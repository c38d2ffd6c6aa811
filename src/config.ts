// Configuration from the environment, validated once at start-up. A bad value fails fast with a
// message naming the variable; secrets are never echoed back.
import { isIP } from 'node:net';
import { z } from 'zod';

const int = (def: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(def);
const seconds = (def: number) =>
  z.coerce
    .number()
    .positive()
    .max(365 * 24 * 3600)
    .default(def);
const emptyAsUndefined = (v: unknown) => (v === '' ? undefined : v);
const perSecond = z.coerce.number().positive().max(10_000).optional();
/** proxy-addr's names for address ranges, accepted in CONSOLE_TRUSTED_PROXIES besides addresses and CIDRs. */
const PROXY_RANGES = new Set(['loopback', 'linklocal', 'uniquelocal']);
function trustedProxy(entry: string): boolean {
  if (PROXY_RANGES.has(entry)) return true;
  const [address, bits, ...rest] = entry.split('/');
  const family = isIP(address ?? '');
  if (!family || rest.length) return false;
  return bits === undefined || (/^\d{1,3}$/.test(bits) && Number(bits) <= (family === 4 ? 32 : 128));
}
// The proxies' addresses, CIDRs and loopback/linklocal/uniquelocal, comma-separated: X-Forwarded-For
// entries added by those are believed. Unset: none. No hop count: it cannot tell a proxy from a
// client that writes the header itself (fastify refuses to trust one for that reason).
const trustedProxies = z.string().transform((v, ctx) => {
  const entries = v
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean);
  const bad = entries.filter((e) => !trustedProxy(e));
  if (!entries.length || bad.length) {
    ctx.addIssue({
      code: 'custom',
      message: `expected the proxies' addresses or CIDRs, comma-separated (or loopback, linklocal, uniquelocal)${bad.length ? `; not one: ${bad.join(', ').slice(0, 80)}` : ''}`,
    });
    return z.NEVER;
  }
  return entries;
});
const postgresUrl = z.string().refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgres:// connection string');

/** `migrate`'s lock_timeout and total retry time when not configured (also for callers without a Config: tests, bench). */
export const MIGRATE_DEFAULTS = { lockTimeoutMs: 1_500, retryForMs: 120_000 } as const;

const schema = z.object({
  NODE_ENV: z.preprocess(emptyAsUndefined, z.enum(['development', 'test', 'production']).default('development')),
  DATABASE_URL: z.preprocess(emptyAsUndefined, postgresUrl.optional()),
  DATA_DIR: z.preprocess(emptyAsUndefined, z.string().default('.data')),
  // The embedded server's port (without DATABASE_URL): one checkout, one server on this port.
  EMBEDDED_PORT: z.preprocess(emptyAsUndefined, int(54329, 1, 65_535)),
  STRIPE_SECRET_KEY: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^(sk|rk)_(test|live)_\w+$/, 'must look like sk_test_… or sk_live_… (or a restricted rk_ key)')
      .optional(),
  ),
  STRIPE_API_BASE: z.preprocess(emptyAsUndefined, z.url({ protocol: /^https?$/ }).optional()),
  // Unset: derived from the key's mode, see stripeRequestBudget().
  STRIPE_REQUESTS_PER_SECOND: z.preprocess(emptyAsUndefined, perSecond),
  STRIPE_ENDPOINT_REQUESTS_PER_SECOND: z.preprocess(emptyAsUndefined, perSecond),
  STRIPE_TIMEOUT_MS: z.preprocess(emptyAsUndefined, int(20_000, 100, 120_000)),
  // After a 429, how long a job keeps the row and re-sends (as the budget allows) before handing
  // the row back unchanged (it is due again seconds later). Never counts as a failed attempt.
  STRIPE_RATE_LIMIT_WAIT_MS: z.preprocess(emptyAsUndefined, int(60_000, 0, 600_000)),
  WORKER_CONCURRENCY: z.preprocess(emptyAsUndefined, int(10, 1, 200)),
  WORKER_POLL_INTERVAL_MS: z.preprocess(emptyAsUndefined, int(2_000, 50, 60_000)),
  RETRY_MAX_ATTEMPTS: z.preprocess(emptyAsUndefined, int(8, 1, 100)),
  RETRY_BASE_SECONDS: z.preprocess(emptyAsUndefined, seconds(30)),
  RETRY_MAX_SECONDS: z.preprocess(emptyAsUndefined, seconds(6 * 3600)),
  RETRY_JITTER: z.preprocess(emptyAsUndefined, z.coerce.number().min(0).max(1).default(0.2)),
  BALANCE_RETRY_SECONDS: z.preprocess(emptyAsUndefined, seconds(3600)),
  BALANCE_MAX_ATTEMPTS: z.preprocess(emptyAsUndefined, int(72, 1, 10_000)),
  // Dispatch: how often the worker looks for due rows (inside the database, no round trip), how long a row handed to a job stays
  // leased (not due) before it is handed out again, and how many of our jobs may wait in
  // graphile-worker's queue at once (0: twice WORKER_CONCURRENCY).
  DISPATCH_INTERVAL_MS: z.preprocess(emptyAsUndefined, int(10, 1, 1_000)),
  DISPATCH_LEASE_SECONDS: z.preprocess(emptyAsUndefined, seconds(120)),
  DISPATCH_MAX_WAITING_JOBS: z.preprocess(emptyAsUndefined, int(0, 0, 100_000)),
  // `migrate`: the lock_timeout of every migration step (a writer never queues behind a migration
  // for longer), and for how long in total a step that timed out on a lock is retried.
  MIGRATION_LOCK_TIMEOUT_MS: z.preprocess(emptyAsUndefined, int(MIGRATE_DEFAULTS.lockTimeoutMs, 10, 60_000)),
  MIGRATION_LOCK_RETRY_SECONDS: z.preprocess(emptyAsUndefined, seconds(MIGRATE_DEFAULTS.retryForMs / 1000)),
  METRICS_PORT: z.preprocess(emptyAsUndefined, int(0, 0, 65_535)),
  WEBHOOK_PORT: z.preprocess(emptyAsUndefined, int(0, 0, 65_535)),
  STRIPE_WEBHOOK_SECRET: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^whsec_\w+$/, 'must look like whsec_…')
      .optional(),
  ),
  LOG_LEVEL: z.preprocess(emptyAsUndefined, z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info')),
  // Unset: pretty on a terminal, JSON otherwise (see src/logger.ts).
  LOG_FORMAT: z.preprocess(emptyAsUndefined, z.enum(['json', 'pretty']).optional()),
  // The operator console (`seller-transfers console`); the rules that tie these together are in consoleConfig().
  CONSOLE_HOST: z.preprocess(
    emptyAsUndefined,
    z
      .string()
      .regex(/^[\w.:-]+$/, 'must be a host name or IP address')
      .default('127.0.0.1'),
  ),
  CONSOLE_PORT: z.preprocess(emptyAsUndefined, int(7070, 0, 65_535)),
  // name:role:scrypt-hash, comma-separated; `seller-transfers console --hash-password` makes a hash.
  CONSOLE_USERS: z.preprocess(emptyAsUndefined, z.string().optional()),
  CONSOLE_TLS_CERT_FILE: z.preprocess(emptyAsUndefined, z.string().optional()),
  CONSOLE_TLS_KEY_FILE: z.preprocess(emptyAsUndefined, z.string().optional()),
  // A TLS-terminating proxy in front: allows a non-loopback bind over plain HTTP and marks cookies Secure.
  CONSOLE_BEHIND_TLS_PROXY: z.preprocess(
    emptyAsUndefined,
    z
      .enum(['true', 'false'])
      .default('false')
      .transform((v) => v === 'true'),
  ),
  // Which X-Forwarded-For entries to believe (the client's address for the login limit and the log): unset, none.
  CONSOLE_TRUSTED_PROXIES: z.preprocess(emptyAsUndefined, trustedProxies.optional()),
  CONSOLE_SESSION_MINUTES: z.preprocess(emptyAsUndefined, int(480, 1, 7 * 24 * 60)),
  CONSOLE_BULK_MAX: z.preprocess(emptyAsUndefined, int(100, 1, 1_000)),
  // Failed logins from one client address within 15 minutes before further tries from it are refused.
  CONSOLE_LOGIN_MAX_FAILURES: z.preprocess(emptyAsUndefined, int(5, 1, 1_000)),
});

export type Config = z.infer<typeof schema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Parses `env` (default process.env). Throws ConfigError naming every bad variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration: ${problems.join('; ')}`);
  }
  const config = parsed.data;
  if (config.NODE_ENV === 'production') {
    if (!config.DATABASE_URL)
      throw new ConfigError(
        'invalid configuration: DATABASE_URL is required when NODE_ENV=production (no embedded PostgreSQL in production)',
      );
    if (!config.STRIPE_SECRET_KEY)
      throw new ConfigError('invalid configuration: STRIPE_SECRET_KEY is required when NODE_ENV=production (no simulator in production)');
  }
  if (config.WEBHOOK_PORT > 0 && !config.STRIPE_WEBHOOK_SECRET) {
    throw new ConfigError(
      'invalid configuration: WEBHOOK_PORT needs STRIPE_WEBHOOK_SECRET (events are only accepted with a valid signature)',
    );
  }
  if (config.DISPATCH_LEASE_SECONDS * 1000 < 2 * config.STRIPE_TIMEOUT_MS) {
    // A lease shorter than a slow Stripe call would hand a row that is still being worked on to a second job.
    throw new ConfigError('invalid configuration: DISPATCH_LEASE_SECONDS must be at least twice STRIPE_TIMEOUT_MS');
  }
  if (config.RETRY_MAX_SECONDS < config.RETRY_BASE_SECONDS) {
    throw new ConfigError('invalid configuration: RETRY_MAX_SECONDS must be >= RETRY_BASE_SECONDS');
  }
  return config;
}

export type StripeMode = 'live' | 'test' | 'simulator';

export interface StripeRequestBudgetConfig {
  mode: StripeMode;
  /** The fleet's budget for all Stripe requests (creates, reversals, lookups). */
  requestsPerSecond: number;
  /** The fleet's budget per rate-limited endpoint (POST /v1/transfers, POST /v1/transfers/{id}/reversals). */
  endpointPerSecond: number;
}

/**
 * Stripe's limits: 100 requests/s per account in live mode, 25/s in a sandbox (test keys),
 * 25/s per endpoint by default. Our defaults:
 * - test key or simulator: 20/s, 80 % of the sandbox's 25/s (headroom for window-edge effects,
 *   a developer's dashboard and scripts on the same account);
 * - live key: 25/s, a quarter of the account's 100/s: the account's limit is shared with the
 *   marketplace's own checkout traffic (charges, refunds), which must never be starved by payouts;
 * - per endpoint: 20/s, 80 % of Stripe's default 25/s per endpoint, the same margin, in both modes.
 * The budget is never above the explicit values; an endpoint budget above the global one is
 * allowed but has no effect (the global budget binds first).
 */
export function stripeRequestBudget(
  config: Pick<Config, 'STRIPE_SECRET_KEY' | 'STRIPE_REQUESTS_PER_SECOND' | 'STRIPE_ENDPOINT_REQUESTS_PER_SECOND'>,
): StripeRequestBudgetConfig {
  const key = config.STRIPE_SECRET_KEY;
  const mode: StripeMode = !key ? 'simulator' : /^(sk|rk)_live_/.test(key) ? 'live' : 'test';
  return {
    mode,
    requestsPerSecond: config.STRIPE_REQUESTS_PER_SECOND ?? (mode === 'live' ? 25 : 20),
    endpointPerSecond: config.STRIPE_ENDPOINT_REQUESTS_PER_SECOND ?? 20,
  };
}

/**
 * Whether the worker paces its Stripe calls with the fleet's request budget. Always against
 * Stripe itself, and whenever STRIPE_REQUESTS_PER_SECOND or STRIPE_ENDPOINT_REQUESTS_PER_SECOND
 * is set. Not by default against a Stripe-compatible server at STRIPE_API_BASE or the built-in
 * simulator, which have no limiters unless asked to (a 429 from them is still handled as one,
 * never as a failed attempt).
 */
export function stripeRequestBudgetEnabled(
  config: Pick<Config, 'STRIPE_SECRET_KEY' | 'STRIPE_API_BASE' | 'STRIPE_REQUESTS_PER_SECOND' | 'STRIPE_ENDPOINT_REQUESTS_PER_SECOND'>,
): boolean {
  if (config.STRIPE_REQUESTS_PER_SECOND !== undefined || config.STRIPE_ENDPOINT_REQUESTS_PER_SECOND !== undefined) return true;
  return !!config.STRIPE_SECRET_KEY && !config.STRIPE_API_BASE;
}

export interface ConsoleSettings {
  host: string;
  port: number;
  tls: { certFile: string; keyFile: string } | null;
  /** Cookies carry Secure: the browser reaches us over HTTPS (our TLS, or a TLS proxy in front). */
  secureCookies: boolean;
  /** Whose X-Forwarded-For entries give the client's address (CONSOLE_TRUSTED_PROXIES); false: nobody's. */
  trustProxy: false | string[];
  /** Bound to loopback: only loopback host names are served (a DNS-rebinding page gets nothing). */
  loopback: boolean;
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * The console's rules, checked before it listens: never anonymous, never plain HTTP off the
 * machine. Production needs CONSOLE_USERS (no one-time password there); a non-loopback bind
 * needs TLS or CONSOLE_BEHIND_TLS_PROXY=true, and configured users.
 */
export function consoleConfig(config: Config): ConsoleSettings {
  const { CONSOLE_HOST: host, CONSOLE_TLS_CERT_FILE: certFile, CONSOLE_TLS_KEY_FILE: keyFile } = config;
  if (config.NODE_ENV === 'production' && !config.CONSOLE_USERS) {
    throw new ConfigError(
      'invalid configuration: CONSOLE_USERS is required when NODE_ENV=production (the console never runs without credentials; see docs/console.md)',
    );
  }
  if (!certFile !== !keyFile) throw new ConfigError('invalid configuration: CONSOLE_TLS_CERT_FILE and CONSOLE_TLS_KEY_FILE go together');
  const tls = certFile && keyFile ? { certFile, keyFile } : null;
  if (!LOOPBACK.has(host)) {
    if (!tls && !config.CONSOLE_BEHIND_TLS_PROXY) {
      throw new ConfigError(
        `invalid configuration: CONSOLE_HOST=${host} is not loopback: set CONSOLE_TLS_CERT_FILE/CONSOLE_TLS_KEY_FILE, or CONSOLE_BEHIND_TLS_PROXY=true when a TLS proxy is in front`,
      );
    }
    if (!config.CONSOLE_USERS)
      throw new ConfigError(
        `invalid configuration: CONSOLE_HOST=${host} is not loopback: set CONSOLE_USERS (the one-time development password is for loopback only)`,
      );
  }
  return {
    host,
    port: config.CONSOLE_PORT,
    tls,
    secureCookies: !!tls || config.CONSOLE_BEHIND_TLS_PROXY,
    trustProxy: config.CONSOLE_TRUSTED_PROXIES ?? false,
    loopback: LOOPBACK.has(host),
  };
}
