-- Down for the worker page's hourly outcome table (current.sql): drop the refresh, the two tables
-- and the chart's function (new objects only; no lock on the payout tables).
drop function if exists marketplace.refresh_seller_transfer_outcome_hours(interval);
drop table if exists marketplace.seller_transfer_outcome_hours_watermark;
drop table if exists marketplace.seller_transfer_outcome_hours;
drop function if exists marketplace.seller_transfer_outcomes_per_hour(timestamptz, timestamptz);
