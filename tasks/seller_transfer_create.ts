// Pays a pending transfer: creates the Stripe transfer (pending -> completed, or failed with a retry time).
// Dispatched from the table when the row is due (marketplace.dispatch_seller_transfers, job key seller_transfer:<id>).
import type { Task } from 'graphile-worker';
import { transferJobPayload } from '../src/worker/payload.ts';
import { runTransferTask, type WorkerDeps } from '../src/worker/transfer-ops.ts';

export const identifier = 'seller_transfer_create';

export function createTask(deps: WorkerDeps): Task {
  return async (payload) => {
    await runTransferTask(deps, identifier, transferJobPayload.parse(payload));
  };
}
