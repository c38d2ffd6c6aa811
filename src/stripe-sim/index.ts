// Public entry point of the Stripe Connect simulator (see server.ts for the request pipeline).
export { startStripeSimulator } from './server.ts';
export type {
  CallRecord,
  FaultKind,
  FaultSpec,
  LedgerEntry,
  Operation,
  RandomFaults,
  SimReversal,
  SimTransfer,
  StripeSimulator,
  StripeSimulatorOptions,
} from './types.ts';
export type { PlatformBalance, SimCharge } from './funding.ts';
export type { EndpointStats, RateLimitedReason, SecondStats, SimLatency, SimLimits, SimStats } from './limits.ts';
