--! Previous: sha1:9c8369173f9a9acf4309addd1e64c2fdff12aa6b
--! Hash: sha1:1a2931ff7f2d50c12909e759ee1c4a214d86168f
--! Message: console index: seller, created_at

--! no-transaction
-- Console: a seller's transfers, newest first.
create index concurrently if not exists seller_transfers_seller_created_idx
  on marketplace.seller_transfers (seller_id, created_at desc, id desc);
