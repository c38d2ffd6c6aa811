--! Previous: sha1:77e8ecc89c7e6cb6de4ff9e1e0754627211541cd
--! Hash: sha1:4accfdc0bb7f372add467d7dce6e448040066dda
--! Message: worker

-- Worker: transactional job enqueue, "is due", the sweep, and the functions the worker uses to
-- record what Stripe did. Requires the graphile_worker schema, which `seller-transfers migrate`
-- installs (graphile-worker's own migrations) before running ours.

------------------------------------------------------------------------------
-- Which task works on a status. Data, not code: the TypeScript task list is checked against it.
------------------------------------------------------------------------------
alter table marketplace.seller_transfer_statuses add column worker_task text unique;
comment on column marketplace.seller_transfer_statuses.worker_task is
  'graphile-worker task that moves a row out of this status (null: nothing for the worker to do).';
update marketplace.seller_transfer_statuses set worker_task = 'seller_transfer_create' where status = 'pending';
update marketplace.seller_transfer_statuses set worker_task = 'seller_transfer_retry' where status = 'failed';
update marketplace.seller_transfer_statuses set worker_task = 'seller_transfer_reverse' where status = 'reversal_pending';

-- A failed row is always scheduled: otherwise nothing would ever pick it up again.
alter table marketplace.seller_transfers
  add constraint seller_transfer_failed_is_scheduled check (status <> 'failed' or next_retry_at is not null);

------------------------------------------------------------------------------
-- Due-ness and job identity.
------------------------------------------------------------------------------
create function marketplace.seller_transfer_is_due(status text, next_retry_at timestamptz)
returns boolean language sql stable parallel safe as $$
  select exists (select 1 from marketplace.seller_transfer_statuses s where s.status = $1 and s.worker_task is not null)
     and coalesce($2, '-infinity') <= now()
$$;
comment on function marketplace.seller_transfer_is_due(text, timestamptz) is
  'True when the worker should act on a row now: its status has a worker task and next_retry_at (if any) has passed.';

-- One job key per transfer and task: re-enqueueing replaces the waiting job instead of adding one.
create function marketplace.seller_transfer_job_key(id uuid, task text)
returns text language sql immutable parallel safe as $$
  select 'seller_transfer:' || $1::text || ':' || $2
$$;

-- Enqueues set-based: graphile_worker.add_jobs takes the whole array in one call (20k add_job
-- calls in one statement take seconds and grow superlinearly; one add_jobs call does not).
-- add_jobs can skip a spec when the key's job is locked concurrently (graphile-worker #580);
-- those are retried, and anything still missing is left to the sweep, which finds every due row.
create function marketplace.enqueue_seller_transfer_jobs(specs graphile_worker.job_spec[])
returns integer language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
declare
  remaining graphile_worker.job_spec[] := specs;
  tries     integer := 0;
begin
  while coalesce(cardinality(remaining), 0) > 0 and tries < 3 loop
    tries := tries + 1;
    with added as (select j.key from graphile_worker.add_jobs(remaining) j)
    select coalesce(array_agg(s), '{}') into remaining
      from unnest(remaining) s
     where not exists (select 1 from added a where a.key = s.job_key);
  end loop;
  if cardinality(remaining) > 0 then
    raise warning 'seller transfers: % job(s) not enqueued under contention; the sweep will enqueue them', cardinality(remaining);
  end if;
  return coalesce(cardinality(specs), 0) - coalesce(cardinality(remaining), 0);
end $$;

------------------------------------------------------------------------------
-- History + enqueue, one pass over the transition tables per statement.
------------------------------------------------------------------------------
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
  specs  graphile_worker.job_spec[];
begin
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id)
  select n.id, null, n.status, at, actor, app, reason, xid
    from new_rows n;

  select array_agg(row(s.worker_task, json_build_object('id', n.id), null, n.next_retry_at, null,
                       marketplace.seller_transfer_job_key(n.id, s.worker_task), null, null)::graphile_worker.job_spec)
    into specs
    from new_rows n
    join marketplace.seller_transfer_statuses s on s.status = n.status
   where s.worker_task is not null;
  if specs is not null then
    perform marketplace.enqueue_seller_transfer_jobs(specs);
  end if;
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
  specs  graphile_worker.job_spec[];
begin
  -- A row needs a (re)scheduled job when it entered a worker status or its next_retry_at moved.
  with changed as materialized (
    select n.id, o.status as from_status, n.status as to_status, n.next_retry_at,
           o.status is distinct from n.status as status_changed
      from new_rows n
      join old_rows o on o.id = n.id
     where o.status is distinct from n.status or o.next_retry_at is distinct from n.next_retry_at
  ), history as (
    insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id)
    select c.id, c.from_status, c.to_status, at, actor, app, reason, xid from changed c where c.status_changed
  )
  select array_agg(row(s.worker_task, json_build_object('id', c.id), null, c.next_retry_at, null,
                       marketplace.seller_transfer_job_key(c.id, s.worker_task), null, null)::graphile_worker.job_spec)
    into specs
    from changed c
    join marketplace.seller_transfer_statuses s on s.status = c.to_status
   where s.worker_task is not null;
  if specs is not null then
    perform marketplace.enqueue_seller_transfer_jobs(specs);
  end if;
  return null;
end $$;

------------------------------------------------------------------------------
-- One worker per row at a time. A session-level advisory lock, not a transaction: the worker
-- holds no transaction (and no row lock, no xmin horizon) open across the Stripe call, and the
-- lock vanishes with the connection if the process dies.
------------------------------------------------------------------------------
create function marketplace.try_lock_seller_transfer(id uuid)
returns boolean language sql volatile as $$
  select pg_try_advisory_lock('marketplace.seller_transfers'::regclass::oid::integer, hashtext($1::text))
$$;
create function marketplace.unlock_seller_transfer(id uuid)
returns boolean language sql volatile as $$
  select pg_advisory_unlock('marketplace.seller_transfers'::regclass::oid::integer, hashtext($1::text))
$$;

------------------------------------------------------------------------------
-- What the worker reads before acting, and the three ways it records an outcome.
------------------------------------------------------------------------------
create function marketplace.seller_transfer_for_task(id uuid, task text)
returns table (
  id uuid, status text, stripe_account_id text, amount_cents bigint, currency text,
  order_id uuid, seller_id uuid, stripe_transfer_id text, reversal_amount_cents bigint,
  retry_count integer, next_retry_at timestamptz, last_error text, actionable boolean, state_since timestamptz)
language sql stable as $$
  select t.id, t.status, t.stripe_account_id, t.amount_cents, t.currency, t.order_id, t.seller_id,
         t.stripe_transfer_id, t.reversal_amount_cents, t.retry_count, t.next_retry_at, t.last_error,
         s.worker_task = $2 and marketplace.seller_transfer_is_due(t.status, t.next_retry_at),
         (select max(e.occurred_at) from marketplace.seller_transfer_events e where e.transfer_id = t.id)
    from marketplace.seller_transfers t
    join marketplace.seller_transfer_statuses s on s.status = t.status
   where t.id = $1
$$;
comment on function marketplace.seller_transfer_for_task(uuid, text) is
  'The row as a worker task sees it: actionable = this task owns its status and it is due; state_since = last status change.';

create function marketplace.mark_seller_transfer_paid(id uuid, stripe_transfer_id text, reason text)
returns boolean language plpgsql as $$
begin
  perform set_config('marketplace.transition_reason', reason, true);
  update marketplace.seller_transfers t
     set status = 'completed', stripe_transfer_id = $2, retry_count = 0, next_retry_at = null,
         last_error = null, updated_at = now()
   where t.id = $1 and t.status in ('pending', 'failed');
  return found;
end $$;

create function marketplace.mark_seller_transfer_reversed(id uuid, stripe_reversal_id text, amount_cents bigint, reason text)
returns boolean language plpgsql as $$
begin
  perform set_config('marketplace.transition_reason', reason, true);
  update marketplace.seller_transfers t
     set status = 'reversed', stripe_reversal_id = $2, reversal_amount_cents = $3, retry_count = 0,
         next_retry_at = null, last_error = null, updated_at = now()
   where t.id = $1 and t.status = 'reversal_pending';
  return found;
end $$;

-- retry_at null: give up (permanently_failed). Otherwise count the attempt and schedule the
-- next one: pending becomes failed; failed and reversal_pending stay (same-state bump), and
-- the moved next_retry_at re-enqueues the job through the trigger.
-- Giving up on a pending row takes the two legal steps, pending -> failed -> permanently_failed,
-- so the history shows that it failed and then that it was given up.
create function marketplace.record_seller_transfer_failure(id uuid, from_status text, error text, retry_at timestamptz, reason text)
returns text language plpgsql as $$
declare
  current_status text := from_status;
  result         text;
begin
  perform set_config('marketplace.transition_reason', reason, true);
  if retry_at is null and current_status = 'pending' then
    update marketplace.seller_transfers t
       set status = 'failed', next_retry_at = now(), last_error = left(error, 2000), updated_at = now()
     where t.id = record_seller_transfer_failure.id and t.status = 'pending';
    if not found then
      return null;
    end if;
    current_status := 'failed';
  end if;
  update marketplace.seller_transfers t
     set status = case when retry_at is null then 'permanently_failed'
                       when t.status = 'pending' then 'failed'
                       else t.status end,
         retry_count = t.retry_count + 1,
         next_retry_at = retry_at,
         last_error = left(error, 2000),
         updated_at = now()
   where t.id = record_seller_transfer_failure.id and t.status = current_status
  returning t.status into result;
  return result;
end $$;

------------------------------------------------------------------------------
-- The sweep: any due row without a live job gets one. Reads only the partial indexes.
-- A job is live when it waits unlocked, or when it is locked and some worker holds the row's
-- advisory lock; a job locked by a killed worker (graphile-worker only frees those after 4 h)
-- does not count, and add_jobs replaces it.
------------------------------------------------------------------------------
create function marketplace.enqueue_due_seller_transfers(max_rows integer default 1000)
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

------------------------------------------------------------------------------
-- Grants.
------------------------------------------------------------------------------
revoke all on function marketplace.seller_transfer_is_due(text, timestamptz), marketplace.seller_transfer_job_key(uuid, text),
  marketplace.enqueue_seller_transfer_jobs(graphile_worker.job_spec[]), marketplace.try_lock_seller_transfer(uuid),
  marketplace.unlock_seller_transfer(uuid), marketplace.seller_transfer_for_task(uuid, text),
  marketplace.mark_seller_transfer_paid(uuid, text, text), marketplace.mark_seller_transfer_reversed(uuid, text, bigint, text),
  marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text), marketplace.enqueue_due_seller_transfers(integer)
  from public;
grant execute on function marketplace.seller_transfer_is_due(text, timestamptz), marketplace.seller_transfer_job_key(uuid, text)
  to marketplace_reader, marketplace_writer, marketplace_worker;
grant execute on function marketplace.try_lock_seller_transfer(uuid), marketplace.unlock_seller_transfer(uuid),
  marketplace.seller_transfer_for_task(uuid, text), marketplace.mark_seller_transfer_paid(uuid, text, text),
  marketplace.mark_seller_transfer_reversed(uuid, text, bigint, text),
  marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text), marketplace.enqueue_due_seller_transfers(integer)
  to marketplace_worker;
grant usage on schema graphile_worker to marketplace_worker;
grant select, insert, update, delete on all tables in schema graphile_worker to marketplace_worker;
grant usage, select on all sequences in schema graphile_worker to marketplace_worker;
grant execute on all functions in schema graphile_worker to marketplace_worker;
