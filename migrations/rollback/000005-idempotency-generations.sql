-- Down for 000005-idempotency-generations.sql: the 000002 versions of the worker functions.
drop function marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text, boolean, boolean);
drop function marketplace.seller_transfer_for_task(uuid, text);

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

create or replace function marketplace.mark_seller_transfer_paid(id uuid, stripe_transfer_id text, reason text)
returns boolean language plpgsql as $$
begin
  perform set_config('marketplace.transition_reason', reason, true);
  update marketplace.seller_transfers t
     set status = 'completed', stripe_transfer_id = $2, retry_count = 0, next_retry_at = null,
         last_error = null, updated_at = now()
   where t.id = $1 and t.status in ('pending', 'failed');
  return found;
end $$;

create or replace function marketplace.mark_seller_transfer_reversed(id uuid, stripe_reversal_id text, amount_cents bigint, reason text)
returns boolean language plpgsql as $$
begin
  perform set_config('marketplace.transition_reason', reason, true);
  update marketplace.seller_transfers t
     set status = 'reversed', stripe_reversal_id = $2, reversal_amount_cents = $3, retry_count = 0,
         next_retry_at = null, last_error = null, updated_at = now()
   where t.id = $1 and t.status = 'reversal_pending';
  return found;
end $$;

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

revoke all on function marketplace.seller_transfer_for_task(uuid, text),
  marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text) from public;
grant execute on function marketplace.seller_transfer_for_task(uuid, text),
  marketplace.record_seller_transfer_failure(uuid, text, text, timestamptz, text) to marketplace_worker;

alter table marketplace.seller_transfers drop column stripe_request_in_doubt, drop column stripe_key_generation;
