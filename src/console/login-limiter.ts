// Log-in tries within a window, counted two ways, in memory bounded by LRU caches (lru-cache):
// - per client address: past the limit further tries from that address are refused (429), so one
//   machine cannot guess on; only its own address is shut out;
// - per user name: each try not (yet) known to be right makes the next try for that name wait
//   longer (doubling up to a cap), from any address, so guessing one person's password slows
//   down, while that person's right password still works after the wait: a stranger's wrong
//   tries never lock them out.
// A try counts before its password is checked: attempt() checks the limit and records the try in
// one synchronous step, and only a right password gives it back. So requests in flight together
// (posted at once, or waiting out a name's delay) cannot all pass the limit: at most the limit's
// number of passwords are ever checked for one address in the window.
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

/** A try that passed the address limit: wait this long, check the password, and call succeeded() if it was right. */
export interface LoginAttempt {
  waitMs: number;
  succeeded(): void;
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

  /**
   * One try for this name from this address, counted now, before its password is checked: null
   * when the address has used up its tries in the window (refuse it without checking anything).
   * The try stays counted as a failure unless succeeded() is called.
   */
  attempt(name: string, address: string): LoginAttempt | null {
    if (this.recent(this.addresses, address) >= this.limits.maxFailures) return null;
    const before = this.recent(this.names, name);
    const waitMs = before === 0 ? 0 : Math.min(this.limits.maxDelayMs, this.limits.firstDelayMs * 2 ** (before - 1));
    const at = Date.now();
    this.add(this.addresses, address, at);
    this.add(this.names, name, at);
    return {
      waitMs,
      succeeded: () => {
        // A right password gives its address its try back and clears the name's waits.
        const tries = this.addresses.get(address) ?? [];
        const i = tries.indexOf(at);
        if (i >= 0) this.addresses.set(address, [...tries.slice(0, i), ...tries.slice(i + 1)]);
        this.names.delete(name);
      },
    };
  }

  /** Entries held (for the test that memory stays bounded). */
  get size(): { addresses: number; names: number } {
    return { addresses: this.addresses.size, names: this.names.size };
  }

  private add(cache: LRUCache<string, number[]>, key: string, at: number): void {
    // Beyond the limit and the delay's cap more timestamps change nothing: keep the list short.
    cache.set(key, [...(cache.get(key) ?? []), at].slice(-Math.max(64, this.limits.maxFailures)));
  }

  private recent(cache: LRUCache<string, number[]>, key: string): number {
    const since = Date.now() - this.limits.windowMs;
    return (cache.get(key) ?? []).filter((t) => t > since).length;
  }
}
