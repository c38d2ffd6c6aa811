-- Down for 000004-observability.sql.
drop function marketplace.record_external_seller_transfer_reversal(uuid, text, text, bigint, text);
drop function marketplace.seller_transfer_status_counts();
