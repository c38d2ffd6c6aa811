// eslint (flat config): the recommended rules of eslint and typescript-eslint (without type
// information, so a run takes seconds), and the boundary between the two front ends: src/cli/ and
// src/console/ share what they both show or do through src/core/, never through each other.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const BOUNDARY = 'src/cli/ and src/console/ never import each other: move what both need to src/core/';

/** The other front end, forbidden in static imports and in import() alike. */
function frontEndBoundary(other) {
  return {
    'no-restricted-imports': ['error', { patterns: [{ group: [`**/${other}/**`], message: BOUNDARY }] }],
    'no-restricted-syntax': ['error', { selector: `ImportExpression[source.value=/(^|\\/)${other}\\//]`, message: BOUNDARY }],
  };
}

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', '.data/', '.test-pg/', 'docs/', 'migrations/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      // Node's globals, for the plain JavaScript files (bin/, scripts/); TypeScript checks its own.
      globals: Object.fromEntries(
        [
          'process',
          'console',
          'Buffer',
          'URL',
          'URLSearchParams',
          'setTimeout',
          'clearTimeout',
          'setInterval',
          'clearInterval',
          'setImmediate',
          'AbortController',
          'AbortSignal',
          'TextEncoder',
          'TextDecoder',
          'fetch',
          'performance',
          'structuredClone',
          'queueMicrotask',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  { files: ['src/cli/**'], ignores: ['src/cli/console-command.ts'], rules: frontEndBoundary('console') },
  // `seller-transfers console` is the console's launcher: the one CLI file that loads it, and only
  // lazily, by import() (so `--hash-password` starts without fastify); a static import stays refused.
  { files: ['src/cli/console-command.ts'], rules: { 'no-restricted-imports': frontEndBoundary('console')['no-restricted-imports'] } },
  { files: ['src/console/**'], rules: frontEndBoundary('cli') },
);
