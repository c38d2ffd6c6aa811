--! Previous: sha1:ab1de75eb4f4bc132d6668b09fa792edc1f0a883
--! Hash: sha1:855944fa97fc279eb5e613cf45a019f225121119
--! Message: console index: status, created_at

--! no-transaction
-- Console: capped counts per status (an index-only scan stops after 10,001 entries) and the
-- lists' newest-first keyset pages. Costs every insert one more index entry.
create index concurrently if not exists seller_transfers_status_created_idx
  on marketplace.seller_transfers (status, created_at desc, id desc);
