--! Previous: sha1:4accfdc0bb7f372add467d7dce6e448040066dda
--! Hash: sha1:074aca22fa83c9631d3e3fc123f882de5b22026c
--! Message: operator

-- Operator: what `seller-transfers show/reverse/retry/fail/stats` run. The admin actions are
-- SQL functions, so the guard trigger, the history (actor and reason) and the job enqueue apply
-- to them exactly as to any other writer; the CLI only calls them and prints the outcome.
--
--   1. time in status and the status SLOs (table + views)
--   2. a row's worker jobs
--   3. the admin actions: reverse, retry, fail
--   4. grants

------------------------------------------------------------------------------
-- 1. Time in status and SLOs.
------------------------------------------------------------------------------
-- When a row entered its current status: its last history event (inserts and status changes
-- are the only events). The (transfer_id, id) index makes this one short backward index scan.
create function marketplace.seller_transfer_status_since(id uuid)
returns timestamptz language sql stable parallel safe as $$
  select e.occurred_at
    from marketplace.seller_transfer_events e
   where e.transfer_id = $1
   order by e.id desc
   limit 1
$$;
comment on function marketplace.seller_transfer_status_since(uuid) is
  'When the seller transfer entered its current status (its last history event); null for an unknown id.';

create table marketplace.seller_transfer_status_slos (
  status      text primary key references marketplace.seller_transfer_statuses (status),
  max_seconds integer not null check (max_seconds > 0),
  description text not null
);
comment on table marketplace.seller_transfer_status_slos is
  'How long a seller transfer may stay in a non-terminal status before an operator should look at it. '
  'A status without a row has no SLO (completed is a resting state; terminal statuses never move again).';

insert into marketplace.seller_transfer_status_slos (status, max_seconds, description) values
  ('pending',          15 * 60,
   'The worker pays a new row within seconds; 15 minutes means no worker is running or its job is stuck.'),
  ('failed',           4 * 3600,
   'The default retry schedule (8 attempts, 30 s doubling) gives up after about 2 hours; 4 hours means retries are not running.'),
  ('reversal_pending', 24 * 3600,
   'A reversal normally takes seconds; waiting for the connected account''s balance retries hourly. A refund older than a day needs a person.');

-- Rows that have been in a non-terminal status longer than its SLO. Terminal statuses never
-- count, even if someone gives them an SLO row.
create view marketplace.seller_transfers_past_slo as
  select t.id, t.status, since.at as status_since,
         floor(extract(epoch from now() - since.at))::bigint as seconds_in_status,
         slo.max_seconds as slo_seconds,
         t.amount_cents, t.currency, t.stripe_account_id, t.retry_count, t.next_retry_at, t.last_error
    from marketplace.seller_transfers t
    join marketplace.seller_transfer_status_slos slo on slo.status = t.status
    join marketplace.seller_transfer_statuses s on s.status = t.status and not s.is_terminal
   cross join lateral (select coalesce(marketplace.seller_transfer_status_since(t.id), t.created_at) as at) since
   where since.at < now() - make_interval(secs => slo.max_seconds);
comment on view marketplace.seller_transfers_past_slo is
  'Seller transfers stuck in a non-terminal status longer than marketplace.seller_transfer_status_slos allows (time in status from the last history event).';

-- One row per status, in display order: how many rows, how many are due for the worker now,
-- the row longest in that status (non-terminal statuses only) and how many are past the SLO.
create view marketplace.seller_transfer_stats as
  with counts as (
    select t.status, count(*) as transfers,
           count(*) filter (where marketplace.seller_transfer_is_due(t.status, t.next_retry_at)) as due_now
      from marketplace.seller_transfers t
     group by t.status
  ), past as (
    select p.status, count(*) as past_slo from marketplace.seller_transfers_past_slo p group by p.status
  )
  select s.status, s.is_initial, s.is_terminal, s.worker_task,
         coalesce(c.transfers, 0) as transfers,
         coalesce(c.due_now, 0) as due_now,
         o.id as oldest_id,
         o.at as oldest_since,
         floor(extract(epoch from now() - o.at))::bigint as oldest_seconds_in_status,
         slo.max_seconds as slo_seconds,
         coalesce(p.past_slo, 0) as past_slo
    from marketplace.seller_transfer_statuses s
    left join counts c on c.status = s.status
    left join past p on p.status = s.status
    left join marketplace.seller_transfer_status_slos slo on slo.status = s.status
    left join lateral (
      select t.id, coalesce(marketplace.seller_transfer_status_since(t.id), t.created_at) as at
        from marketplace.seller_transfers t
       where t.status = s.status and not s.is_terminal
       order by 2, 1
       limit 1) o on true
   order by s.position;
comment on view marketplace.seller_transfer_stats is
  'Per status: row count, rows due for the worker now, the row longest in the status (non-terminal only), its SLO and rows past it.';

------------------------------------------------------------------------------
-- 2. A row's graphile-worker jobs (waiting, running or failed), by the job keys the triggers use.
-- SECURITY DEFINER so a reader can see them without rights on graphile_worker's private tables.
------------------------------------------------------------------------------
create function marketplace.seller_transfer_jobs(id uuid)
returns table (job_id bigint, task text, job_key text, run_at timestamptz, attempts smallint, max_attempts smallint,
               locked_at timestamptz, locked_by text, last_error text, created_at timestamptz)
language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
  select j.id, k.task, j.key, j.run_at, j.attempts, j.max_attempts, j.locked_at, j.locked_by, j.last_error, j.created_at
    from (select s.worker_task as task, marketplace.seller_transfer_job_key($1, s.worker_task) as key
            from marketplace.seller_transfer_statuses s
           where s.worker_task is not null) k
    join graphile_worker._private_jobs j on j.key = k.key
   order by j.run_at, j.id
$$;
comment on function marketplace.seller_transfer_jobs(uuid) is
  'The graphile-worker jobs of one seller transfer (by job key): run_at, attempts, locked_at/locked_by, last_error.';

------------------------------------------------------------------------------
-- 3. Admin actions. Each one: a reason is required (it goes into the history), the row must
-- exist, no worker may be acting on it at that moment (the worker's advisory lock), and the
-- status move itself is the guard trigger's to allow or refuse (SQLSTATE 23514).
------------------------------------------------------------------------------
-- Locks the row for the rest of the transaction and returns it, or raises. Shared by the actions.
create function marketplace.lock_seller_transfer_for_admin(id uuid, reason text)
returns marketplace.seller_transfers language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  t marketplace.seller_transfers;
begin
  if reason is null or btrim(reason) = '' then
    raise exception 'a reason is required: say why (it is recorded in the history)'
      using errcode = 'invalid_parameter_value';
  end if;
  select * into t from marketplace.seller_transfers s where s.id = lock_seller_transfer_for_admin.id for update;
  if not found then
    raise exception 'seller transfer % not found', lock_seller_transfer_for_admin.id using errcode = 'no_data_found';
  end if;
  -- The worker holds this advisory lock (session level) while it talks to Stripe for the row.
  -- Acting now could contradict what Stripe is about to do, so refuse instead of waiting.
  if not pg_try_advisory_xact_lock('marketplace.seller_transfers'::regclass::oid::integer, hashtext(t.id::text)) then
    raise exception 'seller transfer % is being processed by the worker right now; try again in a moment', t.id
      using errcode = 'lock_not_available';
  end if;
  perform set_config('marketplace.transition_reason', btrim(reason), true);
  return t;
end $$;

-- completed -> reversal_pending: the worker then creates the Stripe reversal. amount_cents null
-- reverses the whole transfer.
create function marketplace.reverse_seller_transfer(id uuid, reason text, amount_cents bigint default null)
returns marketplace.seller_transfers language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  t marketplace.seller_transfers;
begin
  if amount_cents is not null and amount_cents <= 0 then
    raise exception 'reversal amount must be a positive number of cents, got %', amount_cents
      using errcode = 'invalid_parameter_value';
  end if;
  t := marketplace.lock_seller_transfer_for_admin(id, reason);
  if amount_cents > t.amount_cents then
    raise exception 'reversal amount % cents exceeds the transfer amount of % cents', amount_cents, t.amount_cents
      using errcode = 'invalid_parameter_value';
  end if;
  if t.status = 'reversal_pending' then
    raise exception 'seller transfer % is already reversal_pending (% cents)', t.id, coalesce(t.reversal_amount_cents, t.amount_cents)
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  update marketplace.seller_transfers s
     set status = 'reversal_pending', reversal_amount_cents = reverse_seller_transfer.amount_cents,
         next_retry_at = null, updated_at = now()
   where s.id = t.id
  returning s.* into t;
  return t;
end $$;
comment on function marketplace.reverse_seller_transfer(uuid, text, bigint) is
  'Requests the reversal of a paid seller transfer (completed -> reversal_pending), whole or amount_cents of it; the worker creates the Stripe reversal.';

-- Makes the worker's next step due now. A row whose status has worker work (pending, failed,
-- reversal_pending) keeps its status and gets next_retry_at = now(), which re-enqueues its job.
-- Any other row would have to move back into failed, which the matrix decides: terminal rows
-- and completed rows are refused.
create function marketplace.retry_seller_transfer(id uuid, reason text)
returns marketplace.seller_transfers language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  t marketplace.seller_transfers;
begin
  t := marketplace.lock_seller_transfer_for_admin(id, reason);
  update marketplace.seller_transfers s
     set status = case when st.worker_task is not null then s.status else 'failed' end,
         next_retry_at = now(), updated_at = now()
    from marketplace.seller_transfer_statuses st
   where s.id = t.id and st.status = s.status
  returning s.* into t;
  return t;
end $$;
comment on function marketplace.retry_seller_transfer(uuid, text) is
  'Makes the worker''s next attempt on a seller transfer due now (next_retry_at = now()); terminal rows are refused by the matrix.';

-- Gives up: failed or reversal_pending -> permanently_failed, with the reason as last_error.
create function marketplace.fail_seller_transfer(id uuid, reason text)
returns marketplace.seller_transfers language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  t marketplace.seller_transfers;
begin
  t := marketplace.lock_seller_transfer_for_admin(id, reason);
  if t.status = 'permanently_failed' then
    -- Same-state is legal, but would overwrite the error that made it give up.
    raise exception 'seller transfer % is already permanently_failed (last_error: %)', t.id, coalesce(left(regexp_replace(t.last_error, '\s+', ' ', 'g'), 200), 'none')
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  update marketplace.seller_transfers s
     set status = 'permanently_failed', next_retry_at = null, last_error = btrim(reason), updated_at = now()
   where s.id = t.id
  returning s.* into t;
  return t;
end $$;
comment on function marketplace.fail_seller_transfer(uuid, text) is
  'Gives a seller transfer up (-> permanently_failed) with the reason as last_error; the matrix decides from which statuses.';

------------------------------------------------------------------------------
-- 4. Grants.
------------------------------------------------------------------------------
revoke all on function marketplace.seller_transfer_status_since(uuid), marketplace.seller_transfer_jobs(uuid),
  marketplace.lock_seller_transfer_for_admin(uuid, text), marketplace.reverse_seller_transfer(uuid, text, bigint),
  marketplace.retry_seller_transfer(uuid, text), marketplace.fail_seller_transfer(uuid, text)
  from public;
grant select on marketplace.seller_transfer_status_slos, marketplace.seller_transfers_past_slo, marketplace.seller_transfer_stats
  to marketplace_reader, marketplace_writer, marketplace_worker;
grant execute on function marketplace.seller_transfer_status_since(uuid), marketplace.seller_transfer_jobs(uuid)
  to marketplace_reader, marketplace_writer, marketplace_worker;
grant execute on function marketplace.lock_seller_transfer_for_admin(uuid, text), marketplace.reverse_seller_transfer(uuid, text, bigint),
  marketplace.retry_seller_transfer(uuid, text), marketplace.fail_seller_transfer(uuid, text)
  to marketplace_writer, marketplace_worker;
