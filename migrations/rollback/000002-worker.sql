-- Down for 000002-worker.sql: back to the foundation's history-only triggers.
revoke all on all functions in schema graphile_worker from marketplace_worker;
revoke all on all sequences in schema graphile_worker from marketplace_worker;
revoke all on all tables in schema graphile_worker from marketplace_worker;
revoke all on schema graphile_worker from marketplace_worker;

drop function marketplace.enqueue_due_seller_transfers(integer);
drop function marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text);
drop function marketplace.mark_seller_transfer_reversed(uuid, text, bigint, text);
drop function marketplace.mark_seller_transfer_paid(uuid, text, text);
drop function marketplace.seller_transfer_for_task(uuid, text);
drop function marketplace.unlock_seller_transfer(uuid);
drop function marketplace.try_lock_seller_transfer(uuid);

-- The 000001 bodies of the statement triggers (history only, no enqueue).
create or replace function marketplace.record_seller_transfer_inserts()
returns trigger language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
declare
  -- Evaluated once per statement, not once per row: a bulk statement is one moment, one actor.
  at     timestamptz := clock_timestamp();
  actor  text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  app    text := nullif(current_setting('application_name'), '');
  reason text := nullif(current_setting('marketplace.transition_reason', true), '');
  xid    xid8 := pg_current_xact_id();
begin
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id)
  select n.id, null, n.status, at, actor, app, reason, xid
    from new_rows n;
  return null;
end $$;

create or replace function marketplace.record_seller_transfer_status_changes()
returns trigger language plpgsql security definer
set search_path = pg_catalog, pg_temp
set enable_nestloop = off
set enable_mergejoin = off as $$
declare
  at     timestamptz := clock_timestamp();
  actor  text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  app    text := nullif(current_setting('application_name'), '');
  reason text := nullif(current_setting('marketplace.transition_reason', true), '');
  xid    xid8 := pg_current_xact_id();
begin
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id)
  select n.id, o.status, n.status, at, actor, app, reason, xid
    from new_rows n
    join old_rows o on o.id = n.id
   where o.status is distinct from n.status;
  return null;
end $$;

drop function marketplace.enqueue_seller_transfer_jobs(graphile_worker.job_spec[]);
drop function marketplace.seller_transfer_job_key(uuid, text);
drop function marketplace.seller_transfer_is_due(text, timestamptz);
alter table marketplace.seller_transfers drop constraint seller_transfer_failed_is_scheduled;
alter table marketplace.seller_transfer_statuses drop column worker_task;
