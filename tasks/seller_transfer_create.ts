// Pays a pending transfer: creates the Stripe transfer (pending -> completed, or failed with a retry time).
// Enqueued by the seller_transfers triggers (job key seller_transfer:<id>:seller_transfer_create).
import type { Task } from 'graphile-worker';
import { transferJobPayload } from '../src/worker/payload.ts';
import { runTransferTask, type WorkerDeps } from '../src/worker/transfer-ops.ts';

export const identifier = 'seller_transfer_create';

export function createTask(deps: WorkerDeps): Task {
  return async (payload) => {
    const { id } = transferJobPayload.parse(payload);
    await runTransferTask(deps, identifier, id);
  };
}
