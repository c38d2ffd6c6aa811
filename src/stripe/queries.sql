-- The fleet's Stripe request budget (src/stripe/request-budget.ts), one named query each
-- (`-- name: x`), loaded by src/db/named-queries.ts. The budget is SQL functions and a view from
-- the migrations.

-- name: configure_budget
select * from marketplace.configure_stripe_request_budget($1, $2);

-- name: reserve_slots
select extract(epoch from first_slot_at)::float8 * 1000 as first_ms, extract(epoch from reserved_at)::float8 * 1000 as reserved_ms,
       spacing_ms, slots, global_per_second, endpoint_per_second
  from marketplace.reserve_stripe_request_slots($1, $2);

-- name: report_rate_limited
select budget, current_per_second, decreased, factor from marketplace.report_stripe_rate_limited($1, $2);

-- name: budget_status
select budget, configured_per_second, current_per_second, extract(epoch from backlog)::float8 * 1000 as backlog_ms,
       rate_limited_at, rate_limited_reason, rate_limited_total, reserved_total
  from marketplace.stripe_request_budget_status order by budget = 'global' desc, budget;
