// The Stripe simulator in a process of its own (the payout-day figure), so that serving the fake
// Stripe API does not share an event loop with the worker being measured: in production Stripe
// is someone else's CPU. Prints {"url": ...} on stdout once listening; the bench drives it
// through the simulator's /_sim/ control endpoints. Run: node bin/run-ts.js bench/sim-process.ts
import { startStripeSimulator } from '../src/stripe-sim/index.ts';

const sim = await startStripeSimulator({ port: 0 });
process.stdout.write(`${JSON.stringify({ url: sim.url })}\n`);
const stop = () => void sim.close().finally(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
