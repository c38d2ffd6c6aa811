-- Down for the stripe request budget migration: drop its functions, view and table.
drop function marketplace.record_seller_transfer_rate_limited(uuid, text, text, timestamptz);
drop view marketplace.stripe_request_budget_status;
drop function marketplace.configure_stripe_request_budget(double precision, double precision);
drop function marketplace.report_stripe_rate_limited(text, text);
drop function marketplace.reserve_stripe_request_slots(text, integer);
drop function marketplace.stripe_request_budget_rate(double precision, double precision, timestamptz, timestamptz, double precision, timestamptz);
drop table marketplace.stripe_request_budgets;
