-- Down for 000024-audit-index-history-time.sql (down scripts run in a transaction: a plain drop, a brief lock).
drop index if exists marketplace.seller_transfer_events_time_brin;
