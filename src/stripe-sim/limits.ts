// Stripe's limiters, latency and traffic statistics for the simulator.
//
// Limiters (checked on arrival, before idempotency and before any effect, so a 429 did nothing):
//   global-rate          more than `globalPerSecond` admitted requests in the sliding second before this one
//   endpoint-rate        more than `endpointPerSecond` admitted requests to this endpoint in that second
//   global-concurrency   `concurrency` requests already in flight
// Only admitted requests count towards the windows (a rejected request does not extend the
// penalty), which is how a token/window limiter that answers "no" without charging behaves.
// null = unlimited. Endpoints are Stripe's "method + path template", e.g. 'POST /v1/transfers'.
//
// Latency: every admitted /v1 request waits `fixedMs` plus, when `distribution` is set, a
// log-normal draw with the given median (p50Ms) and 99th percentile (p99Ms), from a seeded PRNG.
// log-normal: X = exp(mu + sigma Z), mu = ln(p50), sigma = ln(p99/p50) / 2.3263 (z of 0.99).
import { mulberry32 } from './random.ts';

export type RateLimitedReason = 'global-rate' | 'endpoint-rate' | 'global-concurrency';

export interface SimLimits {
  globalPerSecond: number | null;
  endpointPerSecond: number | null;
  concurrency: number | null;
}

export interface SimLatency {
  fixedMs: number;
  distribution: { kind: 'lognormal'; p50Ms: number; p99Ms: number; seed: number } | null;
}

export const UNLIMITED: SimLimits = { globalPerSecond: null, endpointPerSecond: null, concurrency: null };
export const NO_LATENCY: SimLatency = { fixedMs: 0, distribution: null };

const WINDOW_MS = 1000;
const Z99 = 2.3263478740408408;

/** Admission timestamps of the last second, oldest first. */
class SlidingWindow {
  private times: number[] = [];
  private head = 0;
  count(now: number): number {
    while (this.head < this.times.length && this.times[this.head]! <= now - WINDOW_MS) this.head++;
    if (this.head > 1024 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
    return this.times.length - this.head;
  }
  add(now: number): void {
    this.times.push(now);
  }
}

export class Limiter {
  limits: SimLimits;
  inFlight = 0;
  private global = new SlidingWindow();
  private endpoints = new Map<string, SlidingWindow>();

  constructor(limits: Partial<SimLimits> = {}) {
    this.limits = { ...UNLIMITED, ...limits };
  }

  set(limits: Partial<SimLimits>): void {
    this.limits = { ...this.limits, ...limits };
  }

  /** Admit (and count) the request, or say which limiter refuses it. Caller must release() admitted ones. */
  admit(endpoint: string, now = performance.now()): RateLimitedReason | null {
    const { globalPerSecond, endpointPerSecond, concurrency } = this.limits;
    let ep = this.endpoints.get(endpoint);
    if (!ep) this.endpoints.set(endpoint, (ep = new SlidingWindow()));
    if (concurrency !== null && this.inFlight >= concurrency) return 'global-concurrency';
    if (globalPerSecond !== null && this.global.count(now) >= globalPerSecond) return 'global-rate';
    if (endpointPerSecond !== null && ep.count(now) >= endpointPerSecond) return 'endpoint-rate';
    this.global.add(now);
    ep.add(now);
    this.inFlight++;
    return null;
  }

  release(): void {
    this.inFlight--;
  }
}

export class LatencyModel {
  latency: SimLatency;
  private next: () => number = Math.random;

  constructor(latency: Partial<SimLatency> = {}) {
    this.latency = { ...NO_LATENCY };
    this.set(latency);
  }

  set(latency: Partial<SimLatency>): void {
    this.latency = { ...this.latency, ...latency };
    const d = this.latency.distribution;
    if (d && !(d.p50Ms > 0 && d.p99Ms >= d.p50Ms)) throw new Error('latency distribution needs 0 < p50Ms <= p99Ms');
    this.next = mulberry32(d?.seed ?? 1);
  }

  /** Milliseconds to hold the next request. */
  draw(): number {
    const d = this.latency.distribution;
    if (!d) return this.latency.fixedMs;
    const sigma = Math.log(d.p99Ms / d.p50Ms) / Z99;
    // Box–Muller; 1 - u keeps the log argument in (0, 1].
    const z = Math.sqrt(-2 * Math.log(1 - this.next())) * Math.cos(2 * Math.PI * this.next());
    return this.latency.fixedMs + Math.exp(Math.log(d.p50Ms) + sigma * z);
  }
}

export interface EndpointStats {
  calls: number;
  admitted: number;
  limited: Partial<Record<RateLimitedReason, number>>;
}
export interface SecondStats {
  second: number;
  calls: number;
  limited: number;
  byEndpoint: Record<string, { calls: number; limited: number }>;
}
export interface SimStats {
  /** When the counters started (start, reset, or POST /_sim/stats/reset), ISO. */
  since: string;
  totals: EndpointStats;
  /** Per endpoint ('POST /v1/transfers', 'POST /v1/transfers/{id}/reversals', 'GET /v1/transfers', …). */
  endpoints: Record<string, EndpointStats>;
  /** One bucket per wall-clock second since `since` that saw traffic; `second` = 0 is the first. */
  seconds: SecondStats[];
  /** Most requests admitted in any sliding 1 s window, in total and per endpoint. */
  peakAdmittedPerSecond: { global: number; endpoints: Record<string, number> };
  /** Most requests in flight at once. */
  peakConcurrency: number;
}

const MAX_BUCKETS = 3600;

export class TrafficStats {
  private since = Date.now();
  private totals: EndpointStats = { calls: 0, admitted: 0, limited: {} };
  private endpoints = new Map<string, EndpointStats>();
  private buckets = new Map<number, SecondStats>();
  private peakGlobal = 0;
  private peakEndpoints = new Map<string, number>();
  private windows = { global: new SlidingWindow(), endpoints: new Map<string, SlidingWindow>() };
  private peakConcurrency = 0;

  reset(): void {
    this.since = Date.now();
    this.totals = { calls: 0, admitted: 0, limited: {} };
    this.endpoints.clear();
    this.buckets.clear();
    this.peakGlobal = 0;
    this.peakEndpoints.clear();
    this.windows = { global: new SlidingWindow(), endpoints: new Map() };
    this.peakConcurrency = 0;
  }

  record(endpoint: string, limited: RateLimitedReason | null, inFlight: number): void {
    const ep = this.endpoints.get(endpoint) ?? { calls: 0, admitted: 0, limited: {} };
    this.endpoints.set(endpoint, ep);
    const second = Math.floor((Date.now() - this.since) / 1000);
    let b = this.buckets.get(second);
    if (!b) {
      this.buckets.set(second, (b = { second, calls: 0, limited: 0, byEndpoint: {} }));
      if (this.buckets.size > MAX_BUCKETS) this.buckets.delete(this.buckets.keys().next().value!);
    }
    const be = (b.byEndpoint[endpoint] ??= { calls: 0, limited: 0 });
    for (const s of [this.totals, ep]) {
      s.calls++;
      if (limited) s.limited[limited] = (s.limited[limited] ?? 0) + 1;
      else s.admitted++;
    }
    b.calls++;
    be.calls++;
    if (limited) {
      b.limited++;
      be.limited++;
      return;
    }
    const now = performance.now();
    this.windows.global.add(now);
    this.peakGlobal = Math.max(this.peakGlobal, this.windows.global.count(now));
    let w = this.windows.endpoints.get(endpoint);
    if (!w) this.windows.endpoints.set(endpoint, (w = new SlidingWindow()));
    w.add(now);
    this.peakEndpoints.set(endpoint, Math.max(this.peakEndpoints.get(endpoint) ?? 0, w.count(now)));
    this.peakConcurrency = Math.max(this.peakConcurrency, inFlight);
  }

  snapshot(): SimStats {
    return structuredClone({
      since: new Date(this.since).toISOString(),
      totals: this.totals,
      endpoints: Object.fromEntries(this.endpoints),
      seconds: [...this.buckets.values()],
      peakAdmittedPerSecond: { global: this.peakGlobal, endpoints: Object.fromEntries(this.peakEndpoints) },
      peakConcurrency: this.peakConcurrency,
    });
  }
}
