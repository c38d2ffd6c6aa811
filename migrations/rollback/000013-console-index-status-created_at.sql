-- Down for 000013-console-index-status-created_at.sql (down scripts run in a transaction: a plain drop, a brief lock).
drop index if exists marketplace.seller_transfers_status_created_idx;
