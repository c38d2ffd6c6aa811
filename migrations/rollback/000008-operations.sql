-- Down for 000008-operations.sql: the audit, the worker heartbeats and the doctor's checks.
drop function marketplace.seller_transfer_dispatch_state(uuid);
drop function marketplace.seller_transfer_doctor();
drop function marketplace.doctor_seller_transfer_audit(timestamptz);
drop function marketplace.doctor_seller_transfer_slos();
drop function marketplace.doctor_seller_transfer_workers(interval);
drop function marketplace.doctor_seller_transfer_dispatch(interval);
drop function marketplace.doctor_seller_transfer_jobs(interval);
drop function marketplace.doctor_seller_transfer_roles();
drop function marketplace.doctor_seller_transfer_indexes();
drop function marketplace.doctor_seller_transfer_guard_sync();
drop function marketplace.doctor_seller_transfer_guard_drift();
drop function marketplace.doctor_seller_transfer_triggers();
drop function marketplace.record_seller_transfer_worker_heartbeat(text, text, integer, timestamptz, boolean);
drop table marketplace.seller_transfer_worker_heartbeats;
drop function marketplace.audit_seller_transfers(timestamptz);
