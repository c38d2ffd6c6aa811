// What every response carries and what every state change must pass. The only script a page
// runs is the console's own static/live.js (the CSP allows scripts from our origin, none inline), frames are refused, nothing is cached, and no referrer leaves the site
// (ids in URLs stay here when a person follows a Stripe Dashboard link).
import { timingSafeEqual } from 'node:crypto';
import { parse as parseCookieHeader } from 'cookie';
import type { FastifyReply, FastifyRequest } from 'fastify';

export const CSP =
  "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

export function securityHeaders(reply: FastifyReply, secure: boolean): void {
  reply.header('Content-Security-Policy', CSP);
  reply.header('X-Content-Type-Options', 'nosniff');
  reply.header('X-Frame-Options', 'DENY');
  reply.header('Referrer-Policy', 'same-origin'); // not no-referrer: with it, Chromium sends "Origin: null" on our own form POSTs
  reply.header('Cross-Origin-Opener-Policy', 'same-origin');
  reply.header('Cross-Origin-Resource-Policy', 'same-origin');
  reply.header('Cache-Control', 'private, no-store');
  if (secure) reply.header('Strict-Transport-Security', 'max-age=31536000');
}

/** The request's cookies (the `cookie` package: a value that does not decode is kept as sent, never an error). */
export function parseCookies(header: string | undefined): Record<string, string | undefined> {
  return parseCookieHeader(header ?? '');
}

export function sameToken(a: unknown, b: string | undefined): boolean {
  if (typeof a !== 'string' || !b) return false;
  const x = Buffer.from(a),
    y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Why a state-changing request is refused, or null when it passes: a browser that says the
 * request comes from another origin (Sec-Fetch-Site, sent by every current browser), an Origin
 * header for another host, or, always, a missing or wrong form token (the fallback where an
 * old client or a plain-HTTP internal host sends no Sec-Fetch-Site).
 */
export function csrfRefusal(request: FastifyRequest, expectedToken: string | undefined): string | null {
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin') return `cross-origin request refused (Sec-Fetch-Site: ${site})`;
  const origin = request.headers.origin;
  if (origin !== undefined && origin !== 'null') {
    let host: string | null = null;
    try {
      host = new URL(origin).host;
    } catch {
      // unparsable Origin: refused below
    }
    if (host !== request.headers.host) return 'cross-origin request refused (Origin does not match)';
  } else if (origin === 'null') return 'cross-origin request refused (Origin: null)';
  const token = (request.body as Record<string, unknown> | undefined)?.['_csrf'];
  if (!sameToken(token, expectedToken)) return 'form token missing or wrong (reload the page and try again)';
  return null;
}
