// Retries a failed transfer when next_retry_at has come (failed -> completed, or permanently_failed past the limit).
// Dispatched from the table when the row is due (marketplace.dispatch_seller_transfers, job key seller_transfer:<id>).
import type { Task } from 'graphile-worker';
import { transferJobPayload } from '../src/worker/payload.ts';
import { runTransferTask, type WorkerDeps } from '../src/worker/transfer-ops.ts';

export const identifier = 'seller_transfer_retry';

export function createTask(deps: WorkerDeps): Task {
  return async (payload) => {
    await runTransferTask(deps, identifier, transferJobPayload.parse(payload));
  };
}
