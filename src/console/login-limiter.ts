// Failed logins within a window, counted two ways, in memory bounded by LRU caches (lru-cache):
// - per client address: past the limit further tries from that address are refused (429), so one
//   machine cannot guess on; only its own address is shut out;
// - per user name: each failure makes the next try for that name wait longer (doubling up to a
//   cap), from any address, so guessing one person's password slows down, while that person's
//   right password still works after the wait: a stranger's wrong tries never lock them out.
// The address is the one fastify's trustProxy gives: the socket's, or the configured proxy's
// forwarded one (CONSOLE_TRUSTED_PROXIES), never a header the client can write.
import { LRUCache } from 'lru-cache';

export interface LoginLimits {
  maxFailures: number;
  windowMs?: number;
  /** The wait after the first failure for a name; it doubles with each further one. */
  firstDelayMs?: number;
  maxDelayMs?: number;
  /** At most this many addresses and this many names are tracked (least recently used go first). */
  maxEntries?: number;
}

export class LoginLimiter {
  private readonly addresses: LRUCache<string, number[]>;
  private readonly names: LRUCache<string, number[]>;
  private readonly limits: Required<LoginLimits>;

  constructor(limits: LoginLimits) {
    this.limits = { windowMs: 15 * 60_000, firstDelayMs: 250, maxDelayMs: 8_000, maxEntries: 10_000, ...limits };
    const options = { max: this.limits.maxEntries, ttl: this.limits.windowMs };
    this.addresses = new LRUCache(options);
    this.names = new LRUCache(options);
  }

  /** True when this address has used up its failures in the window. */
  addressBlocked(address: string): boolean {
    return this.recent(this.addresses, address) >= this.limits.maxFailures;
  }

  /** How long a try for this name waits before its password is checked. */
  delayMs(name: string): number {
    const failures = this.recent(this.names, name);
    return failures === 0 ? 0 : Math.min(this.limits.maxDelayMs, this.limits.firstDelayMs * 2 ** (failures - 1));
  }

  fail(name: string, address: string): void {
    for (const [cache, key] of [
      [this.names, name],
      [this.addresses, address],
    ] as const) {
      // Beyond the limit and the delay's cap more timestamps change nothing: keep the list short.
      cache.set(key, [...(cache.get(key) ?? []), Date.now()].slice(-64));
    }
  }

  succeed(name: string): void {
    this.names.delete(name);
  }

  /** Entries held (for the test that memory stays bounded). */
  get size(): { addresses: number; names: number } {
    return { addresses: this.addresses.size, names: this.names.size };
  }

  private recent(cache: LRUCache<string, number[]>, key: string): number {
    const since = Date.now() - this.limits.windowMs;
    return (cache.get(key) ?? []).filter((t) => t > since).length;
  }
}
