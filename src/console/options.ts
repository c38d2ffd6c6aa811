// What the console is built from (buildConsoleApp in app.ts): its own module, so the pages that
// take it need not import the app that imports them.
import type { StripeMode } from '../config.ts';
import type { AppLogger } from '../logger.ts';
import type { ConsoleDb } from './db.ts';
import type { ConsoleUser } from './users.ts';

export interface ConsoleOptions {
  db: ConsoleDb;
  users: ConsoleUser[];
  logger: AppLogger;
  /** The configured key's mode (config.ts stripeRequestBudget): the badge on every page. */
  stripeMode: StripeMode;
  /** STRIPE_API_BASE is set (a Stripe-compatible server): the badge says so. */
  stripeApiBase?: boolean;
  secureCookies: boolean;
  sessionMinutes: number;
  bulkMax: number;
  loginMaxFailures: number;
  /** The first wait after a failed login for a name (it doubles per failure); default 250 ms. */
  loginFirstDelayMs?: number;
  https?: { key: Buffer; cert: Buffer } | null;
  /**
   * Whose X-Forwarded-For entries to believe (fastify's trustProxy, CONSOLE_TRUSTED_PROXIES): the
   * proxies' addresses; false (the default): nobody's, the client's address is the socket's.
   */
  trustProxy?: false | string[];
  /** Bound to loopback: refuse any Host header but a loopback name (DNS rebinding). */
  loopbackOnly?: boolean;
}
