// Retries a failed transfer when next_retry_at has come (failed -> completed, or permanently_failed past the limit).
// Enqueued by the seller_transfers triggers (job key seller_transfer:<id>:seller_transfer_retry).
import type { Task } from 'graphile-worker';
import { transferJobPayload } from '../src/worker/payload.ts';
import { runTransferTask, type WorkerDeps } from '../src/worker/transfer-ops.ts';

export const identifier = 'seller_transfer_retry';

export function createTask(deps: WorkerDeps): Task {
  return async (payload) => {
    const { id } = transferJobPayload.parse(payload);
    await runTransferTask(deps, identifier, id);
  };
}
