// Stripe idempotency: a key remembers the first response of an endpoint that started
// executing; the same key with the same params replays it, other params are an error, and
// a key whose first request is still running is "in use" (409, nothing saved).

export interface SavedResponse {
  fingerprint: string;
  status: number;
  body: string;
  requestId: string;
  savedAt: number;
}

export type Begin =
  | { kind: 'new' } // reserved: caller must call save() when done
  | { kind: 'replay'; saved: SavedResponse }
  | { kind: 'mismatch' }
  | { kind: 'in_use' };

export class IdempotencyStore {
  private saved = new Map<string, SavedResponse>();
  private inFlight = new Set<string>();

  constructor(private readonly ttlMs: number) {}

  /** fingerprint = method + path + canonical body: what "same parameters" means. */
  begin(key: string, fingerprint: string): Begin {
    if (this.inFlight.has(key)) return { kind: 'in_use' };
    const s = this.saved.get(key);
    if (s && Date.now() - s.savedAt > this.ttlMs)
      this.saved.delete(key); // Stripe prunes keys after 24h
    else if (s) return s.fingerprint === fingerprint ? { kind: 'replay', saved: s } : { kind: 'mismatch' };
    this.inFlight.add(key);
    return { kind: 'new' };
  }

  save(key: string, r: Omit<SavedResponse, 'savedAt'>): void {
    this.inFlight.delete(key);
    this.saved.set(key, { ...r, savedAt: Date.now() });
  }

  /** Forget saved results but keep in-flight reservations: a running request still owns its key. */
  expireAll(): void {
    this.saved.clear();
  }
  clear(): void {
    this.saved.clear();
    this.inFlight.clear();
  }
}
