#!/usr/bin/env node
// `node bin/run-ts.js file.ts [args]`: runs a TypeScript entry point (benchmarks, scripts).
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const [entry] = process.argv.splice(2, 1);
if (!entry) {
  console.error('usage: node bin/run-ts.js <file.ts> [args]');
  process.exit(2);
}
await import(pathToFileURL(path.resolve(entry)).href);
