// Fault selection. Queued faults (injectFault) win over random ones so a test can script
// an exact failure even while background chaos is on. Random faults use a seeded PRNG so a
// failing chaos run can be replayed exactly by reusing its seed.
import { mulberry32 } from './random.ts';
import type { FaultKind, FaultSpec, Operation, RandomFaults } from './types.ts';

export interface DrawnFault {
  kind: FaultKind;
  latencyMs: number;
}

const DEFAULT_LATENCY_MS = 100;

export class Faults {
  private queue: { spec: FaultSpec; left: number }[] = [];
  private random: { cfg: RandomFaults; next: () => number } | null = null;

  inject(spec: FaultSpec): void {
    this.queue.push({ spec: { ...spec }, left: spec.times ?? 1 });
  }

  setRandom(cfg: RandomFaults | null): void {
    const seed = cfg?.seed ?? Math.floor(Math.random() * 2 ** 32);
    this.random = cfg && cfg.kinds.length > 0 ? { cfg: { ...cfg, seed }, next: mulberry32(seed) } : null;
  }

  clear(): void {
    this.queue = [];
    this.random = null;
  }

  /** Called once per request, synchronously on arrival, so the order of draws is the order of requests. */
  draw(op: Operation): DrawnFault | null {
    const i = this.queue.findIndex((q) => q.spec.operation === 'any' || q.spec.operation === op);
    const queued = this.queue[i];
    if (queued) {
      if (--queued.left <= 0) this.queue.splice(i, 1);
      return { kind: queued.spec.kind, latencyMs: queued.spec.latencyMs ?? DEFAULT_LATENCY_MS };
    }
    const r = this.random;
    if (!r || (r.cfg.operations && !r.cfg.operations.includes(op))) return null;
    if (r.next() >= r.cfg.rate) return null;
    const kind = r.cfg.kinds[Math.floor(r.next() * r.cfg.kinds.length)]!;
    return { kind, latencyMs: r.cfg.latencyMs ?? DEFAULT_LATENCY_MS };
  }
}
