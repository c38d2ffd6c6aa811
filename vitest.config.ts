import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // One PostgreSQL server for the run (TEST_DATABASE_URL, testcontainers or embedded) and a
    // migrated template database; every test file clones its own database from it.
    globalSetup: ['test/support/global-setup.ts'],
    pool: 'forks',
    // Two test files at a time even on a two-core machine (vitest's default there is one): most of
    // a file's time is spent waiting on PostgreSQL, a worker or a browser in other processes. The
    // full suite on this project's two-core CI machine: about 7 minutes, where one at a time took 11.
    maxWorkers: Math.max(2, availableParallelism() - 1),
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
