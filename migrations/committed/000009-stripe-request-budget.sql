--! Previous: sha1:501e14470089b329e6d93b68e917aae8d240109f
--! Hash: sha1:233da6f0720302e3e6ed68f5137a5499aee455f8
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
--     first   = greatest(next_slot_at of both rows, now())
--     spacing = greatest over both rows of 1000 ms / (rate * (1 - SAFETY_MARGIN))
--     slot i  = first + i * spacing   (i = 0 … N-1)
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
-- SAFETY_MARGIN = 0.05: the fleet runs at 95 % of the rate. Slots are the times requests
-- *leave*; Stripe counts them when they *arrive* (a sliding 1 s window), after a variable delay
-- (timers, event loop, CPU scheduling, network). With a limit of L per second and spacing s,
-- Stripe sees an (L+1)-th request in one second only if request k is delayed by more than
-- L*s - 1000 ms relative to request k+L. Uniform spacing maximises that tolerance for a given
-- mean rate (bunched slots only lower it). For a budget just below the limit (24/s, Stripe
-- 25/s) the margin buys 25 * 1000 / (24 * 0.95) - 1000 = 96 ms of tolerance instead of 42 ms
-- without it; a margin per slot in milliseconds would instead cost more the higher the rate.
-- The other half of the fix is in the caller (src/stripe/request-budget.ts): it turns the
-- database's slot times into local timers with a clock offset taken from its fastest round
-- trip, not from the midpoint of each round trip (a reservation that waited for the row lock
-- would otherwise shift its batch by half that wait, towards another process's batch).
--
-- Adaptive rate, per row: a decrease proportional to the evidence, a recovery that is fast
-- back to just below the last rate that drew a 429 and cautious above it.
--   current_per_second starts at configured_per_second.
--   report_stripe_rate_limited(endpoint, reason) on the budget the reason names:
--       global-rate, global-concurrency, unknown/absent reason -> 'global'
--       endpoint-rate, endpoint-concurrency                    -> that endpoint's row (else 'global')
--     * before hold_until = greatest(decrease + DECREASE_HOLDOFF (1 s), next_slot_at at the
--       decrease + 0.25 s): no change (rate_limited_at still moves). Those 429s answer
--       requests whose slots were reserved before the decrease: each process holds up to about
--       0.6 s of slots, one after the other in the shared schedule, so with three processes the
--       schedule runs up to ~1.5 s ahead and a decrease takes effect only after it. They come
--       several at once from one stall at the sender or at Stripe, reported by many processes:
--       one cause, one decrease. Except: after a
--       stray decrease, ESCALATE_AT = greatest(5, 30 % of the rate that drew it) 429s within
--       the hold-off halve the rate at once (Stripe's limit fell far below the rate: waiting out
--       the hold-off would cost another second of 429s).
--     * the previous 429 on the row less than PERSIST_GAP = 1 s ago, after the hold-off:
--       429s kept coming through the hold-off at the already lowered rate, Stripe's limit
--       really is lower:
--       rate * DECREASE_FACTOR = 0.5;
--     * otherwise (a stray 429: the first after a clean period, or 429s that died down during
--       the hold-off): rate * STRAY_FACTOR = 0.95.
--     Under heavy jitter strays recur and each takes 5 % off: the spacing widens until the
--     window-edge collisions stop, an adaptive safety margin on top of SAFETY_MARGIN.
--     Never below min_per_second = 1. A stray decrease records ceiling_per_second = the rate that
--     drew it (at or just above the limit); a halving records the halved rate (the limit is
--     somewhere below the rate that drew it: recovering fast towards that rate re-entered the
--     limit within seconds, measured as repeated 429 episodes after a halved limit). Every
--     decrease pushes next_slot_at one new spacing past now (a pause while Stripe's window drains).
--     Concurrency reasons lower the rate: in-flight requests = rate x latency (Little's law),
--     so a lower rate is a lower concurrency without a second, distributed semaphore.
--   Recovery: once RECOVERY_QUIET = 2 s passed without a 429 on the row, the rate grows
--     additively, never above configured:
--       by RECOVERY_STEP = 10 % of configured per second below KNEE = 0.9 x ceiling,
--       by PROBE_STEP    =  1 % of configured per second from the knee up.
--     So after a halving the rate probes upwards slowly from the halved rate: an overshoot of
--     the lowered limit is small, answered by one stray 429 and a 5 % step back, not by another
--     halving; when Stripe restores its limit the fleet climbs back at 1 % of configured per
--     second. After a stray 429 at the configured rate the rate is at 95 %, above the knee: full
--     again 2 s + 5 s later.
--     Computed lazily from timestamps (stripe_request_budget_rate) by every reservation, so
--     recovery needs no timer; the rate is piecewise linear in time and depends only on the
--     current rate, so storing it at any moment and growing from there gives the same curve.
create table marketplace.stripe_request_budgets (
  budget text primary key constraint stripe_request_budget_key check (budget = 'global' or budget ~ '^(GET|POST|DELETE) /v1/'),
  configured_per_second double precision not null constraint stripe_request_budget_configured check (configured_per_second > 0),
  current_per_second double precision not null constraint stripe_request_budget_current check (current_per_second > 0),
  min_per_second double precision not null default 1 constraint stripe_request_budget_min check (min_per_second > 0),
  next_slot_at timestamptz not null default now(),
  adjusted_at timestamptz not null default now(),
  decreased_at timestamptz,
  hold_until timestamptz,
  ceiling_per_second double precision constraint stripe_request_budget_ceiling check (ceiling_per_second > 0),
  decrease_factor double precision,
  rate_limited_total_at_decrease bigint not null default 0,
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
comment on column marketplace.stripe_request_budgets.decreased_at is
  'When the rate was last lowered after a 429.';
comment on column marketplace.stripe_request_budgets.hold_until is
  'No further decrease before this (slots reserved before the last decrease still going out): greatest(decrease + 1 s, next_slot_at at the decrease + 0.25 s).';
comment on column marketplace.stripe_request_budgets.ceiling_per_second is
  'The rate that drew the last decrease: recovery is fast up to 90 % of it, slow (1 % of configured per second) from there to 110 % of it.';
comment on column marketplace.stripe_request_budgets.decrease_factor is
  'The last decrease: 0.95 (a stray 429) or 0.5 (429s that kept coming).';
comment on column marketplace.stripe_request_budgets.rate_limited_total_at_decrease is
  'rate_limited_total right after the last decrease: the 429s since then are rate_limited_total minus this.';

insert into marketplace.stripe_request_budgets (budget, configured_per_second, current_per_second) values
  ('global', 20, 20),
  ('POST /v1/transfers', 20, 20),
  ('POST /v1/transfers/{id}/reversals', 20, 20);

-- The rate of a budget at `at`, with the recovery since the last 429 applied (see the header).
create function marketplace.stripe_request_budget_rate(configured double precision, current_rate double precision,
  adjusted_at timestamptz, rate_limited_at timestamptz, ceiling double precision, at timestamptz)
returns double precision language plpgsql immutable parallel safe
set search_path = pg_catalog, pg_temp as $$
declare
  fast constant double precision := configured * 0.10;  -- RECOVERY_STEP per second
  slow constant double precision := configured * 0.01;  -- PROBE_STEP per second
  knee double precision := least(configured, coalesce(0.9 * ceiling, configured));
  x double precision := current_rate;
  dt double precision;
begin
  if current_rate >= configured then return configured; end if;
  if rate_limited_at is not null and at < rate_limited_at + interval '2 seconds' then return current_rate; end if;
  dt := greatest(0, extract(epoch from at - greatest(adjusted_at, coalesce(rate_limited_at + interval '2 seconds', adjusted_at)))::double precision);
  if x < knee then
    if dt <= (knee - x) / fast then return x + fast * dt; end if;
    dt := dt - (knee - x) / fast;
    x := knee;
  end if;
  return least(configured, x + slow * dt);
end
$$;
comment on function marketplace.stripe_request_budget_rate(double precision, double precision, timestamptz, timestamptz, double precision, timestamptz) is
  'Adaptive rate at a time: once 2 s passed without a 429, current_rate grows by 10 % of configured per second below 90 % of the ceiling, by 1 % above it; capped at configured.';

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
           marketplace.stripe_request_budget_rate(b.configured_per_second, b.current_per_second, b.adjusted_at, b.rate_limited_at, b.ceiling_per_second, now()) as rate
      from marketplace.stripe_request_budgets b
     where b.budget in ('global', $1) and $2 between 1 and 10000
     order by b.budget
       for update
  ), plan as (
    -- clock_timestamp(), not now(): the statement may have waited for the row locks.
    select greatest(max(l.next_slot_at), clock_timestamp()) as first_at, max(1000.0 / (l.rate * (1 - 0.05))) as spacing_ms,
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

-- A 429 from Stripe: lower the budget the reason names for the whole fleet, in proportion to
-- the evidence (see the header). decreased: the rate went down; factor: by how much (1 = no change).
create function marketplace.report_stripe_rate_limited(endpoint text, reason text)
returns table(budget text, current_per_second double precision, decreased boolean, factor double precision)
language sql volatile security definer
set search_path = pg_catalog, pg_temp as $$
  with target as (
    select coalesce((select b.budget from marketplace.stripe_request_budgets b
                      where b.budget = $1 and $2 in ('endpoint-rate', 'endpoint-concurrency')), 'global') as budget
  ), locked as (
    select b.budget,
           marketplace.stripe_request_budget_rate(b.configured_per_second, b.current_per_second, b.adjusted_at, b.rate_limited_at, b.ceiling_per_second, now()) as rate,
           (b.rate_limited_at is not null and now() - b.rate_limited_at < interval '1 second') as persisting,
           (b.hold_until is not null and now() < b.hold_until) as holdoff,
           (b.decrease_factor = 0.95 and b.rate_limited_total + 1 - b.rate_limited_total_at_decrease
              >= greatest(5, 0.3 * b.ceiling_per_second)) as escalate
      from marketplace.stripe_request_budgets b join target t on t.budget = b.budget
       for update of b
  ), decided as (
    select l.*, case when l.holdoff and l.escalate then 0.5 when l.holdoff then 1.0 when l.persisting then 0.5 else 0.95 end::double precision as factor
      from locked l
  ), applied as (
    select d.*, greatest(b.min_per_second, least(d.rate, d.rate * d.factor)) as new_rate
      from decided d join marketplace.stripe_request_budgets b on b.budget = d.budget
  )
  update marketplace.stripe_request_budgets b
     set current_per_second = a.new_rate,
         decreased_at = case when a.new_rate < a.rate then now() else b.decreased_at end,
         hold_until = case when a.new_rate < a.rate
                           then greatest(now() + interval '1 second', b.next_slot_at + interval '0.25 seconds') else b.hold_until end,
         ceiling_per_second = case when a.new_rate < a.rate then (case when a.factor = 0.5 then a.new_rate else a.rate end)
                                   else b.ceiling_per_second end,
         decrease_factor = case when a.new_rate < a.rate then a.factor else b.decrease_factor end,
         rate_limited_total_at_decrease = case when a.new_rate < a.rate then b.rate_limited_total + 1 else b.rate_limited_total_at_decrease end,
         adjusted_at = now(),
         next_slot_at = greatest(b.next_slot_at, now() + make_interval(secs => 1.0 / (a.new_rate * (1 - 0.05)))),
         rate_limited_at = now(),
         rate_limited_reason = coalesce(nullif($2, ''), 'unknown'),
         rate_limited_total = b.rate_limited_total + 1,
         updated_at = now()
    from applied a
   where b.budget = a.budget
  returning b.budget, b.current_per_second, a.new_rate < a.rate, a.new_rate / a.rate
$$;
comment on function marketplace.report_stripe_rate_limited(text, text) is
  'Reports a Stripe 429 (endpoint, Stripe-Rate-Limited-Reason) for the fleet: a stray 429 lowers the named budget''s rate by 5 %, 429s that keep coming (less than 1 s apart after the hold-off, or many within it) halve it; it recovers after 2 s without 429s, fast up to 90 % of the rate that drew the 429, slowly above.';

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
         ceiling_per_second = b.ceiling_per_second * w.rate / b.configured_per_second,
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
       marketplace.stripe_request_budget_rate(b.configured_per_second, b.current_per_second, b.adjusted_at, b.rate_limited_at, b.ceiling_per_second, now()) as current_per_second,
       greatest(b.next_slot_at - now(), interval '0') as backlog,
       b.rate_limited_at, b.rate_limited_reason, b.rate_limited_total, b.reserved_total, b.ceiling_per_second
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
revoke all on function marketplace.stripe_request_budget_rate(double precision, double precision, timestamptz, timestamptz, double precision, timestamptz),
  marketplace.reserve_stripe_request_slots(text, integer), marketplace.report_stripe_rate_limited(text, text),
  marketplace.configure_stripe_request_budget(double precision, double precision),
  marketplace.record_seller_transfer_rate_limited(uuid, text, text, timestamptz) from public;
grant select on marketplace.stripe_request_budgets, marketplace.stripe_request_budget_status
  to marketplace_reader, marketplace_writer, marketplace_worker;
grant execute on function marketplace.stripe_request_budget_rate(double precision, double precision, timestamptz, timestamptz, double precision, timestamptz)
  to marketplace_reader, marketplace_writer, marketplace_worker;
grant execute on function marketplace.reserve_stripe_request_slots(text, integer), marketplace.report_stripe_rate_limited(text, text),
  marketplace.configure_stripe_request_budget(double precision, double precision),
  marketplace.record_seller_transfer_rate_limited(uuid, text, text, timestamptz) to marketplace_worker;
