// Where the database and Stripe come from. Production: DATABASE_URL and STRIPE_SECRET_KEY.
// Development defaults: an embedded PostgreSQL under DATA_DIR and the built-in Stripe
// simulator on loopback, each announced in one log line.
import path from 'node:path';
import type { Config } from './config.ts';
import { createDatabase, withDatabase } from './db/connection.ts';
import { startEmbeddedPostgres } from './db/embedded.ts';
import type { AppLogger } from './logger.ts';
import type { StripeTarget } from './stripe/client.ts';

export interface Runtime {
  databaseUrl: string;
  stripe: StripeTarget;
  close(): Promise<void>;
}

const EMBEDDED_PORT = 54329;
const LOCAL_KEY = 'sk_test_local_simulator';

export async function resolveDatabase(config: Config, logger: AppLogger): Promise<{ url: string; close(): Promise<void> }> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, close: async () => {} };
  const dir = path.resolve(config.DATA_DIR, 'pg');
  const pg = await startEmbeddedPostgres({ dir, persistent: true, port: EMBEDDED_PORT });
  await createDatabase(pg.url, 'seller_transfers');
  const url = withDatabase(pg.url, 'seller_transfers');
  logger.info({ databaseUrl: url.replace(/:[^:@/]*@/, ':***@'), dataDir: dir }, `no DATABASE_URL: using an embedded PostgreSQL at 127.0.0.1:${EMBEDDED_PORT}, data in ${dir}`);
  return { url, close: pg.stop };
}

export async function resolveStripe(config: Config, logger: AppLogger): Promise<{ target: StripeTarget; close(): Promise<void> }> {
  const timeoutMs = config.STRIPE_TIMEOUT_MS;
  if (config.STRIPE_SECRET_KEY) {
    return { target: { secretKey: config.STRIPE_SECRET_KEY, apiBase: config.STRIPE_API_BASE, timeoutMs }, close: async () => {} };
  }
  if (config.STRIPE_API_BASE) {
    logger.info({ stripeApiBase: config.STRIPE_API_BASE }, 'no STRIPE_SECRET_KEY: using the Stripe-compatible server at STRIPE_API_BASE with a local test key');
    return { target: { secretKey: LOCAL_KEY, apiBase: config.STRIPE_API_BASE, timeoutMs }, close: async () => {} };
  }
  // Loaded only when used: the operator commands that never need it start faster without it.
  const { startStripeSimulator } = await import('./stripe-sim/index.ts');
  const sim = await startStripeSimulator({ port: 0 });
  logger.info({ stripeApiBase: sim.url }, `no STRIPE_SECRET_KEY: using the built-in Stripe simulator at ${sim.url} (no real money moves)`);
  return { target: { secretKey: LOCAL_KEY, apiBase: sim.url, timeoutMs }, close: () => sim.close() };
}

export async function resolveRuntime(config: Config, logger: AppLogger, need: { stripe: boolean }): Promise<Runtime> {
  const db = await resolveDatabase(config, logger);
  try {
    const stripe = need.stripe ? await resolveStripe(config, logger) : { target: { secretKey: '', timeoutMs: 0 }, close: async () => {} };
    return {
      databaseUrl: db.url,
      stripe: stripe.target,
      close: async () => {
        await stripe.close();
        await db.close();
      },
    };
  } catch (e) {
    await db.close();
    throw e;
  }
}
