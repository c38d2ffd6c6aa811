// The worker's task list. Names must match marketplace.seller_transfer_statuses.worker_task
// (test/worker-end-to-end.test.ts, "task list and database agree", checks both directions).
import type { TaskList } from 'graphile-worker';
import type { WorkerDeps } from '../src/worker/transfer-ops.ts';
import * as create from './seller_transfer_create.ts';
import * as retry from './seller_transfer_retry.ts';
import * as reverse from './seller_transfer_reverse.ts';

export function buildTaskList(deps: WorkerDeps): TaskList {
  return Object.fromEntries([create, retry, reverse].map((t) => [t.identifier, t.createTask(deps)]));
}
