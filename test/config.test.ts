// Bad configuration fails fast, naming the variable; secrets are never echoed.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, stripeRequestBudget } from '../src/config.ts';

describe('loadConfig', () => {
  it('has documented defaults', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      WORKER_CONCURRENCY: 10,
      RETRY_MAX_ATTEMPTS: 8,
      RETRY_BASE_SECONDS: 30,
      RETRY_MAX_SECONDS: 21600,
      RETRY_JITTER: 0.2,
      NODE_ENV: 'development',
    });
    expect(c).toMatchObject({ MIGRATION_LOCK_TIMEOUT_MS: 1500, MIGRATION_LOCK_RETRY_SECONDS: 120 });
    expect(c.DATABASE_URL).toBeUndefined();
  });

  it.each([
    ['WORKER_CONCURRENCY', '0'],
    ['WORKER_CONCURRENCY', 'ten'],
    ['RETRY_JITTER', '1.5'],
    ['RETRY_BASE_SECONDS', '-1'],
    ['DATABASE_URL', 'mysql://x'],
    ['STRIPE_API_BASE', 'not a url'],
    ['LOG_LEVEL', 'loud'],
    ['STRIPE_REQUESTS_PER_SECOND', '0'],
    ['STRIPE_REQUESTS_PER_SECOND', 'fast'],
    ['STRIPE_REQUESTS_PER_SECOND', '-5'],
    ['STRIPE_ENDPOINT_REQUESTS_PER_SECOND', '0'],
    ['STRIPE_ENDPOINT_REQUESTS_PER_SECOND', '1e9'],
    ['MIGRATION_LOCK_TIMEOUT_MS', '0'],
    ['MIGRATION_LOCK_TIMEOUT_MS', '1.5s'],
    ['MIGRATION_LOCK_RETRY_SECONDS', '-1'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^invalid configuration: .*${name}`));
  });

  it('rejects a malformed Stripe key without printing it', () => {
    const secret = 'pk_live_this_is_not_a_secret_key_but_looks_private';
    let message = '';
    try {
      loadConfig({ STRIPE_SECRET_KEY: secret });
    } catch (e) {
      expect(e).toBeInstanceOf(ConfigError);
      message = (e as Error).message;
    }
    expect(message).toMatch(/STRIPE_SECRET_KEY/);
    expect(message).not.toContain(secret);
  });

  it('refuses the embedded database and the simulator in production', () => {
    expect(() => loadConfig({ NODE_ENV: 'production', STRIPE_SECRET_KEY: 'sk_live_abc' })).toThrow(/DATABASE_URL is required/);
    expect(() => loadConfig({ NODE_ENV: 'production', DATABASE_URL: 'postgres://x/y' })).toThrow(/STRIPE_SECRET_KEY is required/);
  });

  it('rejects a cap below the base', () => {
    expect(() => loadConfig({ RETRY_BASE_SECONDS: '100', RETRY_MAX_SECONDS: '10' })).toThrow(/RETRY_MAX_SECONDS/);
  });

  it('derives the Stripe request budget from the key mode unless set', () => {
    expect(stripeRequestBudget(loadConfig({}))).toEqual({ mode: 'simulator', requestsPerSecond: 20, endpointPerSecond: 20 });
    expect(stripeRequestBudget(loadConfig({ STRIPE_SECRET_KEY: 'sk_test_abc' }))).toEqual({
      mode: 'test',
      requestsPerSecond: 20,
      endpointPerSecond: 20,
    });
    expect(stripeRequestBudget(loadConfig({ STRIPE_SECRET_KEY: 'rk_test_abc' })).requestsPerSecond).toBe(20);
    expect(stripeRequestBudget(loadConfig({ STRIPE_SECRET_KEY: 'sk_live_abc' }))).toEqual({
      mode: 'live',
      requestsPerSecond: 25,
      endpointPerSecond: 20,
    });
    expect(
      stripeRequestBudget(
        loadConfig({ STRIPE_SECRET_KEY: 'rk_live_abc', STRIPE_REQUESTS_PER_SECOND: '60', STRIPE_ENDPOINT_REQUESTS_PER_SECOND: '12.5' }),
      ),
    ).toEqual({ mode: 'live', requestsPerSecond: 60, endpointPerSecond: 12.5 });
  });
});
