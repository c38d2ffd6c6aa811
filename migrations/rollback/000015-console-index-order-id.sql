-- Down for 000015-console-index-order-id.sql (down scripts run in a transaction: a plain drop, a brief lock).
drop index if exists marketplace.seller_transfers_order_idx;
