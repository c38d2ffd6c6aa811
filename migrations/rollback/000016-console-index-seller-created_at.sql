-- Down for 000016-console-index-seller-created_at.sql (down scripts run in a transaction: a plain drop, a brief lock).
drop index if exists marketplace.seller_transfers_seller_created_idx;
