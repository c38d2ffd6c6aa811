--! Previous: sha1:dbf8a91978f9d2f505eecd9ac2843d96659e9c45
--! Hash: sha1:e1a93e42b59430de0d35fb8160fc9246a3d2e04a
--! Message: idempotency generations

-- Idempotency key generations. A Stripe request whose outcome we did not see (timeout, dropped
-- connection, 409 "key in use") may still be executing at Stripe, where a lookup cannot see it
-- yet. Its retry must therefore re-send the SAME idempotency key (Stripe then replays the saved
-- result, or answers 409 while it still runs); a new key is used only after Stripe answered
-- and a lookup proved nothing was created. retry_count counts attempts for the operator;
-- stripe_key_generation counts keys; stripe_request_in_doubt says the last request is unseen.

alter table marketplace.seller_transfers
  add column stripe_key_generation integer not null default 0 check (stripe_key_generation >= 0),
  add column stripe_request_in_doubt boolean not null default false;
comment on column marketplace.seller_transfers.stripe_key_generation is
  'Suffix of the idempotency key of the current Stripe operation; moves only after Stripe answered and nothing was created.';
comment on column marketplace.seller_transfers.stripe_request_in_doubt is
  'The last Stripe request ended without an answer (timeout, dropped connection, key in use): it may still run at Stripe.';

drop function marketplace.seller_transfer_for_task(uuid, text);
create function marketplace.seller_transfer_for_task(id uuid, task text)
returns table (
  id uuid, status text, stripe_account_id text, amount_cents bigint, currency text,
  order_id uuid, seller_id uuid, stripe_transfer_id text, reversal_amount_cents bigint,
  retry_count integer, next_retry_at timestamptz, last_error text, stripe_key_generation integer,
  stripe_request_in_doubt boolean, actionable boolean, state_since timestamptz)
language sql stable as $$
  select t.id, t.status, t.stripe_account_id, t.amount_cents, t.currency, t.order_id, t.seller_id,
         t.stripe_transfer_id, t.reversal_amount_cents, t.retry_count, t.next_retry_at, t.last_error,
         t.stripe_key_generation, t.stripe_request_in_doubt,
         s.worker_task = $2 and marketplace.seller_transfer_is_due(t.status, t.next_retry_at),
         (select max(e.occurred_at) from marketplace.seller_transfer_events e where e.transfer_id = t.id)
    from marketplace.seller_transfers t
    join marketplace.seller_transfer_statuses s on s.status = t.status
   where t.id = $1
$$;
comment on function marketplace.seller_transfer_for_task(uuid, text) is
  'The row as a worker task sees it: actionable = this task owns its status and it is due; state_since = last status change.';

-- A new phase (paid, reversed) starts its keys afresh.
create or replace function marketplace.mark_seller_transfer_paid(id uuid, stripe_transfer_id text, reason text)
returns boolean language plpgsql as $$
begin
  perform set_config('marketplace.transition_reason', reason, true);
  update marketplace.seller_transfers t
     set status = 'completed', stripe_transfer_id = $2, retry_count = 0, next_retry_at = null,
         last_error = null, stripe_key_generation = 0, stripe_request_in_doubt = false, updated_at = now()
   where t.id = $1 and t.status in ('pending', 'failed');
  return found;
end $$;

create or replace function marketplace.mark_seller_transfer_reversed(id uuid, stripe_reversal_id text, amount_cents bigint, reason text)
returns boolean language plpgsql as $$
begin
  perform set_config('marketplace.transition_reason', reason, true);
  update marketplace.seller_transfers t
     set status = 'reversed', stripe_reversal_id = $2, reversal_amount_cents = $3, retry_count = 0,
         next_retry_at = null, last_error = null, stripe_key_generation = 0, stripe_request_in_doubt = false,
         updated_at = now()
   where t.id = $1 and t.status = 'reversal_pending';
  return found;
end $$;

drop function marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text);
-- retry_at null: give up (permanently_failed). Otherwise count the attempt and schedule the
-- next one: pending becomes failed; failed and reversal_pending stay (same-state bump), and
-- the moved next_retry_at re-enqueues the job through the trigger.
-- new_key: the next attempt uses the next idempotency key (Stripe answered; nothing to replay).
-- in_doubt: the request got no answer; the next attempt re-sends the same key.
-- Giving up on a pending row takes the two legal steps, pending -> failed -> permanently_failed,
-- so the history shows that it failed and then that it was given up.
create function marketplace.record_seller_transfer_failure(
  id uuid, from_status text, error text, retry_at timestamptz, reason text,
  new_key boolean default true, in_doubt boolean default false)
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
         stripe_key_generation = t.stripe_key_generation + case when new_key then 1 else 0 end,
         stripe_request_in_doubt = in_doubt,
         updated_at = now()
   where t.id = record_seller_transfer_failure.id and t.status = current_status
  returning t.status into result;
  return result;
end $$;

revoke all on function marketplace.seller_transfer_for_task(uuid, text),
  marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text, boolean, boolean) from public;
grant execute on function marketplace.seller_transfer_for_task(uuid, text),
  marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text, boolean, boolean) to marketplace_worker;
