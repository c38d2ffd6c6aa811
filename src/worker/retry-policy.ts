// When to try again. The row carries the truth (retry_count, next_retry_at, last_error); this
// only computes the next time from the configured policy.
import type { FailureKind } from '../stripe/errors.ts';

export interface RetryPolicy {
  maxAttempts: number;
  baseSeconds: number;
  maxSeconds: number;
  /** 0..1: each delay is reduced by up to this fraction at random, to spread herds. */
  jitter: number;
  balanceRetrySeconds: number;
  balanceMaxAttempts: number;
}

/**
 * Delay before the next attempt after `failedAttempts` failures, or null to give up now.
 * Only a definite refusal gives up here (Stripe executed the request and said no: permanent,
 * or balance_insufficient past its own limit). After a transient, unanswered or indeterminate failure we
 * cannot know Stripe did nothing, so there is always a next run; past maxAttempts that run
 * only looks the object up and then gives up (see attemptsExhausted).
 * Exponential: base * 2^(failedAttempts - 1), capped at maxSeconds, minus up to `jitter` of it.
 */
export function retryDelaySeconds(
  policy: RetryPolicy,
  failedAttempts: number,
  kind: FailureKind,
  random: () => number = Math.random,
): number | null {
  if (kind === 'permanent') return null;
  if (kind === 'balance_insufficient') {
    if (failedAttempts >= policy.balanceMaxAttempts) return null;
    return policy.balanceRetrySeconds * (1 - policy.jitter * random());
  }
  const exponential = Math.min(policy.maxSeconds, policy.baseSeconds * 2 ** Math.max(0, failedAttempts - 1));
  return exponential * (1 - policy.jitter * random());
}

/** True when a row has used its attempts: the next run looks up, adopts or gives up, and never calls create again. */
export function attemptsExhausted(policy: RetryPolicy, retryCount: number, lastError: string | null): boolean {
  const limit = lastError?.includes('balance_insufficient') ? policy.balanceMaxAttempts : policy.maxAttempts;
  return retryCount >= limit;
}

export function retryPolicyFromConfig(c: {
  RETRY_MAX_ATTEMPTS: number;
  RETRY_BASE_SECONDS: number;
  RETRY_MAX_SECONDS: number;
  RETRY_JITTER: number;
  BALANCE_RETRY_SECONDS: number;
  BALANCE_MAX_ATTEMPTS: number;
}): RetryPolicy {
  return {
    maxAttempts: c.RETRY_MAX_ATTEMPTS,
    baseSeconds: c.RETRY_BASE_SECONDS,
    maxSeconds: c.RETRY_MAX_SECONDS,
    jitter: c.RETRY_JITTER,
    balanceRetrySeconds: c.BALANCE_RETRY_SECONDS,
    balanceMaxAttempts: c.BALANCE_MAX_ATTEMPTS,
  };
}
