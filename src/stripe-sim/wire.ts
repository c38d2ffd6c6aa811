// Stripe's wire format: form-encoded bodies with bracket keys in, JSON out,
// errors as {error:{type, code?, message, param?}} so stripe-node picks the right error class.
import { randomBytes } from 'node:crypto';

export interface Params {
  [key: string]: string | Params;
}

/** `metadata[a]=1&amount=5` → {metadata:{a:'1'}, amount:'5'}. Null-prototype nodes so `__proto__[x]` cannot pollute. */
export function parseForm(text: string): Params {
  const root: Params = Object.create(null);
  for (const [key, value] of new URLSearchParams(text)) {
    const path = key.replace(/\]/g, '').split('[');
    let node = root;
    for (const seg of path.slice(0, -1)) {
      const next = node[seg];
      node = typeof next === 'object' ? next : (node[seg] = Object.create(null) as Params);
    }
    node[path[path.length - 1]!] = value;
  }
  return root;
}

/** Order-independent form of a body, so idempotency compares parameters rather than their serialisation. */
export function canonicalForm(text: string): string {
  return [...new URLSearchParams(text)]
    .map(([k, v]) => `${k}=${v}`)
    .sort()
    .join('&');
}

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
export function newId(prefix: string): string {
  return prefix + [...randomBytes(24)].map((b) => ALPHABET[b % ALPHABET.length]).join('');
}

export interface StripeErrorBody {
  type: string;
  message: string;
  code?: string;
  param?: string;
}

/** Thrown by endpoint code; the server turns it into the Stripe error JSON. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: StripeErrorBody,
  ) {
    super(body.message);
  }
}

export const invalid = (message: string, param?: string, code?: string): ApiError =>
  new ApiError(400, { type: 'invalid_request_error', message, ...(code && { code }), ...(param && { param }) });

export const missing = (message: string, param?: string): ApiError =>
  new ApiError(404, { type: 'invalid_request_error', code: 'resource_missing', message, ...(param && { param }) });

// ---- parameter readers: each throws the 400 Stripe would send for that param ----

export function rejectUnknown(p: Params, allowed: string[]): void {
  const extra = Object.keys(p).find((k) => !allowed.includes(k));
  if (extra) throw invalid(`Received unknown parameter: ${extra}`, extra, 'parameter_unknown');
}

export function str(p: Params, name: string, required = false): string | null {
  const v = p[name];
  if (v === undefined || v === '') {
    if (required) throw invalid(`Missing required param: ${name}.`, name, 'parameter_missing');
    return null;
  }
  if (typeof v !== 'string') throw invalid(`Invalid string: ${name}`, name, 'parameter_invalid_string');
  return v;
}

export function int(p: Params, name: string, opts: { required?: boolean; min?: number; max?: number } = {}): number | null {
  const raw = str(p, name, opts.required);
  if (raw === null) return null;
  const n = Number(raw);
  if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(n)) throw invalid(`Invalid integer: ${raw}`, name, 'parameter_invalid_integer');
  if (opts.min !== undefined && n < opts.min)
    throw invalid(`This value must be greater than or equal to ${opts.min}.`, name, 'parameter_invalid_integer');
  if (opts.max !== undefined && n > opts.max)
    throw invalid(`This value must be less than or equal to ${opts.max}.`, name, 'parameter_invalid_integer');
  return n;
}

/** Stripe metadata: flat string map; `metadata=` (empty) means none. Copied into a plain object. */
export function metadata(p: Params): Record<string, string> {
  const m = p.metadata;
  if (m === undefined || m === '') return {};
  if (typeof m === 'string') throw invalid('Invalid hash', 'metadata', 'parameter_invalid_string');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(m)) {
    if (typeof v !== 'string') throw invalid('Invalid metadata value', `metadata[${k}]`);
    out[k] = v;
  }
  return out;
}
