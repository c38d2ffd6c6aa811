// The stylesheet, the live-refresh script and robots.txt, from our own origin (the CSP allows nothing else).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { consoleFilesDir } from '../../paths/project.ts';

export function registerStaticFiles(app: FastifyInstance): void {
  const css = readFileSync(path.join(consoleFilesDir, 'static', 'console.css'));
  app.get('/static/console.css', async (_request, reply) =>
    reply.type('text/css; charset=utf-8').header('Cache-Control', 'private, max-age=300').send(css),
  );
  // The live refresh (static/live.js): the one script, no inline code anywhere.
  const js = readFileSync(path.join(consoleFilesDir, 'static', 'live.js'));
  app.get('/static/live.js', async (_request, reply) =>
    reply.type('text/javascript; charset=utf-8').header('Cache-Control', 'private, max-age=300').send(js),
  );
  app.get('/favicon.ico', async (_request, reply) => reply.code(204).send());
  app.get('/robots.txt', async (_request, reply) => reply.type('text/plain; charset=utf-8').send('User-agent: *\nDisallow: /\n'));
}
