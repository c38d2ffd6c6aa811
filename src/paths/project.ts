// Where the project's files are at run time. This file sits two directories below the project
// root, as every chunk of the CLI bundle does (dist/cli/*.js; scripts/build-cli.mjs refuses any
// other layout), so the same expression holds when run from source and from the bundle.
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const projectRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The console's files read at run time: views/, static/ and queries.sql. */
export const consoleFilesDir = path.join(projectRoot, 'src', 'console');
