--! Previous: sha1:855944fa97fc279eb5e613cf45a019f225121119
--! Hash: sha1:21c343845fafa0088fe524248346fe61e59b7db1
--! Message: console index: due since

--! no-transaction
-- Console: the lists' "longest due first" keyset pages and the overview's rows due now, on the
-- worker statuses (for them, due <=> coalesce(next_retry_at, created_at) <= now(), a range of
-- this key). Deliberately without INCLUDE columns: with next_retry_at and created_at included the
-- planner took it for the dispatcher's due-row queries (an index-only scan that reads every
-- pending entry to filter `next_retry_at is null`, leased rows too) instead of the partial
-- indexes; without them it never serves those. test/dispatch.test.ts counts every index's reads.
create index concurrently if not exists seller_transfers_status_due_since_idx
  on marketplace.seller_transfers (status, (coalesce(next_retry_at, created_at)), id)
  where status in ('pending', 'failed', 'reversal_pending');
