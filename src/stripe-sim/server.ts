// HTTP front of the simulator. The request pipeline mirrors the order in which Stripe's
// layers act, because that order decides what a retrying worker observes:
//   auth → route → limiters (global/endpoint rate, concurrency: 429, nothing saved)
//   → injected rate-limit fault (nothing saved) → idempotency lookup/reservation
//   → latency (injected + modelled) → endpoint (error_before / effect / error_after) → save under key → respond or drop.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { handleControl } from './control.ts';
import type { PlatformBalance, SimCharge } from './funding.ts';
import { Faults, type DrawnFault } from './faults.ts';
import { IdempotencyStore } from './idempotency.ts';
import { LatencyModel, Limiter, TrafficStats, type SimLatency, type SimLimits, type SimStats } from './limits.ts';
import { SimState } from './state.ts';
import type { CallRecord, FaultSpec, Operation, RandomFaults, StripeSimulator, StripeSimulatorOptions } from './types.ts';
import { ApiError, canonicalForm, newId, parseForm, type Params, type StripeErrorBody } from './wire.ts';

interface Route {
  operation: Operation;
  endpoint: string;
  run: (s: SimState, p: Params, key: string | null) => unknown;
}
interface Reply {
  status: number;
  body: string;
  outcome: string;
}

/** The platform's side: charges that fund transfers, and its balance (src/stripe-sim/funding.ts). */
function platformRoute(method: string, path: string): Route | null {
  if (method === 'GET' && path === '/v1/balance')
    return { operation: 'balance.retrieve', endpoint: 'GET /v1/balance', run: (s) => s.platform.balanceObject() };
  const m = /^\/v1\/charges(?:\/([^/]+))?$/.exec(path);
  if (!m) return null;
  const id = m[1] === undefined ? null : decodeURIComponent(m[1]);
  if (method === 'POST' && id === null)
    return { operation: 'charge.create', endpoint: 'POST /v1/charges', run: (s, p) => s.platform.createCharge(p) };
  if (method === 'GET' && id !== null)
    return { operation: 'charge.retrieve', endpoint: 'GET /v1/charges/{id}', run: (s) => s.platform.retrieveCharge(id) };
  return null;
}

function route(method: string, path: string): Route | null {
  const m = /^\/v1\/transfers(?:\/([^/]+))?(\/reversals)?$/.exec(path);
  if (!m) return platformRoute(method, path);
  const id = m[1] === undefined ? null : decodeURIComponent(m[1]);
  const op = `${method} ${id === null ? '-' : 'id'}${m[2] ? ' reversals' : ''}`;
  // endpoint: Stripe's limiter key, the method and the path with ids as {id}.
  const endpoint = `${method} /v1/transfers${id === null ? '' : '/{id}'}${m[2] ? '/reversals' : ''}`;
  switch (op) {
    case 'POST -':
      return { operation: 'transfer.create', endpoint, run: (s, p, key) => s.createTransfer(p, key) };
    case 'GET -':
      return { operation: 'transfer.list', endpoint, run: (s, p) => s.listTransfers(p) };
    case 'GET id':
      return { operation: 'transfer.retrieve', endpoint, run: (s) => s.retrieveTransfer(id!) };
    case 'POST id reversals':
      return { operation: 'reversal.create', endpoint, run: (s, p, key) => s.createReversal(id!, p, key) };
    case 'GET id reversals':
      return { operation: 'reversal.list', endpoint, run: (s, p) => s.listReversals(id!, p) };
    default:
      return null;
  }
}

const errorReply = (status: number, error: StripeErrorBody, outcome = `error:${error.code ?? error.type}`): Reply => ({
  status,
  body: JSON.stringify({ error }),
  outcome,
});
const apiError = (outcome: string): Reply =>
  errorReply(500, { type: 'api_error', message: 'An unknown error occurred while processing your request (simulated).' }, outcome);

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export class Simulator implements StripeSimulator {
  url = '';
  port = 0;
  private state: SimState;
  private faults = new Faults();
  private keys: IdempotencyStore;
  private log: CallRecord[] = [];
  private limiter: Limiter;
  private latencyModel: LatencyModel;
  private traffic = new TrafficStats();
  readonly server = createServer((req, res) => {
    this.handle(req, res).catch((err: unknown) => {
      if (!res.headersSent && !res.destroyed) res.writeHead(500).end(String(err));
    });
  });

  constructor(private readonly opts: StripeSimulatorOptions) {
    this.state = new SimState(opts.defaultBalanceCents ?? 0);
    this.keys = new IdempotencyStore(opts.idempotencyTtlMs ?? 24 * 3600 * 1000);
    this.limiter = new Limiter(opts.limits);
    this.latencyModel = new LatencyModel(opts.latency);
  }

  limits(): SimLimits {
    return { ...this.limiter.limits };
  }
  setLimits(l: Partial<SimLimits>): SimLimits {
    this.limiter.set(l);
    return this.limits();
  }
  latency(): SimLatency {
    return structuredClone(this.latencyModel.latency);
  }
  setLatency(l: Partial<SimLatency>): SimLatency {
    this.latencyModel.set(l);
    return this.latency();
  }
  stats(): SimStats {
    return this.traffic.snapshot();
  }
  resetStats(): void {
    this.traffic.reset();
  }

  setBalance(account: string, currency: string, cents: number): void {
    this.state.setBalance(account, currency, cents);
  }
  balance(account: string, currency: string): number {
    return this.state.balance(account, currency);
  }
  removeAccount(account: string): void {
    this.state.removeAccount(account);
  }
  platformBalance(currency: string): PlatformBalance {
    return this.state.platform.balance(currency);
  }
  setPlatformBalance(currency: string, amount: number): void {
    this.state.platform.setAvailable(currency, amount);
  }
  makeCharge(c: Parameters<StripeSimulator['makeCharge']>[0]): SimCharge {
    return this.state.platform.makeCharge(c);
  }
  injectFault(f: FaultSpec): void {
    this.faults.inject(f);
  }
  setRandomFaults(r: RandomFaults | null): void {
    this.faults.setRandom(r);
  }
  clearFaults(): void {
    this.faults.clear();
  }
  expireIdempotencyKeys(): void {
    this.keys.expireAll();
  }
  ledger() {
    return structuredClone(this.state.ledger);
  }
  calls() {
    return structuredClone(this.log);
  }
  transfers() {
    return this.state.transfers();
  }
  reset(): void {
    this.state = new SimState(this.opts.defaultBalanceCents ?? 0);
    this.faults.clear();
    this.keys.clear();
    this.log = [];
    this.limiter = new Limiter(this.opts.limits); // as started; in-flight requests release into the old one
    this.latencyModel = new LatencyModel(this.opts.latency);
    this.traffic.reset();
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections(); // stripe-node keeps sockets alive; don't wait for them
    await closed;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = new URL(req.url ?? '/', 'http://sim');
    if (url.pathname.startsWith('/_sim/')) return handleControl(this, req.method ?? 'GET', url, body, res);

    const method = req.method ?? 'GET';
    const requestId = newId('req_');
    const key = method === 'POST' ? ((req.headers['idempotency-key'] as string | undefined) ?? null) : null; // Stripe ignores keys on GET
    const r = route(method, url.pathname);
    const call: CallRecord = {
      seq: this.log.length + 1,
      method,
      path: url.pathname,
      operation: r?.operation ?? null,
      endpoint: r?.endpoint ?? null,
      idempotencyKey: key,
      outcome: 'ok',
      status: null,
      fault: null,
      rateLimitedReason: null,
      at: new Date().toISOString(),
    };
    this.log.push(call);
    const send = (reply: Reply, headers: Record<string, string> = {}) => {
      call.status = reply.status;
      call.outcome = reply.outcome;
      if (res.destroyed) return; // closed under us (close() during latency)
      res.writeHead(reply.status, { 'Content-Type': 'application/json', 'Request-Id': requestId, ...headers }).end(reply.body);
    };

    const auth = req.headers.authorization;
    if (!auth || !/^Bearer sk_\S+$/.test(auth)) {
      return send(
        errorReply(401, {
          type: 'invalid_request_error',
          message: auth ? 'Invalid API Key provided. Secret keys start with sk_.' : 'You did not provide an API key.',
        }),
      );
    }
    if (!r) {
      return send(errorReply(404, { type: 'invalid_request_error', message: `Unrecognized request URL (${method}: ${url.pathname}).` }));
    }

    // Stripe's limiters act before anything else happens: a 429 leaves no trace but the log line.
    const limiter = this.limiter;
    const limited = limiter.admit(r.endpoint);
    this.traffic.record(r.endpoint, limited, limiter.inFlight);
    if (limited) {
      call.rateLimitedReason = limited;
      return send(
        errorReply(
          429,
          {
            type: 'invalid_request_error',
            code: 'rate_limit',
            message: limited.endsWith('concurrency')
              ? 'This request was rate limited: too many concurrent requests (simulated).'
              : 'Request rate limit exceeded. You can learn more about rate limits here https://stripe.com/docs/rate-limits (simulated).',
          },
          `rate_limited:${limited}`,
        ),
        { 'Stripe-Rate-Limited-Reason': limited },
      );
    }
    try {
      await this.admitted(r, req, res, body, url, method, key, requestId, call, send);
    } finally {
      limiter.release();
    }
  }

  private async admitted(
    r: Route,
    req: IncomingMessage,
    res: ServerResponse,
    body: string,
    url: URL,
    method: string,
    key: string | null,
    requestId: string,
    call: CallRecord,
    send: (reply: Reply, headers?: Record<string, string>) => void,
  ): Promise<void> {
    // Draw synchronously on arrival so the fault sequence follows request order (reproducible chaos).
    const fault = this.faults.draw(r.operation);
    call.fault = fault?.kind ?? null;
    if (fault?.kind === 'rate_limit') {
      return send(
        errorReply(
          429,
          { type: 'invalid_request_error', code: 'rate_limit', message: 'Too many requests hit the API too quickly (simulated).' },
          'fault:rate_limit',
        ),
      );
    }

    const raw = method === 'POST' ? body : url.search.slice(1);
    const fingerprint = `${method} ${url.pathname}\n${canonicalForm(raw)}`;
    // Reserve the key before any latency so a concurrent duplicate sees 409 "in use".
    const idem = key ? this.keys.begin(key, fingerprint) : ({ kind: 'new' } as const);
    const delay = (fault?.kind === 'latency' ? fault.latencyMs : 0) + this.latencyModel.draw();
    if (delay > 0) await sleep(delay);

    let reply: Reply;
    const headers: Record<string, string> = {};
    if (idem.kind === 'replay') {
      reply = { status: idem.saved.status, body: idem.saved.body, outcome: 'replayed' };
      Object.assign(headers, { 'Idempotent-Replayed': 'true', 'Original-Request': idem.saved.requestId });
    } else if (idem.kind === 'mismatch') {
      reply = errorReply(400, {
        type: 'idempotency_error',
        message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
      });
    } else if (idem.kind === 'in_use') {
      reply = errorReply(409, {
        type: 'invalid_request_error',
        code: 'idempotency_key_in_use',
        message:
          'There is currently another in-progress request using this Stripe token (that probably means you clicked twice), and the server is unable to determine whether this request conflicts with the earlier one.',
      });
    } else {
      reply = this.execute(r, parseForm(raw), key, fault);
      // The endpoint started executing, so its outcome (success, 4xx, or 500) belongs to the key.
      if (key) this.keys.save(key, { fingerprint, status: reply.status, body: reply.body, requestId });
    }

    if (fault?.kind === 'drop_after') {
      call.outcome = 'fault:drop_after';
      req.socket.destroy(); // effect done and saved, but the client never hears back
      return;
    }
    send(reply, headers);
  }

  private execute(r: Route, params: Params, key: string | null, fault: DrawnFault | null): Reply {
    if (fault?.kind === 'error_before') return apiError('fault:error_before');
    let reply: Reply;
    try {
      reply = { status: 200, body: JSON.stringify(r.run(this.state, params, key)), outcome: 'ok' };
    } catch (e) {
      reply = e instanceof ApiError ? errorReply(e.status, e.body) : apiError(`error:internal`);
    }
    return fault?.kind === 'error_after' ? apiError('fault:error_after') : reply;
  }
}

export async function startStripeSimulator(opts: StripeSimulatorOptions = {}): Promise<StripeSimulator> {
  const sim = new Simulator(opts);
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((resolve, reject) => {
    sim.server.once('error', reject);
    sim.server.listen(opts.port ?? 0, host, () => resolve());
  });
  sim.port = (sim.server.address() as AddressInfo).port;
  sim.url = `http://${host.includes(':') ? `[${host}]` : host}:${sim.port}`;
  return sim;
}
