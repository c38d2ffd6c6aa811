-- Down for 000003-operator.sql: the admin actions, the jobs lookup, the SLOs and time in status.
drop function marketplace.fail_seller_transfer(uuid, text);
drop function marketplace.retry_seller_transfer(uuid, text);
drop function marketplace.reverse_seller_transfer(uuid, text, bigint);
drop function marketplace.lock_seller_transfer_for_admin(uuid, text);
drop function marketplace.seller_transfer_jobs(uuid);
drop view marketplace.seller_transfer_stats;
drop view marketplace.seller_transfers_past_slo;
drop table marketplace.seller_transfer_status_slos;
drop function marketplace.seller_transfer_status_since(uuid);
