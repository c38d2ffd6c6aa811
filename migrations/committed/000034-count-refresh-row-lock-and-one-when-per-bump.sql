--! Previous: sha1:c06355f8a52814a4896bfa7fbb17a5bb798b52c1
--! Hash: sha1:84b9b288f408b4643dba6a469ae988982407d90b
--! Message: No advisory lock in the count refresh; a recorded failure prepares one WHEN clause

-- Two follow-ups to 000030 and 000031.
--
-- 1. The count snapshot's refresh (000031) took an advisory lock, a key any login can compute and
--    hold, which 000026 removed everywhere else. It now takes a row lock on a one-row table only
--    marketplace_definer may lock, as dispatch does with seller_transfer_dispatch_mutex.
-- 2. A recorded failure that keeps its status (the worker's bump) paid for the WHEN clauses of the
--    operator's and everyone else's guard triggers, which listed the key generation and the
--    in-doubt flag. Only the worker may move those two, so the check that nobody else does moves
--    to seller_transfer_retry_couplings, whose WHEN a bump evaluates anyway: a bump prepares one
--    WHEN clause instead of three. Same rules, same errors (refuse_broken_coupling asks the matrix,
--    then write-once, then in-doubt, then the couplings).

create table if not exists marketplace.seller_transfer_count_refresh_mutex (
  singleton boolean primary key default true check (singleton)
);
comment on table marketplace.seller_transfer_count_refresh_mutex is 'One row, locked by the session that recounts seller_transfer_status_count_snapshots (refresh_seller_transfer_status_counts). Only the definer may lock it.';
insert into marketplace.seller_transfer_count_refresh_mutex values (true) on conflict do nothing;
revoke all on marketplace.seller_transfer_count_refresh_mutex from public;
grant select, update on marketplace.seller_transfer_count_refresh_mutex to marketplace_definer;

create or replace function marketplace.refresh_seller_transfer_status_counts(max_age interval default interval '5 minutes')
returns timestamptz
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
set jit = off
as $$
declare
  last_counted timestamptz;
begin
  select min(c.counted_at) into last_counted from marketplace.seller_transfer_status_count_snapshots c;
  if last_counted is not null and last_counted > now() - max_age then
    return last_counted;
  end if;
  -- One session of the fleet counts; the others keep the snapshot they have.
  perform 1 from marketplace.seller_transfer_count_refresh_mutex m for update skip locked;
  if not found then
    return last_counted;
  end if;
  insert into marketplace.seller_transfer_status_count_snapshots as c (status, transfers, counted_at)
  select s.status, coalesce(n.transfers, 0), now()
    from marketplace.seller_transfer_statuses s
    left join (select t.status, count(*) as transfers from marketplace.seller_transfers t group by t.status) n on n.status = s.status
  on conflict on constraint seller_transfer_status_count_snapshots_pkey
  do update set transfers = excluded.transfers, counted_at = excluded.counted_at;
  delete from marketplace.seller_transfer_status_count_snapshots c
   where not exists (select 1 from marketplace.seller_transfer_statuses s where s.status = c.status);
  return now();
end $$;

create or replace trigger seller_transfer_retry_couplings
  after update of next_retry_at, stripe_request_in_doubt, stripe_key_generation on marketplace.seller_transfers
  for each row when ((new.status = 'failed' and new.next_retry_at is null)
                     or (new.status = 'permanently_failed' and new.stripe_request_in_doubt)
                     or (current_user <> 'marketplace_recorder'::name
                         and ((old.stripe_request_in_doubt and not new.stripe_request_in_doubt)
                              or old.stripe_key_generation <> new.stripe_key_generation)))
  execute function marketplace.refuse_broken_coupling();
create or replace trigger seller_transfer_status_transition_by_operator
  after update of status, id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at,
                  stripe_transfer_id, stripe_reversal_id, reversal_amount_cents
  on marketplace.seller_transfers
  for each row when (current_user = 'marketplace_admin'::name)
  execute function marketplace.guard_seller_transfer_update('admin');
create or replace trigger seller_transfer_status_transition
  after update of status, id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at,
                  stripe_transfer_id, stripe_reversal_id, reversal_amount_cents
  on marketplace.seller_transfers
  for each row when (current_user <> all ('{marketplace_recorder,marketplace_admin}'::name[]))
  execute function marketplace.guard_seller_transfer_update();
