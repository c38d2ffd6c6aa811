// The real `stripe` package makes every call. STRIPE_API_BASE points it at a Stripe-compatible
// server (the built-in simulator, stripe-mock); unset, it talks to Stripe itself.
import Stripe from 'stripe';

export interface StripeTarget {
  secretKey: string;
  /** e.g. http://127.0.0.1:12111; undefined = api.stripe.com */
  apiBase?: string;
  timeoutMs: number;
}

export function createStripeClient(target: StripeTarget): Stripe {
  const base = target.apiBase ? new URL(target.apiBase) : undefined;
  return new Stripe(target.secretKey, {
    // Our own idempotency keys and our own retry schedule (on the row) decide what happens after
    // a failure, so the SDK must not retry with keys of its own making.
    maxNetworkRetries: 0,
    timeout: target.timeoutMs,
    appInfo: { name: 'seller-transfers' },
    ...(base && {
      host: base.hostname,
      port: Number(base.port || (base.protocol === 'https:' ? 443 : 80)),
      protocol: base.protocol.replace(':', '') as 'http' | 'https',
    }),
  });
}
