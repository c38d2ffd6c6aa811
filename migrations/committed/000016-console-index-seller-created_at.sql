--! Previous: sha1:58124fa7c327fd64a9201657c41344049e57277d
--! Hash: sha1:147fca6416d5379684a0e83726e045fd12cf08b4
--! Message: console index: seller, created_at

--! no-transaction
-- Console: a seller's transfers, newest first.
create index concurrently if not exists seller_transfers_seller_created_idx
  on marketplace.seller_transfers (seller_id, created_at desc, id desc);
