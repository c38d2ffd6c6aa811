--! Previous: sha1:855944fa97fc279eb5e613cf45a019f225121119
--! Hash: sha1:97ee6fb0654439fbc2956edc6af560445034c0dd
--! Message: console index: due since

--! no-transaction
-- Console: the lists' "longest due first" keyset pages and the overview's rows due now, on the
-- worker statuses; next_retry_at and created_at included so the due check is index-only.
create index concurrently if not exists seller_transfers_status_due_since_idx
  on marketplace.seller_transfers (status, (coalesce(next_retry_at, created_at)), id) include (next_retry_at, created_at)
  where status in ('pending', 'failed', 'reversal_pending');
