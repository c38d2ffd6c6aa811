-- Down for the migration in current.sql (handover by the legacy transfer_group or metadata): the
-- worker's handover matches by destination, amount, currency and time again, and
-- seller_transfer_adoption_problems holds its rules itself again; what adopt run stored
-- of the legacy transfer_group and metadata goes with its table.

create or replace function marketplace.seller_transfer_adoption_problems(r marketplace.seller_transfers)
 returns text[]
 language sql
 stable
as $function$
  -- What would make the guard refuse this row, or make money wrong, as an adopted row: the
  -- statuses, currencies and column couplings of marketplace.seller_transfers, as problem codes.
  -- No SET search_path (every name is qualified; not a definer): a SET clause keeps the planner
  -- from inlining it, and adopt run asks it for every row it copies (100x slower with it).
  select array_remove(array[
    case when r.id is null then 'null_id' end,
    case when r.order_id is null then 'null_order_id' end,
    case when r.seller_id is null then 'null_seller_id' end,
    case when r.stripe_account_id is null then 'null_stripe_account_id'
         when r.stripe_account_id !~ '^acct_[A-Za-z0-9]+$' then 'bad_stripe_account_id' end,
    case when r.amount_cents is null then 'null_amount_cents' when r.amount_cents <= 0 then 'amount_not_positive' end,
    case when r.currency is null then 'null_currency'
         when not exists (select 1 from marketplace.currencies c where c.code = r.currency) then 'currency_unknown' end,
    case when r.status is null then 'null_status'
         when not exists (select 1 from marketplace.seller_transfer_statuses s where s.status = r.status) then 'status_unknown' end,
    case when r.created_at is null then 'null_created_at' end,
    case when r.status in ('completed', 'reversal_pending', 'reversed') and r.stripe_transfer_id is null then 'paid_without_transfer_id' end,
    case when r.status = 'reversed' and r.stripe_reversal_id is null then 'reversed_without_reversal_id' end,
    case when r.stripe_reversal_id is not null and r.stripe_transfer_id is null then 'reversal_id_without_transfer_id' end,
    case when r.status = 'failed' and r.next_retry_at is null then 'failed_without_next_retry_at' end,
    case when r.stripe_transfer_id !~ '^tr_[A-Za-z0-9]+$' then 'bad_stripe_transfer_id' end,
    case when r.stripe_reversal_id !~ '^trr_[A-Za-z0-9]+$' then 'bad_stripe_reversal_id' end,
    case when r.retry_count < 0 then 'retry_count_negative' end
  ], null)
$function$;
comment on function marketplace.seller_transfer_adoption_problems(marketplace.seller_transfers) is
  'Why a legacy row, mapped to this table''s columns, cannot be adopted as it is (empty: it can): seller-transfers adopt plan reports them, adopt run refuses a batch holding one.';
drop function if exists marketplace.seller_transfer_adoption_problem_list(marketplace.seller_transfers);
drop function if exists marketplace.seller_transfer_handover_transfer(uuid, jsonb);
drop table if exists marketplace.seller_transfer_adoption_handover;
