// /healthz and /readyz on the metrics port: readiness follows the database (here made to refuse
// connections, its backends terminated, then allowed again) while liveness stays 200.
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import pg from 'pg';
import { withConnection } from '../src/db/connection.ts';
import { createLogger } from '../src/logger.ts';
import { createWorkerMetrics } from '../src/metrics.ts';
import { startHeartbeat, type Heartbeat } from '../src/worker/heartbeat.ts';
import { createReadinessProbe } from '../src/worker/readiness.ts';
import { useTestDatabase } from './support/database.ts';

vi.setConfig({ testTimeout: 60_000 });

const db = useTestDatabase();
let pool: pg.Pool;
let heartbeat: Heartbeat;
let server: Server;
let stopping = false;
let base: string;

beforeAll(async () => {
  pool = new pg.Pool({ connectionString: db.url, max: 3, connectionTimeoutMillis: 1_000 });
  pool.on('error', () => {});
  const metrics = createWorkerMetrics(pool);
  heartbeat = startHeartbeat(pool, createLogger('silent'), { intervalMs: 200, onBeat: metrics.observeHeartbeat });
  const probe = await createReadinessProbe({ pool, heartbeat, isStopping: () => stopping, maxHeartbeatAgeMs: 1_500, timeoutMs: 1_000 });
  server = await metrics.serve(0, probe);
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await setAllowConnections(true);
  await new Promise((r) => server?.close(r));
  await heartbeat?.stop().catch(() => {});
  await pool?.end();
});

async function setAllowConnections(allow: boolean): Promise<void> {
  await withConnection(db.adminUrl, async (c) => {
    const {
      rows: [q],
    } = await c.query<{ sql: string }>(`select format('alter database %I allow_connections %s', $1::text, $2::text) as sql`, [
      db.name,
      allow,
    ]);
    await c.query(q!.sql);
    if (!allow)
      await c.query('select pg_terminate_backend(pid) from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()', [db.name]);
  });
}

async function get(path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`${base}${path}`);
  return { status: res.status, body: await res.text() };
}

async function until(path: string, status: number, ms = 15_000): Promise<{ status: number; body: string }> {
  const end = Date.now() + ms;
  for (;;) {
    const r = await get(path);
    if (r.status === status || Date.now() > end) return r;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('health endpoints', () => {
  it('ready with a database that answers and a fresh heartbeat; the heartbeat is recorded and exported', async () => {
    expect(await until('/readyz', 200)).toEqual({ status: 200, body: '{"status":"ready"}\n' });
    expect((await get('/healthz')).status).toBe(200);
    const { rows } = await db.pool.query('select worker_id from marketplace.seller_transfer_worker_heartbeats');
    expect(rows.map((r) => r.worker_id)).toEqual([heartbeat.workerId]);
    expect((await get('/metrics')).body).toMatch(/^seller_transfers_worker_heartbeat_timestamp_seconds \d+/m);
  });

  it('503 with a one-line reason while the database refuses connections, 200 again when it is back; /healthz stays 200', async () => {
    await setAllowConnections(false);
    const down = await until('/readyz', 503);
    expect(down.status).toBe(503);
    expect(down.body.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(down.body)).toMatchObject({ status: 'not ready', reason: expect.stringMatching(/^database: /) });
    expect((await get('/healthz')).status).toBe(200);
    await setAllowConnections(true);
    expect((await until('/readyz', 200)).status).toBe(200);
    expect((await get('/healthz')).status).toBe(200);
  });

  it('not ready when the schema is behind this build', async () => {
    const {
      rows: [last],
    } = await db.pool.query(
      `delete from graphile_migrate.migrations where filename = (select max(filename) from graphile_migrate.migrations) returning *`,
    );
    try {
      const r = await get('/readyz');
      expect(r.status).toBe(503);
      expect(JSON.parse(r.body).reason).toMatch(/^database schema at migration \d+, this build expects \d+$/);
    } finally {
      await db.pool.query(
        `insert into graphile_migrate.migrations select * from json_populate_record(null::graphile_migrate.migrations, $1)`,
        [JSON.stringify(last)],
      );
    }
    expect((await get('/readyz')).status).toBe(200);
  });

  it('not ready while stopping', async () => {
    stopping = true;
    try {
      expect(JSON.parse((await get('/readyz')).body)).toEqual({ status: 'not ready', reason: 'worker is stopping' });
    } finally {
      stopping = false;
    }
  });
});
