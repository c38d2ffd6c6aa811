// Periodic safety net (graphile-worker cron): enqueues a job for every due row that has no live
// job, e.g. rows written before the worker existed, or whose job was deleted or held by a killed
// worker. The SQL function reads only the partial indexes.
import type { Task } from 'graphile-worker';
import type { WorkerDeps } from '../src/worker/transfer-ops.ts';

export const identifier = 'seller_transfer_sweep';

export function createTask(deps: WorkerDeps): Task {
  return async () => {
    const { rows: [r] } = await deps.pool.query<{ n: number }>('select marketplace.enqueue_due_seller_transfers() as n');
    if (r && r.n > 0) deps.logger.warn({ enqueued: r.n }, 'sweep enqueued due rows that had no live job');
  };
}
