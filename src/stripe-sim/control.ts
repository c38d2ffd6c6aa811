// /_sim/ control surface: lets a worker running in another process be tested against a
// simulator owned by the test (or the reverse). Plain JSON in and out, no auth.
import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import type { StripeSimulator } from './types.ts';

const operation = z.enum([
  'transfer.create',
  'transfer.retrieve',
  'transfer.list',
  'reversal.create',
  'reversal.list',
  'charge.create',
  'charge.retrieve',
  'balance.retrieve',
]);
const kind = z.enum(['latency', 'rate_limit', 'error_before', 'error_after', 'drop_after']);
const faultSpec = z.object({
  operation: z.union([operation, z.literal('any')]),
  kind,
  times: z.number().int().positive().optional(),
  latencyMs: z.number().nonnegative().optional(),
});
const randomFaults = z
  .object({
    rate: z.number().min(0).max(1),
    kinds: z.array(kind),
    operations: z.array(operation).optional(),
    latencyMs: z.number().nonnegative().optional(),
    seed: z.number().int().optional(),
  })
  .nullable();
const faultsBody = z.union([z.object({ clear: z.literal(true) }), z.object({ random: randomFaults }), faultSpec]);
const balanceBody = z.object({ account: z.string().min(1), currency: z.string().length(3), cents: z.number().int() });
const platformBalanceBody = z.strictObject({ currency: z.string().length(3), available: z.number().int() });
const chargeBody = z.strictObject({
  amount: z.number().int().positive(),
  currency: z.string().length(3),
  availableInSeconds: z.number().int().optional(),
  transferGroup: z.string().nullable().optional(),
});
const accountBody = z.object({ account: z.string().min(1) });
const limit = z.number().positive().nullable().optional();
const limitsBody = z.strictObject({
  globalPerSecond: limit,
  endpointPerSecond: limit,
  concurrency: z.number().int().positive().nullable().optional(),
});
const latencyBody = z.strictObject({
  fixedMs: z.number().nonnegative().optional(),
  distribution: z
    .strictObject({
      kind: z.literal('lognormal').default('lognormal'),
      p50Ms: z.number().positive(),
      p99Ms: z.number().positive(),
      seed: z.number().int().default(1),
    })
    .refine((d) => d.p99Ms >= d.p50Ms, 'p99Ms must be >= p50Ms')
    .nullable()
    .optional(),
});
const defined = <T extends object>(o: T): Partial<T> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;

function json(res: ServerResponse, status: number, value: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(value));
}

function parse<T>(schema: z.ZodType<T>, body: string): T {
  return schema.parse(body.trim() === '' ? {} : JSON.parse(body));
}

export function handleControl(sim: StripeSimulator, method: string, url: URL, body: string, res: ServerResponse): void {
  try {
    switch (`${method} ${url.pathname}`) {
      case 'GET /_sim/ledger':
        return json(res, 200, sim.ledger());
      case 'GET /_sim/calls':
        return json(res, 200, sim.calls());
      case 'GET /_sim/transfers':
        return json(res, 200, sim.transfers());
      case 'GET /_sim/balance': {
        const q = balanceBody.omit({ cents: true }).parse(Object.fromEntries(url.searchParams));
        return json(res, 200, { ...q, cents: sim.balance(q.account, q.currency) });
      }
      case 'POST /_sim/balance': {
        const b = parse(balanceBody, body);
        sim.setBalance(b.account, b.currency, b.cents);
        return json(res, 200, { ok: true });
      }
      case 'GET /_sim/platform-balance':
        return json(
          res,
          200,
          sim.platformBalance(z.object({ currency: z.string().length(3) }).parse(Object.fromEntries(url.searchParams)).currency),
        );
      case 'POST /_sim/platform-balance': {
        const b = parse(platformBalanceBody, body);
        sim.setPlatformBalance(b.currency, b.available);
        return json(res, 200, sim.platformBalance(b.currency));
      }
      case 'POST /_sim/charges':
        return json(res, 200, sim.makeCharge(parse(chargeBody, body)));
      case 'POST /_sim/faults': {
        const f = parse(faultsBody, body);
        if ('clear' in f) sim.clearFaults();
        else if ('random' in f) sim.setRandomFaults(f.random);
        else sim.injectFault(f);
        return json(res, 200, { ok: true });
      }
      case 'POST /_sim/remove-account':
        sim.removeAccount(parse(accountBody, body).account);
        return json(res, 200, { ok: true });
      case 'POST /_sim/expire-idempotency-keys':
        sim.expireIdempotencyKeys();
        return json(res, 200, { ok: true });
      case 'POST /_sim/reset':
        sim.reset();
        return json(res, 200, { ok: true });
      case 'GET /_sim/limits':
        return json(res, 200, sim.limits());
      case 'POST /_sim/limits':
        return json(res, 200, sim.setLimits(defined(parse(limitsBody, body))));
      case 'GET /_sim/latency':
        return json(res, 200, sim.latency());
      case 'POST /_sim/latency':
        return json(res, 200, sim.setLatency(defined(parse(latencyBody, body))));
      case 'GET /_sim/stats':
        return json(res, 200, sim.stats());
      case 'POST /_sim/stats/reset':
        sim.resetStats();
        return json(res, 200, { ok: true });
      default:
        return json(res, 404, { error: `unknown control endpoint ${method} ${url.pathname}` });
    }
  } catch (e) {
    json(res, 400, { error: e instanceof z.ZodError ? z.prettifyError(e) : String(e) });
  }
}
