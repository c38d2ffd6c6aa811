-- Down for 000006-sweep-estimate.sql: the 000002 sweep.
create or replace function marketplace.enqueue_due_seller_transfers(max_rows integer default 1000)
returns integer language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
declare
  specs graphile_worker.job_spec[];
begin
  with due as (
    (select t.id, t.status, t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'pending' order by t.created_at limit max_rows)
    union all
    (select t.id, t.status, t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'failed' and t.next_retry_at is not null and t.next_retry_at <= now()
      order by t.next_retry_at limit max_rows)
    union all
    (select t.id, t.status, t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'reversal_pending' and t.next_retry_at is null
      order by t.next_retry_at nulls first limit max_rows)
    union all
    (select t.id, t.status, t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'reversal_pending' and t.next_retry_at <= now()
      order by t.next_retry_at nulls first limit max_rows)
  ), keyed as (
    select d.*, s.worker_task, marketplace.seller_transfer_job_key(d.id, s.worker_task) as job_key
      from due d join marketplace.seller_transfer_statuses s on s.status = d.status
  )
  select array_agg(row(k.worker_task, json_build_object('id', k.id), null, k.next_retry_at, null, k.job_key, null, null)::graphile_worker.job_spec)
    into specs
    from keyed k
   where not exists (
           select 1 from graphile_worker._private_jobs j
            where j.key = k.job_key
              and (j.locked_at is null
                   or not pg_try_advisory_xact_lock('marketplace.seller_transfers'::regclass::oid::integer, hashtext(k.id::text))));
  if specs is null then
    return 0;
  end if;
  perform set_config('marketplace.transition_reason', 'sweep', true);
  return marketplace.enqueue_seller_transfer_jobs(specs);
end $$;
comment on function marketplace.enqueue_due_seller_transfers(integer) is
  'Enqueues a job for every due seller transfer that has no live job (at most max_rows per status). Returns how many.';
