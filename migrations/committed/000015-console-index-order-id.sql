--! Previous: sha1:97ee6fb0654439fbc2956edc6af560445034c0dd
--! Hash: sha1:58124fa7c327fd64a9201657c41344049e57277d
--! Message: console index: order id

--! no-transaction
-- Console: find by order id.
create index concurrently if not exists seller_transfers_order_idx on marketplace.seller_transfers (order_id);
