-- Down for 000014-console-index-due-since.sql (down scripts run in a transaction: a plain drop, a brief lock).
drop index if exists marketplace.seller_transfers_status_due_since_idx;
