import type Stripe from 'stripe';

/** Resolves to the rejection of `p` (a Stripe call), failing the test if it resolved instead. */
export async function failure(p: Promise<unknown>): Promise<Stripe.errors.StripeError> {
  try {
    await p;
  } catch (e) {
    return e as Stripe.errors.StripeError;
  }
  throw new Error('expected the Stripe call to fail');
}
