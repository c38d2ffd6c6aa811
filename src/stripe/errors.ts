// Sorting Stripe failures by what they tell us about the money.
import Stripe from 'stripe';

export type FailureKind =
  /** Stripe's limiters refused the request (429): Stripe did nothing. Not a failed attempt: the
   * same request, same key, is made again when the fleet's request budget allows. */
  | 'rate_limited'
  /** Stripe did not act (auth/config problem): try again later, same state. */
  | 'transient'
  /** Stripe answered but may or may not have acted (5xx, saved under the key): look it up, then use a new key. */
  | 'indeterminate'
  /** No answer (timeout, dropped connection, 409 key still in use): the request may still be running at
   * Stripe, invisible to a lookup; re-send the same key until Stripe answers. */
  | 'unanswered'
  /** The connected account lacks the funds for a reversal: retry on the long balance schedule. */
  | 'balance_insufficient'
  /** Stripe refused for good (invalid request, permission, account gone). */
  | 'permanent';

export interface ClassifiedFailure {
  kind: FailureKind;
  /** One line for last_error and the history: type/code and Stripe's message, never a secret. */
  message: string;
}

export function classifyStripeError(err: unknown): ClassifiedFailure {
  if (!(err instanceof Stripe.errors.StripeError)) {
    // Not from Stripe's client: we cannot know whether the request left the process.
    return { kind: 'unanswered', message: `unexpected: ${err instanceof Error ? err.message : String(err)}` };
  }
  // rawType is Stripe's own error type (api_error, invalid_request_error…); type is the SDK class.
  const message = `${err.rawType ?? err.type}${err.code ? `/${err.code}` : ''}${err.statusCode ? ` (${err.statusCode})` : ''}: ${err.message}`;
  if (err.code === 'balance_insufficient') return { kind: 'balance_insufficient', message };
  if (err instanceof Stripe.errors.StripeRateLimitError || err.statusCode === 429) return { kind: 'rate_limited', message };
  // The first request with this key is still executing at Stripe.
  if (err.statusCode === 409 || err.code === 'idempotency_key_in_use') return { kind: 'unanswered', message };
  // A bad API key is our configuration, not the transfer's fault: never give a payout up for it.
  if (err instanceof Stripe.errors.StripeAuthenticationError) return { kind: 'transient', message };
  // Timeouts and dropped connections: the request may have reached Stripe and still be running.
  if (err instanceof Stripe.errors.StripeConnectionError) return { kind: 'unanswered', message };
  // Same key with other parameters: the earlier attempt's outcome is unknown here.
  if (err instanceof Stripe.errors.StripeIdempotencyError) return { kind: 'indeterminate', message };
  if ((err.statusCode ?? 500) >= 500 || err instanceof Stripe.errors.StripeAPIError) return { kind: 'indeterminate', message };
  if (err instanceof Stripe.errors.StripeInvalidRequestError || err instanceof Stripe.errors.StripePermissionError) {
    return { kind: 'permanent', message };
  }
  return { kind: 'unanswered', message };
}

/** Whether the next attempt must use a new idempotency key: Stripe answered, so the old key only replays that answer. */
export function needsNewKey(kind: FailureKind): boolean {
  return kind === 'indeterminate' || kind === 'balance_insufficient' || kind === 'permanent';
}
