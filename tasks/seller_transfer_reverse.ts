// Reverses a paid transfer after a refund (reversal_pending -> reversed, or back-off, then permanently_failed).
// Dispatched from the table when the row is due (marketplace.dispatch_seller_transfers, job key seller_transfer:<id>).
import type { Task } from 'graphile-worker';
import { transferJobPayload } from '../src/worker/payload.ts';
import { runTransferTask, type WorkerDeps } from '../src/worker/transfer-ops.ts';

export const identifier = 'seller_transfer_reverse';

export function createTask(deps: WorkerDeps): Task {
  return async (payload) => {
    await runTransferTask(deps, identifier, transferJobPayload.parse(payload));
  };
}
