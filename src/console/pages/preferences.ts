// The viewer's display preferences: the time zone the pages show times in (UTC by default). A
// cookie of the viewer's own, checked against the zones this Node knows on every read; any
// logged-in person may set it (a POST, so the CSRF check runs), it changes nothing else.
import type { FastifyInstance } from 'fastify';
import { localPath } from '../local-path.ts';
import { page, problem, viewerZone } from '../render.ts';
import { knownZone, timeZones, TZ_COOKIE } from '../viewer-time.ts';

export function registerPreferencePages(app: FastifyInstance, secureCookies: boolean): void {
  app.get('/preferences', async (request, reply) => {
    const next = localPath((request.query as Record<string, unknown>)['next']);
    return page(request, reply, 'preferences', { title: 'Preferences', zones: timeZones(), current: viewerZone(request), next });
  });

  app.post('/preferences', async (request, reply) => {
    const body = (request.body ?? {}) as Record<string, unknown>;
    const zone = knownZone(typeof body['tz'] === 'string' ? body['tz'].trim() : '');
    if (!zone)
      return problem(
        request,
        reply,
        400,
        'Refused',
        'Not a time zone this console knows (e.g. UTC, Europe/Paris); nothing was changed.',
        '/preferences',
      );
    reply.header(
      'Set-Cookie',
      `${TZ_COOKIE}=${encodeURIComponent(zone)}; Path=/; HttpOnly; SameSite=Strict; Max-Age=31536000${secureCookies ? '; Secure' : ''}`,
    );
    return reply.redirect(localPath(body['next']), 303);
  });
}
