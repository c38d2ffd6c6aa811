--! Previous: sha1:46b25e1b6a015a30a6cb7d2f62837b58f4379f09
--! Hash: sha1:b2265fc5e94f1a3b2998020e04ced47328027b27
--! Message: Adoption hands over by the legacy transfer_group and metadata, and checks its rows with a function the planner inlines

-- Handover by the legacy transfer_group or metadata (issue 30, docs/adopting.md#handover). When
-- the adoption's map names them (`--map transfer_group=SQL`, `--map metadata.KEY=SQL`, over the
-- legacy row), adopt run stores, for each row it copies, what the legacy worker put on its Stripe
-- transfer; before its first Stripe call on an adopted row the worker asks
-- seller_transfer_handover_transfer which of the transfers Stripe listed is the legacy system's
-- payout of this row: the rule lives here, the worker only lists and records.
-- - seller_transfer_adoption_handover: per adopted row, the transfer_group and metadata its legacy
--   transfer carries (only rows whose map gave one); written by adopt run, removed by adopt undo.
-- - seller_transfer_handover_transfer(id, candidates): the matching rule.
-- - seller_transfer_adoption_problem_list(row): the rules of seller_transfer_adoption_problems
--   (000032), as a one-row set-returning function: PostgreSQL inlines it into adopt's queries
--   (a scalar SQL function with a subquery is never inlined), so plan and run no longer pay a
--   function call per row (88 µs a row under load, a third of adopt run at 1M rows); the scalar
--   function reads it.
-- New objects only: nothing on a writer's path, no lock on seller_transfers.

create table if not exists marketplace.seller_transfer_adoption_handover (
  transfer_id    uuid primary key,
  transfer_group text,
  metadata       jsonb not null default '{}'::jsonb,
  constraint seller_transfer_adoption_handover_names_something check (transfer_group is not null or metadata <> '{}'::jsonb),
  constraint seller_transfer_adoption_handover_metadata_object check (jsonb_typeof(metadata) = 'object')
);
comment on table marketplace.seller_transfer_adoption_handover is
  'Per row adopted by seller-transfers adopt run whose map names the legacy transfer_group or metadata: what the legacy worker''s Stripe transfer for it carries. The worker''s handover match (seller_transfer_handover_transfer) must agree with it.';
revoke all on marketplace.seller_transfer_adoption_handover from public;
grant select on marketplace.seller_transfer_adoption_handover to marketplace_reader, marketplace_worker;

create or replace function marketplace.seller_transfer_handover_transfer(p_id uuid, candidates jsonb)
 returns text
 language sql
 stable
as $function$
  -- Handover: of the Stripe transfers listed (candidates: [{id, amount, currency, destination,
  -- created, transfer_group, metadata}]), the one the legacy system made for this adopted row, or
  -- null: to the row's destination, for its amount and currency, created at or after the row,
  -- without this project's metadata, with the legacy transfer_group and metadata the adoption
  -- recorded for the row (when its map named them), and recorded by no other row; the oldest.
  -- Not adopted (no adopted event): null.
  select c.id
    from marketplace.seller_transfers t
    join lateral (select 1 from marketplace.seller_transfer_events e
                   where e.transfer_id = t.id and e.action = 'adopted' limit 1) adopted on true
    left join marketplace.seller_transfer_adoption_handover h on h.transfer_id = t.id
   cross join lateral jsonb_to_recordset(candidates)
         as c(id text, amount bigint, currency text, destination text, created bigint, transfer_group text, metadata jsonb)
   where t.id = p_id
     and c.amount = t.amount_cents and c.currency = t.currency and c.destination = t.stripe_account_id
     and c.created >= floor(extract(epoch from t.created_at))
     and not coalesce(c.metadata ? 'seller_transfer_id', false)
     and (h.transfer_group is null or c.transfer_group is not distinct from h.transfer_group)
     and (h.metadata is null or coalesce(c.metadata, '{}'::jsonb) @> h.metadata)
     and not exists (select 1 from marketplace.seller_transfers o where o.stripe_transfer_id = c.id and o.id <> t.id)
   order by c.created, c.id
   limit 1
$function$;
comment on function marketplace.seller_transfer_handover_transfer(uuid, jsonb) is
  'Handover (docs/adopting.md#handover): which of the listed Stripe transfers the legacy system made for this adopted row (destination, amount, currency, created after the row, not ours, the recorded legacy transfer_group and metadata, recorded by no other row; the oldest), or null.';
revoke all on function marketplace.seller_transfer_handover_transfer(uuid, jsonb) from public;
grant execute on function marketplace.seller_transfer_handover_transfer(uuid, jsonb) to marketplace_reader, marketplace_worker;

create or replace function marketplace.seller_transfer_adoption_problem_list(r marketplace.seller_transfers)
 returns setof text[]
 language sql
 stable
 rows 1
as $function$
  -- What would make the guard refuse this row, or make money wrong, as an adopted row: the
  -- statuses, currencies and column couplings of marketplace.seller_transfers, as problem codes
  -- (one row; empty array: none). A set-returning SQL function without SET or SECURITY DEFINER so
  -- that the planner inlines it where adopt calls it in FROM (LATERAL), its lookups becoming
  -- hashed subplans run once per query.
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
comment on function marketplace.seller_transfer_adoption_problem_list(marketplace.seller_transfers) is
  'Why a legacy row, mapped to seller_transfers'' columns, cannot be adopted as it is (one row; empty: it can). Called in FROM by seller-transfers adopt plan and run, where it is inlined; seller_transfer_adoption_problems(row) is the same as a scalar.';
revoke all on function marketplace.seller_transfer_adoption_problem_list(marketplace.seller_transfers) from public;
grant execute on function marketplace.seller_transfer_adoption_problem_list(marketplace.seller_transfers) to marketplace_reader;

create or replace function marketplace.seller_transfer_adoption_problems(r marketplace.seller_transfers)
 returns text[]
 language sql
 stable
as $function$
  select p.problems from marketplace.seller_transfer_adoption_problem_list(r) p(problems)
$function$;
