--! Previous: sha1:21c343845fafa0088fe524248346fe61e59b7db1
--! Hash: sha1:9c8369173f9a9acf4309addd1e64c2fdff12aa6b
--! Message: console index: order id

--! no-transaction
-- Console: find by order id.
create index concurrently if not exists seller_transfers_order_idx on marketplace.seller_transfers (order_id);
