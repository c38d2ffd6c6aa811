// Reverses a paid transfer after a refund (reversal_pending -> reversed, or back-off, then permanently_failed).
// Enqueued by the seller_transfers triggers (job key seller_transfer:<id>:seller_transfer_reverse).
import type { Task } from 'graphile-worker';
import { transferJobPayload } from '../src/worker/payload.ts';
import { runTransferTask, type WorkerDeps } from '../src/worker/transfer-ops.ts';

export const identifier = 'seller_transfer_reverse';

export function createTask(deps: WorkerDeps): Task {
  return async (payload) => {
    const { id } = transferJobPayload.parse(payload);
    await runTransferTask(deps, identifier, id);
  };
}
