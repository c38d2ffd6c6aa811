--! Previous: sha1:b6077715e50e20f1ecfb5cbc810c8ce4840b9863
--! Hash: sha1:61725aa609d64f6b0a8a57dd7a1bc17b62f45562
--! Message: stripe request budget

-- Stripe request budget: one budget of Stripe requests for every worker process on this
-- database, so the fleet together stays under Stripe's limiters and slows down together when
-- Stripe answers 429.
--
-- Stripe's limits (docs "Rate limits"): per account 100 requests/s live, 25/s in a sandbox;
-- per endpoint 25/s by default (POST /v1/transfers and POST /v1/transfers/{id}/reversals are
-- endpoints); a concurrency limiter; Stripe may lower any of them. Beyond them: 429,
-- code rate_limit, header Stripe-Rate-Limited-Reason (global-rate, endpoint-rate,
-- global-concurrency, endpoint-concurrency, …).
--
-- Rows: 'global' (every request: creates, reversals, lookups) and one per rate-limited
-- endpoint ('POST /v1/transfers', 'POST /v1/transfers/{id}/reversals'). A request to an
-- endpoint without a row (GET lookups) draws from 'global' only.
--
-- Scheduler: GCRA ("generic cell rate algorithm"). Each row keeps next_slot_at, its
-- theoretical arrival time: the earliest moment the next request may start. Reserving N slots
-- for an endpoint locks the 'global' row and the endpoint's row (in key order, so two
-- reservations never deadlock), then
--     first  = greatest(next_slot_at of both rows, now())
--     spacing = greatest over both rows of (1000 ms + JITTER_ALLOWANCE) / rate
--     slot i = first + i * spacing   (i = 0 … N-1)
--     next_slot_at of both rows = first + N * spacing
-- in one UPDATE … RETURNING: one database round trip per batch. Because every reservation
-- starts where the previous one (of any process) ended, no two slots of one budget are closer
-- than its spacing: the fleet never starts more than `rate` requests in any sliding second.
-- A batch that draws on two budgets is spaced by the slower one and advances both rows by the
-- same span: sound for both, but while an endpoint budget below the global one is the
-- bottleneck, the global budget is not fully used (one next_slot_at per row cannot lend the
-- gaps between one endpoint's slots to another endpoint). Equal rates (the test-mode
-- defaults) lose nothing; callers keep batches short (about half a second).
-- Every request draws on 'global', so the sum over endpoints never exceeds the global rate.
-- No burst: an idle budget starts at now(), it does not bank unused slots.
--
-- JITTER_ALLOWANCE = 50 ms: slots are the times requests *leave*; they reach Stripe after a
-- variable delay (timers, event loop, network). With spacing (1000 + 50) / rate ms, requests
-- k and k + rate are at least 1050 ms apart when sent, so still >= 1000 ms apart on arrival if
-- no request is delayed by more than 50 ms relative to another: Stripe's sliding 1 s window
-- never sees more than `rate`. Cost: the fleet runs at rate / 1.05.
--
-- Adaptive rate (AIMD, like TCP congestion control), per row:
--   current_per_second starts at configured_per_second.
--   Multiplicative decrease: report_stripe_rate_limited(endpoint, reason) multiplies the rate
--     of the budget the reason names by DECREASE_FACTOR = 0.5 (not below min_per_second = 1),
--     at most once per DECREASE_HOLDOFF = 1 s per row (the 429s of one overload, reported by
--     many processes at once, count once; a second decrease needs 429s that persist for a whole
--     window at the already lowered rate), and pushes its
--     next_slot_at one new spacing past now (a short pause while Stripe's window drains).
--       global-rate, global-concurrency, unknown/absent reason -> 'global'
--       endpoint-rate, endpoint-concurrency                    -> that endpoint's row (else 'global')
--     Concurrency reasons lower the rate: in-flight requests = rate x latency (Little's law),
--     so a lower rate is a lower concurrency without a second, distributed semaphore.
--   Additive increase: once RECOVERY_QUIET = 5 s passed without a 429 on the row, the rate
--     grows by RECOVERY_STEP = 5 % of the configured rate per second (from half to full in
--     10 s), never above configured. Computed lazily from timestamps (stripe_request_budget_rate)
--     by every reservation, so recovery needs no timer.
create table marketplace.stripe_request_budgets (
  budget text primary key constraint stripe_request_budget_key check (budget = 'global' or budget ~ '^(GET|POST|DELETE) /v1/'),
  configured_per_second double precision not null constraint stripe_request_budget_configured check (configured_per_second > 0),
  current_per_second double precision not null constraint stripe_request_budget_current check (current_per_second > 0),
  min_per_second double precision not null default 1 constraint stripe_request_budget_min check (min_per_second > 0),
  next_slot_at timestamptz not null default now(),
  adjusted_at timestamptz not null default now(),
  decreased_at timestamptz,
  rate_limited_at timestamptz,
  rate_limited_reason text,
  rate_limited_total bigint not null default 0,
  reserved_total bigint not null default 0,
  updated_at timestamptz not null default now()
);
comment on table marketplace.stripe_request_budgets is
  'The fleet''s Stripe request budget: configured and current (adaptive) rate per budget (''global'', or an endpoint), and its GCRA scheduler state (next_slot_at). Written only through reserve_stripe_request_slots, report_stripe_rate_limited and configure_stripe_request_budget.';
comment on column marketplace.stripe_request_budgets.next_slot_at is
  'GCRA theoretical arrival time: the earliest start of the next request drawing on this budget.';

insert into marketplace.stripe_request_budgets (budget, configured_per_second, current_per_second) values
  ('global', 20, 20),
  ('POST /v1/transfers', 20, 20),
  ('POST /v1/transfers/{id}/reversals', 20, 20);

-- The rate of a budget at `at`, with the additive increase since the last 429 applied.
create function marketplace.stripe_request_budget_rate(configured double precision, current_rate double precision,
  adjusted_at timestamptz, rate_limited_at timestamptz, at timestamptz)
returns double precision language sql immutable parallel safe
set search_path = pg_catalog, pg_temp as $$
  select case
    when current_rate >= configured then configured
    when rate_limited_at is not null and at < rate_limited_at + interval '5 seconds' then current_rate
    else least(configured, current_rate + configured * 0.05 * greatest(0, extract(epoch from
           at - greatest(adjusted_at, coalesce(rate_limited_at + interval '5 seconds', adjusted_at)))::double precision))
  end
$$;
comment on function marketplace.stripe_request_budget_rate(double precision, double precision, timestamptz, timestamptz, timestamptz) is
  'Adaptive rate at a time: current_rate plus 5 % of configured per second once 5 s passed without a 429, capped at configured.';

-- Reserve `slots` request slots for `endpoint` (and 'global'). Returns one row: slot i starts at
-- first_slot_at + i * spacing_ms; reserved_at is the database's clock when the slots were
-- computed (callers turn slots into local delays relative to it, so clocks need not agree).
create function marketplace.reserve_stripe_request_slots(endpoint text, slots integer)
returns table(first_slot_at timestamptz, spacing_ms double precision, reserved_at timestamptz, slots integer,
              global_per_second double precision, endpoint_per_second double precision)
language sql volatile security definer
set search_path = pg_catalog, pg_temp as $$
  with locked as (
    select b.budget, b.next_slot_at, b.current_per_second,
           marketplace.stripe_request_budget_rate(b.configured_per_second, b.current_per_second, b.adjusted_at, b.rate_limited_at, now()) as rate
      from marketplace.stripe_request_budgets b
     where b.budget in ('global', $1) and $2 between 1 and 10000
     order by b.budget
       for update
  ), plan as (
    -- clock_timestamp(), not now(): the statement may have waited for the row locks.
    select greatest(max(l.next_slot_at), clock_timestamp()) as first_at, max((1000.0 + 50.0) / l.rate) as spacing_ms,
           clock_timestamp() as at
      from locked l
  ), reserved as (
    update marketplace.stripe_request_budgets b
       set next_slot_at = p.first_at + make_interval(secs => $2 * p.spacing_ms / 1000.0),
           current_per_second = l.rate,
           adjusted_at = case when l.rate <> l.current_per_second then now() else b.adjusted_at end,
           reserved_total = b.reserved_total + $2,
           updated_at = now()
      from locked l, plan p
     where b.budget = l.budget
    returning b.budget, p.first_at, p.spacing_ms, p.at, b.current_per_second
  )
  select min(r.first_at), max(r.spacing_ms), min(r.at), $2,
         max(r.current_per_second) filter (where r.budget = 'global'),
         max(r.current_per_second) filter (where r.budget <> 'global')
    from reserved r
  having count(*) > 0
$$;
comment on function marketplace.reserve_stripe_request_slots(text, integer) is
  'Reserves N Stripe request slots for an endpoint from its budget and the global budget, atomically, in one statement (GCRA). Slot i starts at first_slot_at + i * spacing_ms.';

-- A 429 from Stripe: lower the budget the reason names for the whole fleet (see the header).
create function marketplace.report_stripe_rate_limited(endpoint text, reason text)
returns table(budget text, current_per_second double precision, decreased boolean)
language sql volatile security definer
set search_path = pg_catalog, pg_temp as $$
  with target as (
    select coalesce((select b.budget from marketplace.stripe_request_budgets b
                      where b.budget = $1 and $2 in ('endpoint-rate', 'endpoint-concurrency')), 'global') as budget
  ), locked as (
    select b.budget,
           marketplace.stripe_request_budget_rate(b.configured_per_second, b.current_per_second, b.adjusted_at, b.rate_limited_at, now()) as rate,
           (b.decreased_at is null or now() - b.decreased_at >= interval '1 second') as decrease
      from marketplace.stripe_request_budgets b join target t on t.budget = b.budget
       for update of b
  )
  update marketplace.stripe_request_budgets b
     set current_per_second = case when l.decrease then greatest(b.min_per_second, l.rate * 0.5) else l.rate end,
         decreased_at = case when l.decrease then now() else b.decreased_at end,
         adjusted_at = now(),
         next_slot_at = greatest(b.next_slot_at, now()
           + make_interval(secs => 1.05 / case when l.decrease then greatest(b.min_per_second, l.rate * 0.5) else l.rate end)),
         rate_limited_at = now(),
         rate_limited_reason = coalesce(nullif($2, ''), 'unknown'),
         rate_limited_total = b.rate_limited_total + 1,
         updated_at = now()
    from locked l
   where b.budget = l.budget
  returning b.budget, b.current_per_second, l.decrease
$$;
comment on function marketplace.report_stripe_rate_limited(text, text) is
  'Reports a Stripe 429 (endpoint, Stripe-Rate-Limited-Reason): halves the named budget''s rate for the fleet (at most once per 1 s); it recovers by 5 % of configured per second after 5 s without 429s.';

-- Sets the configured rates (each worker process at start; the last one wins). A budget that is
-- currently lowered keeps its ratio to the configured rate.
create function marketplace.configure_stripe_request_budget(global_per_second double precision, endpoint_per_second double precision)
returns table(budget text, configured_per_second double precision, current_per_second double precision)
language sql volatile security definer
set search_path = pg_catalog, pg_temp as $$
  with wanted as (
    select b.budget, case when b.budget = 'global' then $1 else $2 end as rate
      from marketplace.stripe_request_budgets b
     where $1 > 0 and $2 > 0
     order by b.budget
       for update
  )
  update marketplace.stripe_request_budgets b
     set current_per_second = least(w.rate, b.current_per_second * w.rate / b.configured_per_second),
         configured_per_second = w.rate,
         updated_at = now()
    from wanted w
   where b.budget = w.budget and b.configured_per_second <> w.rate
  returning b.budget, b.configured_per_second, b.current_per_second
$$;
comment on function marketplace.configure_stripe_request_budget(double precision, double precision) is
  'Sets the configured rate of the global budget and of every endpoint budget (STRIPE_REQUESTS_PER_SECOND, STRIPE_ENDPOINT_REQUESTS_PER_SECOND). Returns the rows it changed.';

create view marketplace.stripe_request_budget_status as
select b.budget, b.configured_per_second,
       marketplace.stripe_request_budget_rate(b.configured_per_second, b.current_per_second, b.adjusted_at, b.rate_limited_at, now()) as current_per_second,
       greatest(b.next_slot_at - now(), interval '0') as backlog,
       b.rate_limited_at, b.rate_limited_reason, b.rate_limited_total, b.reserved_total
  from marketplace.stripe_request_budgets b;
comment on view marketplace.stripe_request_budget_status is
  'The fleet''s Stripe request budget now: configured vs current rate per budget, how far ahead slots are reserved (backlog), the last 429.';

-- A 429 is not a failed attempt: Stripe did nothing. The worker waits for the budget within its
-- job for a while; past that it hands the row back with this: next_retry_at (when to look
-- again; a pending row may carry one, the dispatcher reads it) and last_error (what operators
-- see) change; status, retry_count, the idempotency key generation and in-doubt flag do not, so
-- the same request is made again with the same key, and no history row is written (same state).
-- Returns the row's status, or null when the row is no longer in from_status.
create function marketplace.record_seller_transfer_rate_limited(id uuid, from_status text, error text, retry_at timestamptz)
returns text language sql volatile
set search_path = pg_catalog, pg_temp as $$
  update marketplace.seller_transfers t
     set next_retry_at = $4,
         last_error = left($3, 2000),
         updated_at = now()
   where t.id = $1 and t.status = $2 and t.status in ('pending', 'failed', 'reversal_pending') and $4 is not null
  returning t.status
$$;
comment on function marketplace.record_seller_transfer_rate_limited(uuid, text, text, timestamptz) is
  'Worker: Stripe answered 429 and the request budget kept the call waiting too long: the row is due again at retry_at, with last_error saying so; status, retry_count and the idempotency key are unchanged (not a failed attempt).';

revoke all on table marketplace.stripe_request_budgets, marketplace.stripe_request_budget_status from public;
revoke all on function marketplace.stripe_request_budget_rate(double precision, double precision, timestamptz, timestamptz, timestamptz),
  marketplace.reserve_stripe_request_slots(text, integer), marketplace.report_stripe_rate_limited(text, text),
  marketplace.configure_stripe_request_budget(double precision, double precision),
  marketplace.record_seller_transfer_rate_limited(uuid, text, text, timestamptz) from public;
grant select on marketplace.stripe_request_budgets, marketplace.stripe_request_budget_status
  to marketplace_reader, marketplace_writer, marketplace_worker;
grant execute on function marketplace.stripe_request_budget_rate(double precision, double precision, timestamptz, timestamptz, timestamptz)
  to marketplace_reader, marketplace_writer, marketplace_worker;
grant execute on function marketplace.reserve_stripe_request_slots(text, integer), marketplace.report_stripe_rate_limited(text, text),
  marketplace.configure_stripe_request_budget(double precision, double precision),
  marketplace.record_seller_transfer_rate_limited(uuid, text, text, timestamptz) to marketplace_worker;
