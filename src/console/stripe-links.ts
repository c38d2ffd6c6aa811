// Links to the Stripe Dashboard, in test or live mode by the configured key's mode. Against
// the simulator (no key) there is no dashboard to link to.
import type { StripeMode } from '../config.ts';

export function dashboardUrl(mode: StripeMode, id: string | null): string | null {
  if (!id || mode === 'simulator') return null;
  const base = mode === 'live' ? 'https://dashboard.stripe.com' : 'https://dashboard.stripe.com/test';
  if (id.startsWith('acct_')) return `${base}/connect/accounts/${encodeURIComponent(id)}`;
  if (id.startsWith('tr_')) return `${base}/connect/transfers/${encodeURIComponent(id)}`;
  return null;
}
