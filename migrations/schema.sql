-- generated on PostgreSQL 15 by `npm run schema:dump` from a database migrated from scratch; do not edit.
-- The marketplace schema as migrations/committed/ leaves it: tables with their constraints, indexes,
-- triggers and comments; views; every function as it is now; grants; the state machine's rows.
-- A migration changes this file: commit both, so the review shows the migration's effect.

create schema marketplace;
comment on schema marketplace is 'Seller payouts (Stripe Connect transfers) and the state machine that guards them.';

create table marketplace.console_sessions (
  token_sha256 bytea not null,
  user_name text not null,
  console_role text not null,
  created_at timestamp with time zone default now() not null,
  expires_at timestamp with time zone not null
);
alter table marketplace.console_sessions add constraint console_session_ends_after_it_starts CHECK ((expires_at > created_at));
alter table marketplace.console_sessions add constraint console_sessions_console_role_check CHECK ((console_role = ANY (ARRAY['viewer'::text, 'operator'::text])));
alter table marketplace.console_sessions add constraint console_sessions_pkey PRIMARY KEY (token_sha256);
alter table marketplace.console_sessions add constraint console_sessions_token_sha256_check CHECK ((octet_length(token_sha256) = 32));
alter table marketplace.console_sessions add constraint console_sessions_user_name_check CHECK (((user_name <> ''::text) AND (length(user_name) <= 64)));
comment on table marketplace.console_sessions is 'Console logins (seller-transfers console), shared by its processes: SHA-256 of the session token, the person, the console role, the expiry. Only marketplace_console reads or writes it.';

create table marketplace.currencies (
  code text not null,
  exponent integer not null,
  description text not null
);
alter table marketplace.currencies add constraint currencies_code_check CHECK ((code ~ '^[a-z]{3}$'::text));
alter table marketplace.currencies add constraint currencies_exponent_check CHECK ((exponent = ANY (ARRAY[0, 2, 3])));
alter table marketplace.currencies add constraint currencies_pkey PRIMARY KEY (code);
comment on table marketplace.currencies is 'Currencies a seller transfer may be in: Stripe''s supported currencies, with the minor-unit exponent Stripe''s API counts amounts in (amount_cents = amount * 10^exponent). The console and the CLI read exponents from here.';
comment on column marketplace.currencies.exponent is 'Decimals of the amount Stripe''s API takes: 0 for zero-decimal currencies (jpy: 1200 is 1,200 JPY), 2 for most, 3 for bhd jod kwd omr tnd.';

create table marketplace.seller_transfer_adoption_changes (
  legacy_table text not null,
  id uuid not null
);
alter table marketplace.seller_transfer_adoption_changes add constraint seller_transfer_adoption_changes_pkey PRIMARY KEY (legacy_table, id);
comment on table marketplace.seller_transfer_adoption_changes is 'Ids of legacy rows written while seller-transfers adopt run copies them: each is copied again (or its move replayed through the guard) before the switch.';

create table marketplace.seller_transfer_adoption_handover (
  transfer_id uuid not null,
  transfer_group text,
  metadata jsonb default '{}'::jsonb not null
);
alter table marketplace.seller_transfer_adoption_handover add constraint seller_transfer_adoption_handover_metadata_object CHECK ((jsonb_typeof(metadata) = 'object'::text));
alter table marketplace.seller_transfer_adoption_handover add constraint seller_transfer_adoption_handover_names_something CHECK (((transfer_group IS NOT NULL) OR (metadata <> '{}'::jsonb)));
alter table marketplace.seller_transfer_adoption_handover add constraint seller_transfer_adoption_handover_pkey PRIMARY KEY (transfer_id);
comment on table marketplace.seller_transfer_adoption_handover is 'Per row adopted by seller-transfers adopt run whose map names the legacy transfer_group or metadata: what the legacy worker''s Stripe transfer for it carries. The worker''s handover match (seller_transfer_handover_transfer) must agree with it.';

create table marketplace.seller_transfer_adoptions (
  legacy_table text not null,
  kept_as text not null,
  map jsonb not null,
  step text default 'capture'::text not null,
  rows_copied bigint default 0 not null,
  copy_cursor uuid,
  started_at timestamp with time zone default now() not null,
  switched_at timestamp with time zone,
  finished_at timestamp with time zone,
  undone_at timestamp with time zone
);
alter table marketplace.seller_transfer_adoptions add constraint seller_transfer_adoption_step CHECK ((step = ANY (ARRAY['capture'::text, 'copy'::text, 'sync'::text, 'switched'::text, 'done'::text, 'undone'::text])));
alter table marketplace.seller_transfer_adoptions add constraint seller_transfer_adoptions_pkey PRIMARY KEY (legacy_table);
comment on table marketplace.seller_transfer_adoptions is 'Tables brought under the guard by seller-transfers adopt run: the legacy name, the name its table is kept under, the column map, and the step reached (run started again continues from it).';

create table marketplace.seller_transfer_audit_findings (
  transfer_id uuid not null,
  problem text not null,
  detail text not null,
  first_found_at timestamp with time zone not null,
  last_found_at timestamp with time zone not null,
  acknowledged_at timestamp with time zone,
  acknowledged_by text,
  acknowledge_reason text
);
alter table marketplace.seller_transfer_audit_findings add constraint seller_transfer_audit_finding_acknowledged CHECK ((((acknowledged_at IS NULL) = (acknowledged_by IS NULL)) AND ((acknowledged_at IS NULL) = (acknowledge_reason IS NULL))));
alter table marketplace.seller_transfer_audit_findings add constraint seller_transfer_audit_findings_pkey PRIMARY KEY (transfer_id, problem, detail);
comment on table marketplace.seller_transfer_audit_findings is 'What the audit found (marketplace.run_seller_transfer_audit), kept until a later run finds the row fixed (the finding is deleted) or an operator acknowledges it (acknowledge_seller_transfer_audit_finding). Doctor and the console read it instead of auditing live.';

create table marketplace.seller_transfer_audit_state (
  singleton boolean default true not null,
  next_xact xid8,
  next_created_at timestamp with time zone,
  started_at timestamp with time zone,
  finished_at timestamp with time zone,
  was_full boolean,
  transfers_audited bigint,
  problems_found bigint
);
alter table marketplace.seller_transfer_audit_state add constraint seller_transfer_audit_state_pkey PRIMARY KEY (singleton);
alter table marketplace.seller_transfer_audit_state add constraint seller_transfer_audit_state_singleton_check CHECK (singleton);
comment on table marketplace.seller_transfer_audit_state is 'The incremental audit''s watermark (marketplace.run_seller_transfer_audit): the next run audits transfers with a history event written by a transaction at or after next_xact (every transaction before it had ended when the last run began), or created at or after next_created_at; and what the last run did. One row; written only by run_seller_transfer_audit.';
comment on column marketplace.seller_transfer_audit_state.next_xact is 'The oldest transaction of this database still running when the last run began (else the next transaction id): history written by it or later is audited again. Null: no run yet (the first run audits everything).';
comment on column marketplace.seller_transfer_audit_state.next_created_at is 'The last run''s start minus 10 minutes: rows created since then are audited again even without history (a row inserted past the history trigger).';

create table marketplace.seller_transfer_authorities (
  authority text not null,
  "position" bigint not null,
  speaks_through text not null,
  description text not null
);
alter table marketplace.seller_transfer_authorities add constraint seller_transfer_authorities_pkey PRIMARY KEY (authority);
alter table marketplace.seller_transfer_authorities add constraint seller_transfer_authorities_position_key UNIQUE ("position");
comment on table marketplace.seller_transfer_authorities is 'Who may speak for a seller transfer. The guard tells them apart by the role a statement runs as (marketplace.seller_transfer_authority).';

create table marketplace.seller_transfer_claims (
  transfer_id uuid not null,
  backend_pid integer not null,
  task text not null,
  claimed_at timestamp with time zone default now() not null
);
alter table marketplace.seller_transfer_claims add constraint seller_transfer_claims_pkey PRIMARY KEY (transfer_id);
comment on table marketplace.seller_transfer_claims is 'The worker session acting on a seller transfer right now (its Stripe call in flight). Live while that backend is (seller_transfer_claim_is_live); written only by claim_seller_transfer and the release functions.';

create table marketplace.seller_transfer_count_refresh_mutex (
  singleton boolean default true not null
);
alter table marketplace.seller_transfer_count_refresh_mutex add constraint seller_transfer_count_refresh_mutex_pkey PRIMARY KEY (singleton);
alter table marketplace.seller_transfer_count_refresh_mutex add constraint seller_transfer_count_refresh_mutex_singleton_check CHECK (singleton);
comment on table marketplace.seller_transfer_count_refresh_mutex is 'One row, locked by the session that recounts seller_transfer_status_count_snapshots (refresh_seller_transfer_status_counts). Only the definer may lock it.';

create table marketplace.seller_transfer_dispatch_mutex (
  singleton boolean default true not null
);
alter table marketplace.seller_transfer_dispatch_mutex add constraint seller_transfer_dispatch_mutex_pkey PRIMARY KEY (singleton);
alter table marketplace.seller_transfer_dispatch_mutex add constraint seller_transfer_dispatch_mutex_singleton_check CHECK (singleton);
comment on table marketplace.seller_transfer_dispatch_mutex is 'One row, locked by the transaction that dispatches for the fleet (dispatch_seller_transfers). Only the definer may lock it.';

create table marketplace.seller_transfer_events (
  id bigint generated always as identity not null,
  transfer_id uuid not null,
  from_status text,
  to_status text not null,
  occurred_at timestamp with time zone default clock_timestamp() not null,
  actor text not null,
  application_name text,
  reason text,
  xact_id xid8 default pg_current_xact_id() not null,
  amount_cents bigint,
  currency text,
  stripe_account_id text,
  requested_by text,
  authority text,
  stripe_transfer_id text,
  stripe_reversal_id text,
  source_transaction text,
  action text
);
alter table marketplace.seller_transfer_events add constraint seller_transfer_events_pkey PRIMARY KEY (id);
CREATE INDEX seller_transfer_events_time_brin ON marketplace.seller_transfer_events USING brin (occurred_at, (((xact_id)::text)::bigint));
CREATE INDEX seller_transfer_events_transfer_idx ON marketplace.seller_transfer_events USING btree (transfer_id, id);
comment on table marketplace.seller_transfer_events is 'Append-only history: one row per insert and per status change of a seller transfer, written by trigger.';
comment on column marketplace.seller_transfer_events.amount_cents is 'Insert events: the amount the transfer was created with (null on status changes, and on inserts before migration 000010).';
comment on column marketplace.seller_transfer_events.currency is 'Insert events: the currency the transfer was created with.';
comment on column marketplace.seller_transfer_events.stripe_account_id is 'Insert events: the destination account the transfer was created with.';
comment on column marketplace.seller_transfer_events.requested_by is 'Operator moves only (the admin functions): the person the caller named (setting marketplace.requested_by). A claim of the calling program; actor and authority are what the database knows.';
comment on column marketplace.seller_transfer_events.authority is 'Who made the move (service, worker, operator, owner), decided by the role the statement ran as; null before migration 000017.';
comment on column marketplace.seller_transfer_events.stripe_transfer_id is 'The Stripe transfer id this move wrote on the row (null when the move did not set it).';
comment on column marketplace.seller_transfer_events.stripe_reversal_id is 'The Stripe reversal id this move wrote on the row (null when the move did not set it).';
comment on column marketplace.seller_transfer_events.source_transaction is 'Insert events: the source_transaction the transfer was created with (null: none, or an insert before this column existed).';
comment on column marketplace.seller_transfer_events.action is 'An operator''s (or a service''s) action on the row that moved no status, e.g. retry (from_status = to_status); adopted: the first event of a row brought in by seller-transfers adopt run (from nothing to the status it held, its timestamps in reason); null for an insert or a status change.';

create table marketplace.seller_transfer_events_set_aside (
  id bigint not null,
  transfer_id uuid not null,
  from_status text,
  to_status text not null,
  occurred_at timestamp with time zone not null,
  actor text not null,
  application_name text,
  reason text,
  xact_id xid8 not null,
  amount_cents bigint,
  currency text,
  stripe_account_id text,
  requested_by text,
  authority text,
  stripe_transfer_id text,
  stripe_reversal_id text,
  source_transaction text,
  action text,
  set_aside_at timestamp with time zone default now() not null,
  legacy_table text not null
);
comment on table marketplace.seller_transfer_events_set_aside is 'History of seller transfers that seller-transfers adopt undo gave back to their legacy table: kept, never deleted.';

create table marketplace.seller_transfer_external_reversals (
  stripe_reversal_id text not null,
  transfer_id uuid not null,
  stripe_transfer_id text not null,
  amount_cents bigint not null,
  seen_at timestamp with time zone default now() not null,
  reason text
);
alter table marketplace.seller_transfer_external_reversals add constraint seller_transfer_external_reversals_amount_cents_check CHECK ((amount_cents > 0));
alter table marketplace.seller_transfer_external_reversals add constraint seller_transfer_external_reversals_pkey PRIMARY KEY (stripe_reversal_id);
alter table marketplace.seller_transfer_external_reversals add constraint seller_transfer_external_reversals_stripe_reversal_id_check CHECK ((stripe_reversal_id ~ '^trr_[A-Za-z0-9]+$'::text));
alter table marketplace.seller_transfer_external_reversals add constraint seller_transfer_external_reversals_transfer_id_fkey FOREIGN KEY (transfer_id) REFERENCES marketplace.seller_transfers(id);
CREATE INDEX seller_transfer_external_reversals_transfer_idx ON marketplace.seller_transfer_external_reversals USING btree (transfer_id);
comment on table marketplace.seller_transfer_external_reversals is 'Reversals Stripe holds for a payout beyond the one the row records (a reversed payout reversed again outside this system, e.g. in the Stripe Dashboard). Written by the webhook; see docs/runbook.md#reversalsmadeoutside.';

create table marketplace.seller_transfer_move_owners (
  from_status text not null,
  to_status text not null,
  authority text not null
);
alter table marketplace.seller_transfer_move_owners add constraint seller_transfer_move_owner_not_owner CHECK ((authority <> 'owner'::text));
alter table marketplace.seller_transfer_move_owners add constraint seller_transfer_move_owners_authority_fkey FOREIGN KEY (authority) REFERENCES marketplace.seller_transfer_authorities(authority);
alter table marketplace.seller_transfer_move_owners add constraint seller_transfer_move_owners_from_status_to_status_fkey FOREIGN KEY (from_status, to_status) REFERENCES marketplace.seller_transfer_transitions(from_status, to_status) ON DELETE CASCADE;
alter table marketplace.seller_transfer_move_owners add constraint seller_transfer_move_owners_pkey PRIMARY KEY (from_status, to_status, authority);
CREATE TRIGGER seller_transfer_move_owners_changed AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON marketplace.seller_transfer_move_owners FOR EACH STATEMENT EXECUTE FUNCTION marketplace.recompile_seller_transfer_guards();
comment on table marketplace.seller_transfer_move_owners is 'Which authorities own each legal move (the owner owns all of them implicitly). The status guard is compiled from this table and the transitions.';

create table marketplace.seller_transfer_outcome_hours (
  hour timestamp with time zone not null,
  paid bigint not null,
  failed bigint not null,
  given_up bigint not null,
  counted_at timestamp with time zone not null
);
alter table marketplace.seller_transfer_outcome_hours add constraint seller_transfer_outcome_hours_check CHECK ((counted_at >= (hour + '01:10:00'::interval)));
alter table marketplace.seller_transfer_outcome_hours add constraint seller_transfer_outcome_hours_failed_check CHECK ((failed >= 0));
alter table marketplace.seller_transfer_outcome_hours add constraint seller_transfer_outcome_hours_given_up_check CHECK ((given_up >= 0));
alter table marketplace.seller_transfer_outcome_hours add constraint seller_transfer_outcome_hours_hour_check CHECK ((hour = date_bin('01:00:00'::interval, hour, '2000-01-01 00:00:00+00'::timestamp with time zone)));
alter table marketplace.seller_transfer_outcome_hours add constraint seller_transfer_outcome_hours_paid_check CHECK ((paid >= 0));
alter table marketplace.seller_transfer_outcome_hours add constraint seller_transfer_outcome_hours_pkey PRIMARY KEY (hour);
comment on table marketplace.seller_transfer_outcome_hours is 'Payouts paid, failed and given up per closed hour of the last 24 (seller_transfer_outcomes_per_hour), each stored once final: counted at least 10 minutes after the hour ended. Kept by refresh_seller_transfer_outcome_hours; the console''s worker page reads it.';

create table marketplace.seller_transfer_outcome_hours_watermark (
  singleton boolean default true not null,
  through_id bigint not null,
  refreshed_at timestamp with time zone not null
);
alter table marketplace.seller_transfer_outcome_hours_watermark add constraint seller_transfer_outcome_hours_watermark_pkey PRIMARY KEY (singleton);
alter table marketplace.seller_transfer_outcome_hours_watermark add constraint seller_transfer_outcome_hours_watermark_singleton_check CHECK (singleton);
comment on table marketplace.seller_transfer_outcome_hours_watermark is 'One row: the history''s newest id (through_id) when seller_transfer_outcome_hours was last refreshed, and when. History above it may be stamped in a stored hour: a reader checks those rows. Locked by the session that refreshes (only the definer may lock it).';

create table marketplace.seller_transfer_pause (
  singleton boolean default true not null,
  paused boolean default false not null,
  since timestamp with time zone,
  actor text,
  requested_by text,
  reason text
);
alter table marketplace.seller_transfer_pause add constraint seller_transfer_pause_pkey PRIMARY KEY (singleton);
alter table marketplace.seller_transfer_pause add constraint seller_transfer_pause_said CHECK (((NOT paused) OR ((since IS NOT NULL) AND (actor IS NOT NULL) AND (reason IS NOT NULL))));
alter table marketplace.seller_transfer_pause add constraint seller_transfer_pause_singleton_check CHECK (singleton);
comment on table marketplace.seller_transfer_pause is 'The fleet''s pause switch, one row: while paused no worker starts a Stripe call and dispatch hands nothing out; since, actor (the database role), requested_by (the person) and reason of the pause in force. Set only by pause_seller_transfers / resume_seller_transfers; the history is seller_transfer_pause_events.';

create table marketplace.seller_transfer_pause_events (
  id bigint generated always as identity not null,
  action text not null,
  occurred_at timestamp with time zone default clock_timestamp() not null,
  actor text not null,
  requested_by text,
  application_name text,
  reason text not null,
  paused_since timestamp with time zone
);
alter table marketplace.seller_transfer_pause_events add constraint seller_transfer_pause_events_action_check CHECK ((action = ANY (ARRAY['pause'::text, 'resume'::text])));
alter table marketplace.seller_transfer_pause_events add constraint seller_transfer_pause_events_pkey PRIMARY KEY (id);
CREATE TRIGGER seller_transfer_pause_events_append_only BEFORE DELETE OR UPDATE OR TRUNCATE ON marketplace.seller_transfer_pause_events FOR EACH STATEMENT EXECUTE FUNCTION marketplace.refuse_seller_transfer_pause_event_change();
comment on table marketplace.seller_transfer_pause_events is 'Every pause and resume of the fleet (pause_seller_transfers, resume_seller_transfers), append-only: action, when, actor (the database role), requested_by (the person the caller named in marketplace.requested_by), application_name, reason; paused_since: for a resume, when the pause it ended began.';

create table marketplace.seller_transfer_status_count_snapshots (
  status text not null,
  transfers bigint not null,
  counted_at timestamp with time zone not null
);
alter table marketplace.seller_transfer_status_count_snapshots add constraint seller_transfer_status_count_snapshots_pkey PRIMARY KEY (status);
alter table marketplace.seller_transfer_status_count_snapshots add constraint seller_transfer_status_count_snapshots_status_fkey FOREIGN KEY (status) REFERENCES marketplace.seller_transfer_statuses(status);
comment on table marketplace.seller_transfer_status_count_snapshots is 'Rows per status as last counted in full (marketplace.refresh_seller_transfer_status_counts, at most every few minutes, by one session of the fleet): what the metrics and stats report for the statuses a payout rests in (completed, the terminal ones), with counted_at. The worker statuses are always counted live.';

create table marketplace.seller_transfer_status_slos (
  status text not null,
  max_seconds integer not null,
  description text not null
);
alter table marketplace.seller_transfer_status_slos add constraint seller_transfer_status_slos_max_seconds_check CHECK ((max_seconds > 0));
alter table marketplace.seller_transfer_status_slos add constraint seller_transfer_status_slos_pkey PRIMARY KEY (status);
alter table marketplace.seller_transfer_status_slos add constraint seller_transfer_status_slos_status_fkey FOREIGN KEY (status) REFERENCES marketplace.seller_transfer_statuses(status);
comment on table marketplace.seller_transfer_status_slos is 'How long a seller transfer may stay in a non-terminal status before an operator should look at it. A status without a row has no SLO (completed is a resting state; terminal statuses never move again).';

create table marketplace.seller_transfer_statuses (
  status text not null,
  "position" smallint not null,
  is_initial boolean default false not null,
  is_terminal boolean default false not null,
  description text not null,
  worker_task text
);
alter table marketplace.seller_transfer_statuses add constraint seller_transfer_status_not_initial_and_terminal CHECK ((NOT (is_initial AND is_terminal)));
alter table marketplace.seller_transfer_statuses add constraint seller_transfer_statuses_pkey PRIMARY KEY (status);
alter table marketplace.seller_transfer_statuses add constraint seller_transfer_statuses_position_key UNIQUE ("position");
alter table marketplace.seller_transfer_statuses add constraint seller_transfer_statuses_status_check CHECK ((status ~ '^[a-z][a-z_]*$'::text));
alter table marketplace.seller_transfer_statuses add constraint seller_transfer_statuses_worker_task_key UNIQUE (worker_task);
CREATE TRIGGER seller_transfer_statuses_changed AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON marketplace.seller_transfer_statuses FOR EACH STATEMENT EXECUTE FUNCTION marketplace.recompile_seller_transfer_guards();
comment on table marketplace.seller_transfer_statuses is 'Canonical list of seller transfer statuses. Initial: where an insert must start. Terminal: no way out.';
comment on column marketplace.seller_transfer_statuses.worker_task is 'graphile-worker task that moves a row out of this status (null: nothing for the worker to do).';

create table marketplace.seller_transfer_transitions (
  from_status text not null,
  to_status text not null,
  description text not null
);
alter table marketplace.seller_transfer_transitions add constraint seller_transfer_transition_not_same_state CHECK ((from_status <> to_status));
alter table marketplace.seller_transfer_transitions add constraint seller_transfer_transitions_from_status_fkey FOREIGN KEY (from_status) REFERENCES marketplace.seller_transfer_statuses(status);
alter table marketplace.seller_transfer_transitions add constraint seller_transfer_transitions_pkey PRIMARY KEY (from_status, to_status);
alter table marketplace.seller_transfer_transitions add constraint seller_transfer_transitions_to_status_fkey FOREIGN KEY (to_status) REFERENCES marketplace.seller_transfer_statuses(status);
CREATE TRIGGER seller_transfer_transitions_changed AFTER INSERT OR DELETE OR UPDATE OR TRUNCATE ON marketplace.seller_transfer_transitions FOR EACH STATEMENT EXECUTE FUNCTION marketplace.recompile_seller_transfer_guards();
comment on table marketplace.seller_transfer_transitions is 'The legal status moves of a seller transfer (same-state is implicit). Every write to seller_transfers is checked against this table.';

create table marketplace.seller_transfer_worker_heartbeats (
  worker_id text not null,
  hostname text not null,
  pid integer not null,
  started_at timestamp with time zone not null,
  last_seen_at timestamp with time zone not null,
  stopped_at timestamp with time zone
);
alter table marketplace.seller_transfer_worker_heartbeats add constraint seller_transfer_worker_heartbeats_pkey PRIMARY KEY (worker_id);
comment on table marketplace.seller_transfer_worker_heartbeats is 'One row per worker process: when it started and when it last reported (every few seconds while it runs).';

create table marketplace.seller_transfers (
  id uuid default gen_random_uuid() not null,
  order_id uuid not null,
  seller_id uuid not null,
  stripe_account_id text not null,
  amount_cents bigint not null,
  currency text not null,
  status text default 'pending'::text not null,
  stripe_transfer_id text,
  stripe_reversal_id text,
  reversal_amount_cents bigint,
  retry_count integer default 0 not null,
  next_retry_at timestamp with time zone,
  last_error text,
  created_at timestamp with time zone default now() not null,
  updated_at timestamp with time zone default now() not null,
  stripe_key_generation integer default 0 not null,
  stripe_request_in_doubt boolean default false not null,
  source_transaction text
);
alter table marketplace.seller_transfers add constraint seller_transfer_currency_known FOREIGN KEY (currency) REFERENCES marketplace.currencies(code);
alter table marketplace.seller_transfers add constraint seller_transfer_currency_lowercase CHECK ((currency ~ '^[a-z]{3}$'::text));
alter table marketplace.seller_transfers add constraint seller_transfer_reversal_amount CHECK (((reversal_amount_cents > 0) AND (reversal_amount_cents <= amount_cents)));
alter table marketplace.seller_transfers add constraint seller_transfer_source_transaction_format CHECK ((source_transaction ~ '^(ch|py)_[A-Za-z0-9]+$'::text));
alter table marketplace.seller_transfers add constraint seller_transfer_times_in_range CHECK (((created_at >= '2000-01-01 00:00:00+00'::timestamp with time zone) AND (created_at < '2200-01-01 00:00:00+00'::timestamp with time zone) AND (updated_at >= '2000-01-01 00:00:00+00'::timestamp with time zone) AND (updated_at < '2200-01-01 00:00:00+00'::timestamp with time zone) AND ((next_retry_at IS NULL) OR ((next_retry_at >= '2000-01-01 00:00:00+00'::timestamp with time zone) AND (next_retry_at < '2200-01-01 00:00:00+00'::timestamp with time zone)) OR ((next_retry_at = 'infinity'::timestamp with time zone) AND stripe_request_in_doubt))));
alter table marketplace.seller_transfers add constraint seller_transfers_amount_cents_check CHECK ((amount_cents > 0));
alter table marketplace.seller_transfers add constraint seller_transfers_pkey PRIMARY KEY (id);
alter table marketplace.seller_transfers add constraint seller_transfers_retry_count_check CHECK ((retry_count >= 0));
alter table marketplace.seller_transfers add constraint seller_transfers_status_fkey FOREIGN KEY (status) REFERENCES marketplace.seller_transfer_statuses(status);
alter table marketplace.seller_transfers add constraint seller_transfers_stripe_account_id_check CHECK ((stripe_account_id ~ '^acct_[A-Za-z0-9]+$'::text));
alter table marketplace.seller_transfers add constraint seller_transfers_stripe_key_generation_check CHECK ((stripe_key_generation >= 0));
alter table marketplace.seller_transfers add constraint seller_transfers_stripe_reversal_id_check CHECK ((stripe_reversal_id ~ '^trr_[A-Za-z0-9]+$'::text));
alter table marketplace.seller_transfers add constraint seller_transfers_stripe_reversal_id_key UNIQUE (stripe_reversal_id);
alter table marketplace.seller_transfers add constraint seller_transfers_stripe_transfer_id_check CHECK ((stripe_transfer_id ~ '^tr_[A-Za-z0-9]+$'::text));
alter table marketplace.seller_transfers add constraint seller_transfers_stripe_transfer_id_key UNIQUE (stripe_transfer_id);
CREATE INDEX seller_transfers_order_idx ON marketplace.seller_transfers USING btree (order_id);
CREATE INDEX seller_transfers_pending_idx ON marketplace.seller_transfers USING btree (next_retry_at NULLS FIRST, created_at) WHERE (status = 'pending'::text);
CREATE INDEX seller_transfers_retry_due_idx ON marketplace.seller_transfers USING btree (next_retry_at) WHERE (status = 'failed'::text);
CREATE INDEX seller_transfers_reversal_due_idx ON marketplace.seller_transfers USING btree (next_retry_at NULLS FIRST) WHERE (status = 'reversal_pending'::text);
CREATE INDEX seller_transfers_seller_created_idx ON marketplace.seller_transfers USING btree (seller_id, created_at DESC, id DESC);
CREATE INDEX seller_transfers_status_created_idx ON marketplace.seller_transfers USING btree (status, created_at DESC, id DESC);
CREATE INDEX seller_transfers_status_due_since_idx ON marketplace.seller_transfers USING btree (status, COALESCE(next_retry_at, created_at), id) WHERE (status = ANY (ARRAY['pending'::text, 'failed'::text, 'reversal_pending'::text]));
CREATE TRIGGER seller_transfer_history_on_insert AFTER INSERT ON marketplace.seller_transfers FOR EACH ROW EXECUTE FUNCTION marketplace.record_seller_transfer_insert();
CREATE TRIGGER seller_transfer_initial_status BEFORE INSERT ON marketplace.seller_transfers FOR EACH ROW EXECUTE FUNCTION marketplace.check_seller_transfer_insert();
CREATE TRIGGER seller_transfer_kept AFTER DELETE ON marketplace.seller_transfers FOR EACH ROW EXECUTE FUNCTION marketplace.refuse_deleting_seen_payout();
CREATE TRIGGER seller_transfer_kept_on_truncate BEFORE TRUNCATE ON marketplace.seller_transfers FOR EACH STATEMENT EXECUTE FUNCTION marketplace.refuse_deleting_seen_payout();
CREATE TRIGGER seller_transfer_status_transition AFTER UPDATE OF status, stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, stripe_key_generation, stripe_request_in_doubt, next_retry_at ON marketplace.seller_transfers FOR EACH ROW EXECUTE FUNCTION marketplace.check_seller_transfer_update();
CREATE TRIGGER seller_transfer_write_once AFTER UPDATE OF id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at ON marketplace.seller_transfers FOR EACH ROW EXECUTE FUNCTION marketplace.check_seller_transfer_facts();
CREATE TRIGGER seller_transfer_written_to_history AFTER UPDATE OF status ON marketplace.seller_transfers FOR EACH ROW EXECUTE FUNCTION marketplace.record_seller_transfer_move();
comment on table marketplace.seller_transfers is 'One Stripe Connect payout to a seller. status moves only along marketplace.seller_transfer_transitions.';
comment on column marketplace.seller_transfers.stripe_key_generation is 'Suffix of the idempotency key of the current Stripe operation; moves only after Stripe answered and nothing was created.';
comment on column marketplace.seller_transfers.stripe_request_in_doubt is 'The last Stripe request ended without an answer (timeout, dropped connection, key in use): it may still run at Stripe.';
comment on column marketplace.seller_transfers.source_transaction is 'Optional: the Stripe charge (ch_…) or payment (py_…) this payout is funded from (Stripe''s source_transaction). Written by the service at insert, never changed.';

create table marketplace.stripe_request_budgets (
  budget text not null,
  configured_per_second double precision not null,
  current_per_second double precision not null,
  min_per_second double precision default 1 not null,
  next_slot_at timestamp with time zone default now() not null,
  adjusted_at timestamp with time zone default now() not null,
  decreased_at timestamp with time zone,
  hold_until timestamp with time zone,
  ceiling_per_second double precision,
  decrease_factor double precision,
  rate_limited_total_at_decrease bigint default 0 not null,
  rate_limited_at timestamp with time zone,
  rate_limited_reason text,
  rate_limited_total bigint default 0 not null,
  reserved_total bigint default 0 not null,
  updated_at timestamp with time zone default now() not null
);
alter table marketplace.stripe_request_budgets add constraint stripe_request_budget_ceiling CHECK ((ceiling_per_second > (0)::double precision));
alter table marketplace.stripe_request_budgets add constraint stripe_request_budget_configured CHECK ((configured_per_second > (0)::double precision));
alter table marketplace.stripe_request_budgets add constraint stripe_request_budget_current CHECK ((current_per_second > (0)::double precision));
alter table marketplace.stripe_request_budgets add constraint stripe_request_budget_key CHECK (((budget = 'global'::text) OR (budget ~ '^(GET|POST|DELETE) /v1/'::text)));
alter table marketplace.stripe_request_budgets add constraint stripe_request_budget_min CHECK ((min_per_second > (0)::double precision));
alter table marketplace.stripe_request_budgets add constraint stripe_request_budgets_pkey PRIMARY KEY (budget);
comment on table marketplace.stripe_request_budgets is 'The fleet''s Stripe request budget: configured and current (adaptive) rate per budget (''global'', or an endpoint), and its GCRA scheduler state (next_slot_at). Written only through reserve_stripe_request_slots, report_stripe_rate_limited and configure_stripe_request_budget.';
comment on column marketplace.stripe_request_budgets.next_slot_at is 'GCRA theoretical arrival time: the earliest start of the next request drawing on this budget.';
comment on column marketplace.stripe_request_budgets.decreased_at is 'When the rate was last lowered after a 429.';
comment on column marketplace.stripe_request_budgets.hold_until is 'No further decrease before this (slots reserved before the last decrease still going out): greatest(decrease + 1 s, next_slot_at at the decrease + 0.25 s).';
comment on column marketplace.stripe_request_budgets.ceiling_per_second is 'The rate that drew the last decrease: recovery is fast up to 90 % of it, slow (1 % of configured per second) from there to 110 % of it.';
comment on column marketplace.stripe_request_budgets.decrease_factor is 'The last decrease: 0.95 (a stray 429) or 0.5 (429s that kept coming).';
comment on column marketplace.stripe_request_budgets.rate_limited_total_at_decrease is 'rate_limited_total right after the last decrease: the 429s since then are rate_limited_total minus this.';

create view marketplace.seller_transfer_stats as
 SELECT s.status,
    s.is_initial,
    s.is_terminal,
    s.worker_task,
    c.transfers,
    COALESCE(d.due_now, 0::bigint) AS due_now,
    o.id AS oldest_id,
    o.since AS oldest_since,
    floor(EXTRACT(epoch FROM now() - o.since))::bigint AS oldest_seconds_in_status,
    slo.max_seconds AS slo_seconds,
    c.past_slo,
    c.counted_at,
    floor(EXTRACT(epoch FROM now() - c.counted_at))::bigint AS counted_seconds_ago
   FROM marketplace.seller_transfer_statuses s
     JOIN marketplace.seller_transfer_status_totals() c(status, transfers, counted_at, past_slo) ON c.status = s.status
     LEFT JOIN marketplace.seller_transfer_due_counts() d(status, due_now, oldest_due_seconds) ON d.status = s.status
     LEFT JOIN marketplace.seller_transfer_status_slos slo ON slo.status = s.status
     LEFT JOIN LATERAL marketplace.seller_transfer_longest_in_status(s.status) o(id, since) ON true
  ORDER BY s."position";
comment on view marketplace.seller_transfer_stats is 'Per status: row count (counted_at: when; live for the worker statuses, a snapshot for the others), rows due for the worker now, the row longest in the status (non-terminal only), its SLO and rows past it. Bounded by the backlog, not the table.';

create view marketplace.seller_transfer_transition_matrix as
 SELECT f.status AS from_status,
        CASE
            WHEN f.status = 'pending'::text THEN 'same'::text
            WHEN marketplace.can_transition_transfer_status(f.status, 'pending'::text) THEN 'yes'::text
            ELSE '-'::text
        END AS pending,
        CASE
            WHEN f.status = 'completed'::text THEN 'same'::text
            WHEN marketplace.can_transition_transfer_status(f.status, 'completed'::text) THEN 'yes'::text
            ELSE '-'::text
        END AS completed,
        CASE
            WHEN f.status = 'failed'::text THEN 'same'::text
            WHEN marketplace.can_transition_transfer_status(f.status, 'failed'::text) THEN 'yes'::text
            ELSE '-'::text
        END AS failed,
        CASE
            WHEN f.status = 'reversal_pending'::text THEN 'same'::text
            WHEN marketplace.can_transition_transfer_status(f.status, 'reversal_pending'::text) THEN 'yes'::text
            ELSE '-'::text
        END AS reversal_pending,
        CASE
            WHEN f.status = 'reversed'::text THEN 'same'::text
            WHEN marketplace.can_transition_transfer_status(f.status, 'reversed'::text) THEN 'yes'::text
            ELSE '-'::text
        END AS reversed,
        CASE
            WHEN f.status = 'permanently_failed'::text THEN 'same'::text
            WHEN marketplace.can_transition_transfer_status(f.status, 'permanently_failed'::text) THEN 'yes'::text
            ELSE '-'::text
        END AS permanently_failed
   FROM marketplace.seller_transfer_statuses f
  ORDER BY f."position";
comment on view marketplace.seller_transfer_transition_matrix is 'Rows: from status; columns: to status. yes = legal move, same = same-state (always allowed), - = refused. Who may make each: seller_transfer_transition_owners.';

create view marketplace.seller_transfer_transition_owners as
 SELECT NULL::text AS from_status,
    s.status AS to_status,
    'service, owner'::text AS made_by,
    'create a payout (INSERT; services insert only their own columns)'::text AS description
   FROM marketplace.seller_transfer_statuses s
  WHERE s.is_initial
UNION ALL
 SELECT t.from_status,
    t.to_status,
    concat_ws(', '::text, ( SELECT string_agg(o.authority, ', '::text ORDER BY a."position") AS string_agg
           FROM marketplace.seller_transfer_move_owners o
             JOIN marketplace.seller_transfer_authorities a ON a.authority = o.authority
          WHERE o.from_status = t.from_status AND o.to_status = t.to_status), 'owner') AS made_by,
    t.description
   FROM marketplace.seller_transfer_transitions t;
comment on view marketplace.seller_transfer_transition_owners is 'Every legal move and who may make it (made_by); a legal move made by anyone else is refused (42501, seller_transfer_move_owner).';

create view marketplace.seller_transfers_held_for_review as
 SELECT t.id,
    t.status,
    t.stripe_transfer_id,
    t.last_error,
    t.updated_at
   FROM marketplace.seller_transfers t
  WHERE (t.status = ANY (ARRAY['failed'::text, 'reversal_pending'::text])) AND t.next_retry_at = 'infinity'::timestamp with time zone;
comment on view marketplace.seller_transfers_held_for_review is 'Rows the worker will not touch again by itself because Stripe holds something that differs from them; see docs/runbook.md#transfersheldforreview.';

create view marketplace.seller_transfers_past_slo as
 SELECT t.id,
    t.status,
    since.at AS status_since,
    floor(EXTRACT(epoch FROM now() - since.at))::bigint AS seconds_in_status,
    slo.max_seconds AS slo_seconds,
    t.amount_cents,
    t.currency,
    t.stripe_account_id,
    t.retry_count,
    t.next_retry_at,
    t.last_error
   FROM marketplace.seller_transfer_status_slos slo
     JOIN marketplace.seller_transfer_statuses s ON s.status = slo.status AND NOT s.is_terminal
     CROSS JOIN LATERAL ( SELECT t_1.id,
            t_1.order_id,
            t_1.seller_id,
            t_1.stripe_account_id,
            t_1.amount_cents,
            t_1.currency,
            t_1.status,
            t_1.stripe_transfer_id,
            t_1.stripe_reversal_id,
            t_1.reversal_amount_cents,
            t_1.retry_count,
            t_1.next_retry_at,
            t_1.last_error,
            t_1.created_at,
            t_1.updated_at,
            t_1.stripe_key_generation,
            t_1.stripe_request_in_doubt,
            t_1.source_transaction
           FROM marketplace.seller_transfers t_1
          WHERE t_1.status = slo.status
         OFFSET 0) t
     CROSS JOIN LATERAL ( SELECT COALESCE(marketplace.seller_transfer_status_since(t.id), t.created_at) AS at) since
  WHERE since.at < (now() - make_interval(secs => slo.max_seconds::double precision));
comment on view marketplace.seller_transfers_past_slo is 'Seller transfers stuck in a non-terminal status longer than marketplace.seller_transfer_status_slos allows (time in status from the last history event).';

create view marketplace.seller_transfers_waiting_for_funds as
 SELECT t.id,
    t.amount_cents,
    t.currency,
    t.retry_count,
    t.next_retry_at,
    t.last_error,
    t.created_at,
    t.updated_at
   FROM marketplace.seller_transfers t
  WHERE t.status = 'failed'::text AND t.stripe_transfer_id IS NULL AND t.next_retry_at <> 'infinity'::timestamp with time zone AND t.last_error ~~ '%balance_insufficient%'::text;
comment on view marketplace.seller_transfers_waiting_for_funds is 'Payouts Stripe refused for the platform''s available balance (balance_insufficient), retried on the balance schedule until BALANCE_MAX_ATTEMPTS; see docs/runbook.md#sellertransferswaitingforfunds.';

create view marketplace.stripe_request_budget_status as
 SELECT b.budget,
    b.configured_per_second,
    marketplace.stripe_request_budget_rate(b.configured_per_second, b.current_per_second, b.adjusted_at, b.rate_limited_at, b.ceiling_per_second, now()) AS current_per_second,
    GREATEST(b.next_slot_at - now(), '00:00:00'::interval) AS backlog,
    b.rate_limited_at,
    b.rate_limited_reason,
    b.rate_limited_total,
    b.reserved_total,
    b.ceiling_per_second
   FROM marketplace.stripe_request_budgets b;
comment on view marketplace.stripe_request_budget_status is 'The fleet''s Stripe request budget now: configured vs current rate per budget, how far ahead slots are reserved (backlog), the last 429.';

CREATE OR REPLACE FUNCTION marketplace.acknowledge_seller_transfer_audit_finding(transfer_id uuid, problem text, reason text, acknowledged_by text)
 RETURNS bigint
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  n bigint;
begin
  if coalesce(btrim(reason), '') = '' then
    raise exception 'a reason is required to acknowledge an audit finding' using errcode = '22023';
  end if;
  if coalesce(btrim(acknowledged_by), '') = '' then
    raise exception 'say who acknowledges the finding' using errcode = '22023';
  end if;
  update marketplace.seller_transfer_audit_findings a
     set acknowledged_at = now(), acknowledged_by = left(acknowledge_seller_transfer_audit_finding.acknowledged_by, 200),
         acknowledge_reason = left(reason, 1000)
   where a.transfer_id = acknowledge_seller_transfer_audit_finding.transfer_id
     and (acknowledge_seller_transfer_audit_finding.problem is null or a.problem = acknowledge_seller_transfer_audit_finding.problem)
     and a.acknowledged_at is null;
  get diagnostics n = row_count;
  return n;
end $function$;
comment on function marketplace.acknowledge_seller_transfer_audit_finding(uuid,text,text,text) is 'An operator says a stored audit finding is understood (problem null: every open finding of the transfer): it no longer counts in doctor, and stays in seller_transfer_audit_findings with who, when and why until the row is fixed. Returns how many findings it acknowledged.';
grant EXECUTE on function marketplace.acknowledge_seller_transfer_audit_finding(uuid,text,text,text) to marketplace_operator;
revoke execute on function marketplace.acknowledge_seller_transfer_audit_finding(uuid,text,text,text) from public;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_couplings(new marketplace.seller_transfers)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  rule   record;
  broken boolean;
begin
  for rule in select * from marketplace.seller_transfer_coupling_rules() r order by r.ord loop
    execute format('select %s from (select ($1).*) r', rule.broken_when) into broken using new;
    if broken then
      -- The row as the statement would leave it: its status is "to"; the status before is not asked here.
      raise exception 'seller transfer %: %', new.id, format(rule.missing, new.status)
        using errcode = 'check_violation', constraint = rule.constraint_name, schema = 'marketplace', table = 'seller_transfers',
              column = rule.column_name,
              detail = marketplace.seller_transfer_refusal_detail(new.id, null, new.status,
                         format('seller transfer %s: %s is missing', new.id, rule.column_name));
    end if;
  end loop;
end $function$;
comment on function marketplace.assert_seller_transfer_couplings(marketplace.seller_transfers) is 'Raises 23514 naming the coupling a row breaks: a paid status without its Stripe transfer, reversed without its reversal, a reversal without a transfer, failed without next_retry_at.';
grant EXECUTE on function marketplace.assert_seller_transfer_couplings(marketplace.seller_transfers) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_couplings(marketplace.seller_transfers) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_couplings(marketplace.seller_transfers) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_couplings(marketplace.seller_transfers) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_couplings(marketplace.seller_transfers) to marketplace_writer;
grant EXECUTE on function marketplace.assert_seller_transfer_couplings(marketplace.seller_transfers) to public;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_history_text(reason text, requested_by text)
 RETURNS void
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  if length(reason) > 1000 or length(requested_by) > 200 then
    raise exception '% is at most % characters (got %)',
        case when length(reason) > 1000 then 'marketplace.transition_reason' else 'marketplace.requested_by' end,
        case when length(reason) > 1000 then 1000 else 200 end,
        case when length(reason) > 1000 then length(reason) else length(requested_by) end
      using errcode = 'string_data_right_truncation', hint = 'Say why in a sentence; keep long diagnostics in your own logs.';
  end if;
end $function$;
grant EXECUTE on function marketplace.assert_seller_transfer_history_text(text,text) to marketplace_definer;
revoke execute on function marketplace.assert_seller_transfer_history_text(text,text) from public;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_insert(new marketplace.seller_transfers)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  initial text;
begin
  if exists (select 1 from marketplace.seller_transfer_statuses where status = new.status and not is_initial) then
    select string_agg(status, ', ' order by position) into initial
      from marketplace.seller_transfer_statuses where is_initial;
    raise exception 'seller transfers must be created in an initial status, not %', new.status
      using errcode = 'check_violation',
            constraint = 'seller_transfer_initial_status',
            schema = 'marketplace', table = 'seller_transfers', column = 'status',
            detail = marketplace.seller_transfer_refusal_detail(new.id, null, new.status, format('initial statuses: %s', coalesce(initial, 'none'))),
            hint = 'Insert without a status (it defaults to pending).';
  end if;
  -- An unknown status: the foreign key refuses it.
  if new.created_at < now() - interval '1 day' or new.created_at > now() + interval '5 minutes' then
    raise exception 'seller transfer %: created_at % is not now (a new payout is created within a day before and five minutes after now(), %)',
        new.id, new.created_at, now()
      using errcode = 'check_violation',
            constraint = 'seller_transfer_insert_time',
            schema = 'marketplace', table = 'seller_transfers', column = 'created_at',
            detail = marketplace.seller_transfer_refusal_detail(new.id, null, new.status, format('created_at %s, now() %s', new.created_at, now())),
            hint = 'Insert without created_at (it defaults to now()).';
  end if;
end $function$;
comment on function marketplace.assert_seller_transfer_insert(marketplace.seller_transfers) is 'Raises 23514 for a new row in a non-initial status (seller_transfer_initial_status) or whose created_at is not now (seller_transfer_insert_time).';
grant EXECUTE on function marketplace.assert_seller_transfer_insert(marketplace.seller_transfers) to public;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_move(old marketplace.seller_transfers, new marketplace.seller_transfers)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  perform marketplace.assert_seller_transfer_transition(old.id, old.status, new.status);
  perform marketplace.assert_seller_transfer_move_owner(old.id, old.status, new.status);
end $function$;
comment on function marketplace.assert_seller_transfer_move(marketplace.seller_transfers,marketplace.seller_transfers) is 'The matrix, then the owner of the move: what every guard trigger checks first.';
grant EXECUTE on function marketplace.assert_seller_transfer_move(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_move(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_move(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_move(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_move(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_writer;
revoke execute on function marketplace.assert_seller_transfer_move(marketplace.seller_transfers,marketplace.seller_transfers) from public;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_move_by(id uuid, from_status text, to_status text, said text, speaker text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  owners text;
begin
  -- The matrix speaks first (23514 seller_transfer_status_transition); an unknown target is the foreign key's.
  perform marketplace.assert_seller_transfer_transition($1, $2, $3);
  if $2 = $3 or said = 'owner' or not marketplace.can_transition_transfer_status($2, $3)
     or exists (select 1 from marketplace.seller_transfer_move_owners o
                 where o.from_status = $2 and o.to_status = $3 and o.authority = said) then
    return;
  end if;
  select made_by into owners from marketplace.seller_transfer_transition_owners v where v.from_status = $2 and v.to_status = $3;
  raise exception 'seller transfer move % -> % belongs to %; % speaks as %', $2, $3, owners, speaker, coalesce(said, 'no authority')
    using errcode = 'insufficient_privilege',
          constraint = 'seller_transfer_move_owner',
          schema = 'marketplace', table = 'seller_transfers', column = 'status',
          detail = marketplace.seller_transfer_refusal_detail($1, $2, $3,
                     format('seller transfer %s: %s -> %s is legal, but not %s''s to make', $1, $2, $3, coalesce(said, speaker)),
                     coalesce(said, 'none')),
          hint = case when $3 = 'permanently_failed' or ($2 = 'pending' and $3 = 'failed')
                      then 'To stop a payout, call marketplace.fail_seller_transfer(id, reason); only the worker records what Stripe did. See SELECT * FROM marketplace.seller_transfer_transition_owners'
                      else 'Only the worker records what Stripe did. See SELECT * FROM marketplace.seller_transfer_transition_owners' end;
end $function$;
comment on function marketplace.assert_seller_transfer_move_by(uuid,text,text,text,text) is 'Raises the matrix''s error (23514) for an illegal move, else 42501 (seller_transfer_move_owner) when authority said (speaker: the role, for the message) does not own the legal move $2 -> $3.';
grant EXECUTE on function marketplace.assert_seller_transfer_move_by(uuid,text,text,text,text) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_move_by(uuid,text,text,text,text) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_move_by(uuid,text,text,text,text) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_move_by(uuid,text,text,text,text) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_move_by(uuid,text,text,text,text) to marketplace_writer;
grant EXECUTE on function marketplace.assert_seller_transfer_move_by(uuid,text,text,text,text) to public;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_move_owner(id uuid, from_status text, to_status text)
 RETURNS void
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select marketplace.assert_seller_transfer_move_by($1, $2, $3, marketplace.seller_transfer_authority(current_user), current_user::text)
$function$;
comment on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) is 'Raises 42501 (seller_transfer_move_owner) when the current role''s authority does not own the legal move $2 -> $3.';
grant EXECUTE on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) to marketplace_writer;
revoke execute on function marketplace.assert_seller_transfer_move_owner(uuid,text,text) from public;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_not_given_up_in_doubt(old marketplace.seller_transfers, new marketplace.seller_transfers)
 RETURNS void
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select marketplace.assert_seller_transfer_not_given_up_in_doubt(old, new, marketplace.seller_transfer_authority(current_user))
$function$;
comment on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) is 'Raises 23514 (seller_transfer_in_doubt) when a row would become permanently_failed while in doubt, or someone but the worker clears the flag.';
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_writer;
revoke execute on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers) from public;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_not_given_up_in_doubt(old marketplace.seller_transfers, new marketplace.seller_transfers, said text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  what text;
begin
  if new.status = 'permanently_failed' and new.stripe_request_in_doubt then
    what := format('may not become permanently_failed while stripe_request_in_doubt: its last Stripe request got no answer, so Stripe may have %s',
                   case when coalesce(old.status, new.status) = 'reversal_pending' or new.stripe_transfer_id is not null then 'reversed it' else 'paid it' end);
  elsif old.stripe_request_in_doubt and not new.stripe_request_in_doubt and said is distinct from 'worker' then
    what := 'stripe_request_in_doubt is cleared only by the worker, when it records what Stripe answered';
  else
    return;
  end if;
  raise exception 'seller transfer %: %', new.id, what
    using errcode = 'check_violation', constraint = 'seller_transfer_in_doubt',
          schema = 'marketplace', table = 'seller_transfers', column = 'stripe_request_in_doubt',
          detail = marketplace.seller_transfer_refusal_detail(new.id, old.status, new.status,
                     format('seller transfer %s: stripe_request_in_doubt %s -> %s', new.id,
                            coalesce(old.stripe_request_in_doubt::text, 'none (insert)'), new.stripe_request_in_doubt)),
          hint = 'The worker''s next attempt looks the request up in Stripe first and records the answer; act then. A held row: see docs/runbook.md#transfersheldforreview';
end $function$;
comment on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers,text) is 'Raises 23514 (seller_transfer_in_doubt) when a row would become permanently_failed while in doubt, or the flag is cleared by an authority other than the worker.';
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers,text) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers,text) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers,text) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers,text) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers,text) to marketplace_writer;
grant EXECUTE on function marketplace.assert_seller_transfer_not_given_up_in_doubt(marketplace.seller_transfers,marketplace.seller_transfers,text) to public;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_speaker(id uuid, claimed text, speaker text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  from_status text;
  to_status   text;
  said        text;
begin
  said := case speaker when 'marketplace_recorder' then 'worker' when 'marketplace_admin' then 'operator'
            else marketplace.seller_transfer_authority(case when current_setting('role') = 'none' then session_user
                                                            else current_setting('role')::name end) end;
  begin
    select t.status into to_status from marketplace.seller_transfers t where t.id = $1;
  exception when insufficient_privilege then
    to_status := null;
  end;
  begin
    select e.to_status into from_status
      from marketplace.seller_transfer_events e
     where e.transfer_id = $1 and (e.action is null or e.action = 'adopted')
     order by e.id desc limit 1;
  exception when insufficient_privilege then
    from_status := null;
  end;
  raise exception 'seller transfer %: marketplace.speaker is %, but % runs the statement', id,
      coalesce(quote_literal(nullif(claimed, '')), 'not set'), speaker
    using errcode = 'insufficient_privilege',
          constraint = 'seller_transfer_move_owner',
          schema = 'marketplace', table = 'seller_transfers', column = 'status',
          detail = marketplace.seller_transfer_refusal_detail($1, from_status, to_status,
                     'marketplace.speaker names who speaks in the history; only the worker''s recording functions (recorder) and the admin functions (admin) set it, for their own statements.',
                     coalesce(said, 'none')),
          hint = case when speaker in ('marketplace_recorder', 'marketplace_admin')
                      then format('A function owned by %s that moves a payout needs: ALTER FUNCTION ... SET marketplace.speaker = %L', speaker,
                                  case speaker when 'marketplace_recorder' then 'recorder' else 'admin' end)
                      else 'Do not set marketplace.speaker; call the function that makes the move (see SELECT * FROM marketplace.seller_transfer_transition_owners).' end;
end $function$;
comment on function marketplace.assert_seller_transfer_speaker(uuid,text,text) is 'Raises 42501 (seller_transfer_move_owner) when a statement''s marketplace.speaker does not match the role running it.';
grant EXECUTE on function marketplace.assert_seller_transfer_speaker(uuid,text,text) to public;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_transition(id uuid, from_status text, to_status text)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  allowed text;
begin
  -- Unknown target: the foreign key refuses it (23503) with its own message.
  if not exists (select 1 from marketplace.seller_transfer_statuses s where s.status = $3) then
    return;
  end if;
  if marketplace.can_transition_transfer_status($2, $3) then
    return;
  end if;
  select string_agg(t.to_status, ', ' order by s.position) into allowed
    from marketplace.seller_transfer_transitions t
    join marketplace.seller_transfer_statuses s on s.status = t.to_status
   where t.from_status = $2;
  raise exception 'illegal seller transfer status transition: % -> %', $2, $3
    using errcode = 'check_violation',
          constraint = 'seller_transfer_status_transition',
          schema = 'marketplace', table = 'seller_transfers', column = 'status',
          detail = marketplace.seller_transfer_refusal_detail($1, $2, $3,
                     format('seller transfer %s: allowed from %s: %s (same-state updates are always allowed)',
                            $1, $2, coalesce(allowed, 'nothing, it is terminal'))),
          hint = 'See SELECT * FROM marketplace.seller_transfer_transition_matrix';
end $function$;
comment on function marketplace.assert_seller_transfer_transition(uuid,text,text) is 'Raises the guard''s error (23514, seller_transfer_status_transition) when a seller transfer may not move from $2 to $3.';
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_reader;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_transition(uuid,text,text) to marketplace_writer;
revoke execute on function marketplace.assert_seller_transfer_transition(uuid,text,text) from public;

CREATE OR REPLACE FUNCTION marketplace.assert_seller_transfer_write_once(old marketplace.seller_transfers, new marketplace.seller_transfers)
 RETURNS void
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  col text := marketplace.first_write_once_violation(old, new);
begin
  if col is null then
    return;
  end if;
  raise exception 'seller transfer %: % is %', old.id, col,
      case when col in ('stripe_transfer_id', 'stripe_reversal_id') then 'written once, by the worker, and never changes or clears'
           when col = 'reversal_amount_cents' then 'chosen with the move into reversal_pending and never changes after it'
           when col = 'stripe_key_generation' then 'moved only by the worker, when it records what Stripe answered (it decides whether the worker looks Stripe up before a new idempotency key)'
           else 'fixed once the transfer exists' end
    using errcode = 'check_violation',
          constraint = 'seller_transfer_write_once',
          schema = 'marketplace', table = 'seller_transfers', column = col,
          detail = marketplace.seller_transfer_refusal_detail(old.id, old.status, new.status,
                     format('%s: %s -> %s%s', col,
                            coalesce(to_jsonb(old) ->> col, 'null'), coalesce(to_jsonb(new) ->> col, 'null'),
                            -- An amount also in its currency's unit.
                            case when col in ('amount_cents', 'reversal_amount_cents') then
                              format(' (%s -> %s)',
                                     case when to_jsonb(old) ->> col is null then 'none'
                                          else marketplace.seller_transfer_amount_text((to_jsonb(old) ->> col)::bigint, old.currency) end,
                                     case when to_jsonb(new) ->> col is null then 'none'
                                          else marketplace.seller_transfer_amount_text((to_jsonb(new) ->> col)::bigint, new.currency) end)
                            else '' end)),
          hint = 'A payout''s facts must match what Stripe did. To correct a wrong payout, stop it (seller-transfers fail <id>, or reverse it once paid) and create a new row.';
end $function$;
comment on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) is 'Raises 23514 (seller_transfer_write_once) naming the transfer and the column when an update would change a write-once fact.';
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_admin;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_definer;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_operator;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_reader;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_recorder;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_worker;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_writer;
grant EXECUTE on function marketplace.assert_seller_transfer_write_once(marketplace.seller_transfers,marketplace.seller_transfers) to public;

CREATE OR REPLACE FUNCTION marketplace.audit_seller_transfers(since timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(transfer_id uuid, problem text, detail text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  probes text;
begin
  -- JIT compiles this query's expressions for longer than they run (about a second at 100k rows).
  -- EXECUTE plans the query for this call with `since` known: the full audit is scans, sorts and
  -- hash joins (linear in the history); --since is index-driven (BRIN on the events' time, the
  -- rows' (status, created_at) index).
  -- The full audit reads the whole history: one sequential scan and an external sort feed the
  -- window functions about twice as fast as a walk of the (transfer_id, id) index, whose heap
  -- reads are random once the history outgrows memory (measured at 1M payouts: 17-22 s against
  -- 29-33 s). The planner prefers the index walk (it avoids the sort's temporary files), so
  -- index scans are off for that one statement; --since and the incremental audit need them.
  if since is null then
    probes := current_setting('enable_indexscan');
    perform set_config('enable_indexscan', 'off', true);
    return query execute marketplace.seller_transfer_audit_query('full');
    perform set_config('enable_indexscan', probes, true);
  else
    return query execute marketplace.seller_transfer_audit_query('since') using since;
  end if;
end $function$;
comment on function marketplace.audit_seller_transfers(timestamp with time zone) is 'Rows whose history does not prove their status or their money facts (a write past the guard or the history triggers), one row per problem. since: only transfers created or with a history event since then (null = all).';
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_definer;
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_operator;
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_reader;
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_worker;
grant EXECUTE on function marketplace.audit_seller_transfers(timestamp with time zone) to marketplace_writer;
revoke execute on function marketplace.audit_seller_transfers(timestamp with time zone) from public;

CREATE OR REPLACE FUNCTION marketplace.can_transition_transfer_status(from_status text, to_status text)
 RETURNS boolean
 LANGUAGE sql
 STABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select coalesce(
    exists (select 1 from marketplace.seller_transfer_statuses s where s.status = $1)
    and ($1 = $2 or exists (
      select 1 from marketplace.seller_transfer_transitions t where t.from_status = $1 and t.to_status = $2)),
    false)
$function$;
comment on function marketplace.can_transition_transfer_status(text,text) is 'True when a seller transfer may move from $1 to $2: same-state always, unknown from never, else the transitions table decides.';
grant EXECUTE on function marketplace.can_transition_transfer_status(text,text) to marketplace_admin;
grant EXECUTE on function marketplace.can_transition_transfer_status(text,text) to marketplace_definer;
grant EXECUTE on function marketplace.can_transition_transfer_status(text,text) to marketplace_operator;
grant EXECUTE on function marketplace.can_transition_transfer_status(text,text) to marketplace_reader;
grant EXECUTE on function marketplace.can_transition_transfer_status(text,text) to marketplace_recorder;
grant EXECUTE on function marketplace.can_transition_transfer_status(text,text) to marketplace_worker;
grant EXECUTE on function marketplace.can_transition_transfer_status(text,text) to marketplace_writer;
revoke execute on function marketplace.can_transition_transfer_status(text,text) from public;

CREATE OR REPLACE FUNCTION marketplace.check_seller_transfer_facts()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- Generated by marketplace.compile_seller_transfer_guards() from seller_transfer_write_once_rules().
begin
  if NOT coalesce(old.id OPERATOR(pg_catalog.=) new.id, old.id IS NULL AND new.id IS NULL)
     OR NOT coalesce(old.order_id OPERATOR(pg_catalog.=) new.order_id, old.order_id IS NULL AND new.order_id IS NULL)
     OR NOT coalesce(old.seller_id OPERATOR(pg_catalog.=) new.seller_id, old.seller_id IS NULL AND new.seller_id IS NULL)
     OR NOT coalesce(old.stripe_account_id OPERATOR(pg_catalog.=) new.stripe_account_id, old.stripe_account_id IS NULL AND new.stripe_account_id IS NULL)
     OR NOT coalesce(old.amount_cents OPERATOR(pg_catalog.=) new.amount_cents, old.amount_cents IS NULL AND new.amount_cents IS NULL)
     OR NOT coalesce(old.currency OPERATOR(pg_catalog.=) new.currency, old.currency IS NULL AND new.currency IS NULL)
     OR NOT coalesce(old.source_transaction OPERATOR(pg_catalog.=) new.source_transaction, old.source_transaction IS NULL AND new.source_transaction IS NULL)
     OR NOT coalesce(old.created_at OPERATOR(pg_catalog.=) new.created_at, old.created_at IS NULL AND new.created_at IS NULL) then
    perform marketplace.assert_seller_transfer_write_once(old, new);
  end if;
  return null;
end
$function$;
comment on function marketplace.check_seller_transfer_facts() is 'The money facts of seller_transfers never change (generated from seller_transfer_write_once_rules()).';
revoke execute on function marketplace.check_seller_transfer_facts() from public;

CREATE OR REPLACE FUNCTION marketplace.check_seller_transfer_insert()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- compiled from the statuses and transitions tables, fingerprint b9b6627a6d067bd48ccbc610d7cb59dd.
-- Generated by marketplace.compile_seller_transfer_guards() from seller_transfer_statuses.
begin
  if not coalesce(new.status OPERATOR(pg_catalog.=) ANY ('{pending}'::pg_catalog.text[]), false)
     or (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval) OPERATOR(pg_catalog.>) new.created_at
     or (pg_catalog.now() OPERATOR(pg_catalog.+) '5 minutes'::pg_catalog.interval) OPERATOR(pg_catalog.<) new.created_at then
    perform marketplace.assert_seller_transfer_insert(new);
  end if;
  return new;
end
$function$;
comment on function marketplace.check_seller_transfer_insert() is 'compiled from the statuses and transitions tables, fingerprint b9b6627a6d067bd48ccbc610d7cb59dd';
revoke execute on function marketplace.check_seller_transfer_insert() from public;

CREATE OR REPLACE FUNCTION marketplace.check_seller_transfer_update()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
-- compiled from the statuses and transitions tables, fingerprint b9b6627a6d067bd48ccbc610d7cb59dd.
-- Generated by marketplace.compile_seller_transfer_guards() from seller_transfer_transitions,
-- seller_transfer_move_owners and seller_transfer_write_once_rules(): change those, not this.
declare
  who     pg_catalog.name;
  said    pg_catalog.text;
  speaker pg_catalog.text;
begin
  if old.status OPERATOR(pg_catalog.<>) new.status or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt) then
    -- Who speaks: the worker's recording functions ('recorder'), the admin functions ('admin'),
    -- else the session's role's authority (worked out only then: it costs three role lookups).
    said := case when current_user OPERATOR(pg_catalog.=) 'marketplace_recorder'::pg_catalog.name then 'recorder'
                 when current_user OPERATOR(pg_catalog.=) 'marketplace_admin'::pg_catalog.name then 'admin' end;
    if said is null then
      who := case when pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' then session_user else pg_catalog.current_setting('role')::pg_catalog.name end;
      said := CASE WHEN who OPERATOR(pg_catalog.=) 'marketplace_recorder'::pg_catalog.name THEN 'worker' WHEN who OPERATOR(pg_catalog.=) 'marketplace_admin'::pg_catalog.name THEN 'operator' WHEN pg_catalog.pg_has_role(who, 'postgres', 'USAGE') THEN 'owner' WHEN pg_catalog.pg_has_role(who, 'marketplace_writer', 'USAGE') THEN 'service' WHEN pg_catalog.pg_has_role(who, 'marketplace_worker', 'USAGE') THEN 'worker' END;
    end if;
    -- The matrix and the move's owner (one search of the owned moves), and marketplace.speaker,
    -- which the history trigger believes, must be this statement's: 'recorder' or 'admin' for
    -- those functions, unset or empty for everyone else. A refusal is worked out again, slowly,
    -- so that the matrix speaks first, then the owner, then the speaker.
    if old.status OPERATOR(pg_catalog.<>) new.status
       and (pg_catalog.strpos('|completed>reversal_pending>admin|completed>reversal_pending>operator|completed>reversal_pending>owner|completed>reversal_pending>recorder|completed>reversal_pending>service|completed>reversal_pending>worker|failed>completed>owner|failed>completed>recorder|failed>completed>worker|failed>permanently_failed>admin|failed>permanently_failed>operator|failed>permanently_failed>owner|failed>permanently_failed>recorder|failed>permanently_failed>worker|pending>completed>owner|pending>completed>recorder|pending>completed>worker|pending>failed>admin|pending>failed>operator|pending>failed>owner|pending>failed>recorder|pending>failed>worker|reversal_pending>permanently_failed>admin|reversal_pending>permanently_failed>operator|reversal_pending>permanently_failed>owner|reversal_pending>permanently_failed>recorder|reversal_pending>permanently_failed>worker|reversal_pending>reversed>owner|reversal_pending>reversed>recorder|reversal_pending>reversed>worker|', pg_catalog.concat('|', old.status, '>', new.status, '>', said, '|')) OPERATOR(pg_catalog.=) 0
            or coalesce(pg_catalog.current_setting('marketplace.speaker', true), '') OPERATOR(pg_catalog.<>)
               (case when said OPERATOR(pg_catalog.=) ANY ('{recorder,admin}'::pg_catalog.text[]) then said else '' end)) then
      said := case when said OPERATOR(pg_catalog.=) 'recorder' then 'worker' when said OPERATOR(pg_catalog.=) 'admin' then 'operator' else said end;
      if not coalesce(marketplace.seller_transfer_move_owned(old.status, new.status, said), false) then
        perform marketplace.assert_seller_transfer_move_by(old.id, old.status, new.status, said, coalesce(who, current_user));
      end if;
      perform marketplace.assert_seller_transfer_speaker(old.id, pg_catalog.current_setting('marketplace.speaker', true), current_user);
    end if;
  elsif pg_catalog.record_eq((old.status, old.stripe_transfer_id, old.stripe_reversal_id, old.reversal_amount_cents, old.stripe_key_generation, old.stripe_request_in_doubt), (new.status, new.stripe_transfer_id, new.stripe_reversal_id, new.reversal_amount_cents, new.stripe_key_generation, new.stripe_request_in_doubt))
        and not ((new.status OPERATOR(pg_catalog.=) ANY ('{completed,reversal_pending,reversed}'::pg_catalog.text[]) and new.stripe_transfer_id is null)
     or (new.status OPERATOR(pg_catalog.=) 'reversed' and new.stripe_reversal_id is null)
     or (new.stripe_reversal_id is not null and new.stripe_transfer_id is null)
     or (new.status OPERATOR(pg_catalog.=) 'failed' and new.next_retry_at is null)
     or (new.status OPERATOR(pg_catalog.=) 'permanently_failed' and new.stripe_request_in_doubt)) then
    -- Not a move (a lease, a retry's schedule, a recorded failure): when the write-once columns and
    -- the doubt are as they were (one record_eq over two rows, NULL equal to NULL, cheaper to
    -- prepare than the chain below), only the rules over the row as it now stands can be broken.
    return null;
  end if;
  -- The Stripe ids, the reversal amount and the key generation (the money facts: seller_transfer_write_once);
  -- nothing given up while Stripe may hold it, only the worker clears the doubt; the column couplings.
  if (old.stripe_transfer_id IS NOT NULL AND NOT coalesce(new.stripe_transfer_id OPERATOR(pg_catalog.=) old.stripe_transfer_id, false))
     OR (old.stripe_reversal_id IS NOT NULL AND NOT coalesce(new.stripe_reversal_id OPERATOR(pg_catalog.=) old.stripe_reversal_id, false))
     OR (NOT coalesce(old.reversal_amount_cents OPERATOR(pg_catalog.=) new.reversal_amount_cents, old.reversal_amount_cents IS NULL AND new.reversal_amount_cents IS NULL) AND NOT (new.status OPERATOR(pg_catalog.=) 'reversal_pending' AND old.status OPERATOR(pg_catalog.<>) 'reversal_pending'))
     OR (NOT coalesce(old.stripe_key_generation OPERATOR(pg_catalog.=) new.stripe_key_generation, old.stripe_key_generation IS NULL AND new.stripe_key_generation IS NULL) AND current_user OPERATOR(pg_catalog.<>) 'marketplace_recorder'::pg_catalog.name)
     or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt and not coalesce(said OPERATOR(pg_catalog.=) ANY ('{worker,recorder}'::pg_catalog.text[]), false))
     or (new.status OPERATOR(pg_catalog.=) ANY ('{completed,reversal_pending,reversed}'::pg_catalog.text[]) and new.stripe_transfer_id is null)
     or (new.status OPERATOR(pg_catalog.=) 'reversed' and new.stripe_reversal_id is null)
     or (new.stripe_reversal_id is not null and new.stripe_transfer_id is null)
     or (new.status OPERATOR(pg_catalog.=) 'failed' and new.next_retry_at is null)
     or (new.status OPERATOR(pg_catalog.=) 'permanently_failed' and new.stripe_request_in_doubt) then
    said := case when said OPERATOR(pg_catalog.=) 'recorder' then 'worker' when said OPERATOR(pg_catalog.=) 'admin' then 'operator' else said end;
    perform marketplace.assert_seller_transfer_write_once(old, new);
    perform marketplace.assert_seller_transfer_not_given_up_in_doubt(old, new, said);
    perform marketplace.assert_seller_transfer_couplings(new);
  end if;
  return null;
end
$function$;
comment on function marketplace.check_seller_transfer_update() is 'compiled from the statuses and transitions tables, fingerprint b9b6627a6d067bd48ccbc610d7cb59dd';
revoke execute on function marketplace.check_seller_transfer_update() from public;

CREATE OR REPLACE FUNCTION marketplace.claim_seller_transfer(transfer_id uuid, task text, lease timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(outcome text, id uuid, status text, stripe_account_id text, amount_cents bigint, currency text, order_id uuid, seller_id uuid, stripe_transfer_id text, reversal_amount_cents bigint, retry_count integer, next_retry_at timestamp with time zone, last_error text, stripe_key_generation integer, stripe_request_in_doubt boolean, state_since timestamp with time zone, source_transaction text)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  wanted uuid := claim_seller_transfer.transfer_id;
  holder integer;
begin
  select case when s.worker_task = claim_seller_transfer.task
               and (marketplace.seller_transfer_is_due(t.status, t.next_retry_at) or t.next_retry_at = claim_seller_transfer.lease)
              then 'claimed' else 'not_actionable' end,
         t.id, t.status, t.stripe_account_id, t.amount_cents, t.currency, t.order_id, t.seller_id,
         t.stripe_transfer_id, t.reversal_amount_cents, t.retry_count, t.next_retry_at, t.last_error,
         t.stripe_key_generation, t.stripe_request_in_doubt, marketplace.seller_transfer_status_since(t.id), t.source_transaction
    into outcome, id, status, stripe_account_id, amount_cents, currency, order_id, seller_id,
         stripe_transfer_id, reversal_amount_cents, retry_count, next_retry_at, last_error,
         stripe_key_generation, stripe_request_in_doubt, state_since, source_transaction
    from marketplace.seller_transfers t
    join marketplace.seller_transfer_statuses s on s.status = t.status
   where t.id = wanted
     for key share of t;
  if not found then
    outcome := 'missing';
    id := wanted;
  elsif outcome = 'claimed' then
    insert into marketplace.seller_transfer_claims as c (transfer_id, backend_pid, task)
    values (wanted, pg_backend_pid(), claim_seller_transfer.task)
    on conflict on constraint seller_transfer_claims_pkey do update
       set backend_pid = excluded.backend_pid, task = excluded.task, claimed_at = now()
     where c.backend_pid = pg_backend_pid() or not marketplace.seller_transfer_claim_is_live(c.backend_pid)
    returning c.backend_pid into holder;
    if holder is null then
      outcome := 'busy';
    end if;
  end if;
  return next;
end $function$;
comment on function marketplace.claim_seller_transfer(uuid,text,timestamp with time zone) is 'Worker: reads the row and takes its claim in one round trip. outcome: claimed (this session holds the claim), busy (another live session does), missing or not_actionable (nothing taken).';
grant EXECUTE on function marketplace.claim_seller_transfer(uuid,text,timestamp with time zone) to marketplace_worker;
revoke execute on function marketplace.claim_seller_transfer(uuid,text,timestamp with time zone) from public;

CREATE OR REPLACE FUNCTION marketplace.compile_seller_transfer_guards()
 RETURNS void
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  owned_case   text;
  initial_set  text;
  matrix_cols  text;
  bad          text;
  fixed_cols   text;
  fixed_test   text;
  later_test   text;
  fixed_case   text;
  owned_keys   text;
  row_rules    text;
  later_old    text;
  later_new    text;
  authority    text := marketplace.seller_transfer_authority_expression('who');
  who          text;
  compiled     text := 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint();
begin
  select string_agg(t.from_status, ', ') into bad
    from marketplace.seller_transfer_transitions t
    join marketplace.seller_transfer_statuses s on s.status = t.from_status
   where s.is_terminal;
  if bad is not null then
    raise exception 'terminal statuses cannot have outgoing transitions: %', bad using errcode = 'check_violation';
  end if;

  -- The legal moves and who owns each, as one string the check searches with strpos (one function
  -- call to prepare, where a CASE over the matrix is dozens): |from>to>authority|, where the worker's
  -- recording functions speak as 'recorder' and the admin functions as 'admin' (current_user), the
  -- rest as their session role's authority. Status names are [a-z_] (seller_transfer_statuses'
  -- CHECK), so '|' and '>' cannot occur inside a key.
  select '|' || string_agg(k, '|' order by k) || '|' into owned_keys
    from (select t.from_status || '>' || t.to_status || '>' || s.said as k
            from marketplace.seller_transfer_transitions t
            cross join lateral (select o.authority from marketplace.seller_transfer_move_owners o
                                 where o.from_status = t.from_status and o.to_status = t.to_status
                                union select 'owner') a
            cross join lateral (values (a.authority),
                                       (case a.authority when 'worker' then 'recorder' when 'operator' then 'admin' end)) s(said)
           where s.said is not null) keys;

  execute format($f$
    create or replace function marketplace.seller_transfer_authority(who name)
    returns text language sql stable parallel safe set search_path = pg_catalog, pg_temp as $b$ select %s $b$ $f$, authority);

  -- CASE from_status WHEN 'pending' THEN CASE to_status WHEN 'completed' THEN authority = ANY ('{owner,worker}') ...
  -- The table's owner may make every legal move. Same-state and unknown moves are not asked here.
  select format('CASE from_status %s ELSE false END', coalesce(string_agg(arm, ' '), ''))
    into owned_case
    from (select format('WHEN %L THEN CASE to_status %s ELSE false END', t.from_status,
                        string_agg(format('WHEN %L THEN coalesce(authority = ANY (%L::text[]), false)', t.to_status,
                                          (select '{' || string_agg(a, ',' order by a) || '}'
                                             from (select o.authority as a from marketplace.seller_transfer_move_owners o
                                                    where o.from_status = t.from_status and o.to_status = t.to_status
                                                   union all select 'owner') x)),
                                   ' ' order by t.to_status)) as arm
            from marketplace.seller_transfer_transitions t group by t.from_status order by t.from_status) arms;
  -- A SQL-standard body: parsed here, under this function's search_path, and inlined by the planner
  -- into the guard's expression (no call at run time).
  execute format($f$
    create or replace function marketplace.seller_transfer_move_owned(from_status text, to_status text, authority text)
    returns boolean language sql immutable parallel safe
    begin atomic
      select %s;
    end $f$, owned_case);
  execute format('comment on function marketplace.seller_transfer_move_owned(text, text, text) is %L',
                 'True when authority may move a seller transfer from_status -> to_status (a legal move it owns; the owner owns every legal move). '
                 || compiled);

  -- The write-once tests, from seller_transfer_write_once_rules(): the fixed money facts get their
  -- own trigger (no writer names them), the rest are checked with the move.
  -- Written with OPERATOR(pg_catalog.=) and without IS DISTINCT FROM (which finds its = through the
  -- caller's search_path): the guard pins no search_path (see its comment).
  select string_agg(format('%I', r.column_name), ', ' order by ord) filter (where r.rule = 'fixed'),
         string_agg(format('NOT coalesce(old.%1$I OPERATOR(pg_catalog.=) new.%1$I, old.%1$I IS NULL AND new.%1$I IS NULL)', r.column_name),
                    E'\n     OR ' order by ord) filter (where r.rule = 'fixed'),
         string_agg(case r.rule
                      when 'once' then format('(old.%1$I IS NOT NULL AND NOT coalesce(new.%1$I OPERATOR(pg_catalog.=) old.%1$I, false))', r.column_name)
                      when 'with the move into reversal_pending' then
                        format('(NOT coalesce(old.%1$I OPERATOR(pg_catalog.=) new.%1$I, old.%1$I IS NULL AND new.%1$I IS NULL) AND NOT (new.status OPERATOR(pg_catalog.=) ''reversal_pending'' AND old.status OPERATOR(pg_catalog.<>) ''reversal_pending''))', r.column_name)
                      when 'by the worker' then format('(NOT coalesce(old.%1$I OPERATOR(pg_catalog.=) new.%1$I, old.%1$I IS NULL AND new.%1$I IS NULL) AND current_user OPERATOR(pg_catalog.<>) ''marketplace_recorder''::pg_catalog.name)', r.column_name)
                    end, E'\n     OR ' order by ord) filter (where r.rule <> 'fixed'),
         string_agg(format('WHEN %s THEN %L',
                           case r.rule
                             when 'fixed' then format('old.%1$I IS DISTINCT FROM new.%1$I', r.column_name)
                             when 'once' then format('old.%1$I IS NOT NULL AND new.%1$I IS DISTINCT FROM old.%1$I', r.column_name)
                             when 'with the move into reversal_pending' then
                               format('old.%1$I IS DISTINCT FROM new.%1$I AND NOT (new.status = ''reversal_pending'' AND old.status IS DISTINCT FROM ''reversal_pending'')', r.column_name)
                             when 'by the worker' then format('old.%1$I IS DISTINCT FROM new.%1$I AND current_user <> ''marketplace_recorder''', r.column_name)
                           end, r.column_name), ' ' order by ord)
    into fixed_cols, fixed_test, later_test, fixed_case
    from marketplace.seller_transfer_write_once_rules() with ordinality r(column_name, rule, ord);
  -- The columns a non-move may leave as they were and skip every test but the couplings: the
  -- write-once columns checked with the move, and the doubt (its clearing is checked with the move).
  -- The status leads (equal on this path): a row of two or more needs no ROW keyword, which the
  -- path-free check would read as a call.
  select string_agg(format('old.%I', c), ', ' order by ord), string_agg(format('new.%I', c), ', ' order by ord)
    into later_old, later_new
    from (select 'status', 0::bigint
          union all
          select r.column_name, r.ord from marketplace.seller_transfer_write_once_rules() with ordinality r(column_name, rule, ord)
           where r.rule <> 'fixed'
          union all select 'stripe_request_in_doubt', 1000000) x(c, ord);
  execute format($f$
    create or replace function marketplace.first_write_once_violation(old marketplace.seller_transfers, new marketplace.seller_transfers)
    returns text language sql stable set search_path = pg_catalog, pg_temp as $b$ select CASE %s END $b$ $f$, fixed_case);

  -- The rules over the row as it stands, as one test over new (the update check's two paths and the
  -- insert recorder use it): the column couplings, from seller_transfer_coupling_rules(), and
  -- nothing given up while Stripe may hold it.
  select string_agg('(' || regexp_replace(r.broken_when, '\mr\.', 'new.', 'g') || ')', E'\n     or ' order by r.ord)
         || E'\n     or (new.status OPERATOR(pg_catalog.=) ''permanently_failed'' and new.stripe_request_in_doubt)'
    into row_rules
    from marketplace.seller_transfer_coupling_rules() r;

  -- The bodies pin no search_path (that costs every call a GUC save and restore); instead nothing in
  -- them resolves through the caller's search_path: every function and type is schema-qualified,
  -- every operator is OPERATOR(pg_catalog.x), no IS DISTINCT FROM, NULLIF, IN (...) or simple CASE
  -- (they find = through the path), errors are raised by functions that pin it.
  -- marketplace.seller_transfer_body_is_path_free() checks this text, and
  -- test/guard-search-path.test.ts runs every path through them under a hostile search_path.

  -- Each expression a trigger body evaluates is prepared once per transaction (PostgreSQL's
  -- plpgsql keeps the plan, not the executable state): the bodies evaluate as few as they can on
  -- the path every write takes, one test per rule group, the values computed inside the INSERT.
  who := $w$case when pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' then session_user else pg_catalog.current_setting('role')::pg_catalog.name end$w$;

  -- 1. The checks of an UPDATE. SECURITY INVOKER: current_user is the statement's.
  execute format($f$
    create or replace function marketplace.check_seller_transfer_update()
    returns trigger language plpgsql as $body$
-- %1$s.
-- Generated by marketplace.compile_seller_transfer_guards() from seller_transfer_transitions,
-- seller_transfer_move_owners and seller_transfer_write_once_rules(): change those, not this.
declare
  who     pg_catalog.name;
  said    pg_catalog.text;
  speaker pg_catalog.text;
begin
  if old.status OPERATOR(pg_catalog.<>) new.status or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt) then
    -- Who speaks: the worker's recording functions ('recorder'), the admin functions ('admin'),
    -- else the session's role's authority (worked out only then: it costs three role lookups).
    said := case when current_user OPERATOR(pg_catalog.=) 'marketplace_recorder'::pg_catalog.name then 'recorder'
                 when current_user OPERATOR(pg_catalog.=) 'marketplace_admin'::pg_catalog.name then 'admin' end;
    if said is null then
      who := %2$s;
      said := %3$s;
    end if;
    -- The matrix and the move's owner (one search of the owned moves), and marketplace.speaker,
    -- which the history trigger believes, must be this statement's: 'recorder' or 'admin' for
    -- those functions, unset or empty for everyone else. A refusal is worked out again, slowly,
    -- so that the matrix speaks first, then the owner, then the speaker.
    if old.status OPERATOR(pg_catalog.<>) new.status
       and (pg_catalog.strpos(%5$L, pg_catalog.concat('|', old.status, '>', new.status, '>', said, '|')) OPERATOR(pg_catalog.=) 0
            or coalesce(pg_catalog.current_setting('marketplace.speaker', true), '') OPERATOR(pg_catalog.<>)
               (case when said OPERATOR(pg_catalog.=) ANY ('{recorder,admin}'::pg_catalog.text[]) then said else '' end)) then
      said := case when said OPERATOR(pg_catalog.=) 'recorder' then 'worker' when said OPERATOR(pg_catalog.=) 'admin' then 'operator' else said end;
      if not coalesce(marketplace.seller_transfer_move_owned(old.status, new.status, said), false) then
        perform marketplace.assert_seller_transfer_move_by(old.id, old.status, new.status, said, coalesce(who, current_user));
      end if;
      perform marketplace.assert_seller_transfer_speaker(old.id, pg_catalog.current_setting('marketplace.speaker', true), current_user);
    end if;
  elsif pg_catalog.record_eq((%7$s), (%8$s))
        and not (%6$s) then
    -- Not a move (a lease, a retry's schedule, a recorded failure): when the write-once columns and
    -- the doubt are as they were (one record_eq over two rows, NULL equal to NULL, cheaper to
    -- prepare than the chain below), only the rules over the row as it now stands can be broken.
    return null;
  end if;
  -- The Stripe ids, the reversal amount and the key generation (the money facts: seller_transfer_write_once);
  -- nothing given up while Stripe may hold it, only the worker clears the doubt; the column couplings.
  if %4$s
     or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt and not coalesce(said OPERATOR(pg_catalog.=) ANY ('{worker,recorder}'::pg_catalog.text[]), false))
     or %6$s then
    said := case when said OPERATOR(pg_catalog.=) 'recorder' then 'worker' when said OPERATOR(pg_catalog.=) 'admin' then 'operator' else said end;
    perform marketplace.assert_seller_transfer_write_once(old, new);
    perform marketplace.assert_seller_transfer_not_given_up_in_doubt(old, new, said);
    perform marketplace.assert_seller_transfer_couplings(new);
  end if;
  return null;
end
$body$ $f$, compiled, who, authority, later_test, owned_keys, row_rules, later_old, later_new);
  execute format('comment on function marketplace.check_seller_transfer_update() is %L', compiled);

  -- 2. The money facts, when a statement names one.
  execute format($f$
    create or replace function marketplace.check_seller_transfer_facts()
    returns trigger language plpgsql as $body$
-- Generated by marketplace.compile_seller_transfer_guards() from seller_transfer_write_once_rules().
begin
  if %1$s then
    perform marketplace.assert_seller_transfer_write_once(old, new);
  end if;
  return null;
end
$body$ $f$, fixed_test);

  -- 3. The history row of a move: who, as what, why, and the Stripe id the move records. SECURITY
  -- DEFINER owned by marketplace_definer, so it is written with its rights, not the writer's.
  -- marketplace.speaker: 'recorder' (the worker speaks), 'admin' (an operator, or a service
  -- through fail_seller_transfer: marketplace.caller_authority), else the session's role.
  execute format($f$
    create or replace function marketplace.record_seller_transfer_move()
    returns trigger language plpgsql security definer as $body$
-- Generated by marketplace.compile_seller_transfer_guards(). Fires after check_seller_transfer_update(),
-- which refused the move unless marketplace.speaker is the statement's.
declare
  speaker  pg_catalog.text;
  who      pg_catalog.name;
  said     pg_catalog.text;
  why      pg_catalog.text;
  asker    pg_catalog.text;
  app      pg_catalog.text;
begin
  if old.status OPERATOR(pg_catalog.=) new.status then
    return null;
  end if;
  who := %1$s;
  speaker := pg_catalog.current_setting('marketplace.speaker', true);
  if speaker OPERATOR(pg_catalog.=) 'recorder' then
    said := 'worker';
  elsif speaker OPERATOR(pg_catalog.=) 'admin' then
    said := case when coalesce(pg_catalog.current_setting('marketplace.caller_authority', true) OPERATOR(pg_catalog.=) 'service', false)
                 then 'service' else 'operator' end;
    if said OPERATOR(pg_catalog.=) 'operator' then
      asker := pg_catalog.current_setting('marketplace.requested_by', true);
      if asker OPERATOR(pg_catalog.=) '' then asker := null; end if;
    end if;
  else
    said := %2$s;
  end if;
  why := pg_catalog.current_setting('marketplace.transition_reason', true);
  if why OPERATOR(pg_catalog.=) '' then why := null; end if;
  app := pg_catalog.current_setting('application_name');
  if app OPERATOR(pg_catalog.=) '' then app := null; end if;
  if pg_catalog.length(why) OPERATOR(pg_catalog.>) 1000 or pg_catalog.length(asker) OPERATOR(pg_catalog.>) 200 then
    perform marketplace.assert_seller_transfer_history_text(why, asker);
  end if;
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  requested_by, authority, stripe_transfer_id, stripe_reversal_id)
  values (new.id, old.status, new.status, pg_catalog.clock_timestamp(), who, app, why, pg_catalog.pg_current_xact_id(),
          asker, said,
          case when old.stripe_transfer_id is null then new.stripe_transfer_id end,
          case when old.stripe_reversal_id is null then new.stripe_reversal_id end);
  return null;
end
$body$ $f$, who, authority);

  -- 4. A new row: initial status and created_at, before the CHECKs (as the WHEN triggers did).
  select string_agg(status, ',' order by position) into initial_set
    from marketplace.seller_transfer_statuses where is_initial;
  execute format($f$
    create or replace function marketplace.check_seller_transfer_insert()
    returns trigger language plpgsql as $body$
-- %1$s.
-- Generated by marketplace.compile_seller_transfer_guards() from seller_transfer_statuses.
begin
  if not coalesce(new.status OPERATOR(pg_catalog.=) ANY (%2$L::pg_catalog.text[]), false)
     or (pg_catalog.now() OPERATOR(pg_catalog.-) '1 day'::pg_catalog.interval) OPERATOR(pg_catalog.>) new.created_at
     or (pg_catalog.now() OPERATOR(pg_catalog.+) '5 minutes'::pg_catalog.interval) OPERATOR(pg_catalog.<) new.created_at then
    perform marketplace.assert_seller_transfer_insert(new);
  end if;
  return new;
end
$body$ $f$, compiled, '{' || coalesce(initial_set, '') || '}');
  execute format('comment on function marketplace.check_seller_transfer_insert() is %L', compiled);

  -- 5. A new row's couplings and its history row. SECURITY DEFINER (it writes the history).
  execute format($f$
    create or replace function marketplace.record_seller_transfer_insert()
    returns trigger language plpgsql security definer as $body$
-- Generated by marketplace.compile_seller_transfer_guards().
declare
  who pg_catalog.name := %1$s;
  why pg_catalog.text := pg_catalog.current_setting('marketplace.transition_reason', true);
  app pg_catalog.text := pg_catalog.current_setting('application_name');
begin
  if %3$s
     or pg_catalog.length(why) OPERATOR(pg_catalog.>) 1000 then
    perform marketplace.assert_seller_transfer_not_given_up_in_doubt(null, new, null);
    perform marketplace.assert_seller_transfer_couplings(new);
    perform marketplace.assert_seller_transfer_history_text(why, null);
  end if;
  if why OPERATOR(pg_catalog.=) '' then why := null; end if;
  if app OPERATOR(pg_catalog.=) '' then app := null; end if;
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  amount_cents, currency, stripe_account_id, authority, stripe_transfer_id, stripe_reversal_id, source_transaction)
  values (new.id, null, new.status, pg_catalog.clock_timestamp(), who, app, why, pg_catalog.pg_current_xact_id(),
          new.amount_cents, new.currency, new.stripe_account_id, %2$s, new.stripe_transfer_id, new.stripe_reversal_id, new.source_transaction);
  return null;
end
$body$ $f$, who, authority, row_rules);

  -- The triggers that fire them (created here, so a recompile restores a dropped one).
  execute format($t$
    create or replace trigger seller_transfer_write_once
      after update of %s on marketplace.seller_transfers
      for each row execute function marketplace.check_seller_transfer_facts()$t$, fixed_cols);
  comment on trigger seller_transfer_write_once on marketplace.seller_transfers is
    'The money facts never change: check_seller_transfer_facts(), generated from seller_transfer_write_once_rules(); no writer names these columns, so no writer pays for it.';
  execute format('comment on trigger seller_transfer_initial_status on marketplace.seller_transfers is %L', compiled);

  -- The 6x6 (or NxN) matrix: rows = from, one column per to-status, in position order.
  select string_agg(format(
           'case when f.status = %1$L then ''same'' when marketplace.can_transition_transfer_status(f.status, %1$L) then ''yes'' else ''-'' end as %1$I',
           status), ', ' order by position) into matrix_cols
    from marketplace.seller_transfer_statuses;
  drop view if exists marketplace.seller_transfer_transition_matrix;
  execute format($v$
    create view marketplace.seller_transfer_transition_matrix as
      select f.status as from_status, %s
        from marketplace.seller_transfer_statuses f
       order by f.position$v$, matrix_cols);
  comment on view marketplace.seller_transfer_transition_matrix is
    'Rows: from status; columns: to status. yes = legal move, same = same-state (always allowed), - = refused. Who may make each: seller_transfer_transition_owners.';
  grant select on marketplace.seller_transfer_transition_matrix
    to marketplace_reader, marketplace_writer, marketplace_worker, marketplace_operator;
end $function$;
revoke execute on function marketplace.compile_seller_transfer_guards() from public;

CREATE OR REPLACE FUNCTION marketplace.configure_stripe_request_budget(global_per_second double precision, endpoint_per_second double precision)
 RETURNS TABLE(budget text, configured_per_second double precision, current_per_second double precision)
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;
comment on function marketplace.configure_stripe_request_budget(double precision,double precision) is 'Sets the configured rate of the global budget and of every endpoint budget (STRIPE_REQUESTS_PER_SECOND, STRIPE_ENDPOINT_REQUESTS_PER_SECOND). Returns the rows it changed.';
grant EXECUTE on function marketplace.configure_stripe_request_budget(double precision,double precision) to marketplace_worker;
revoke execute on function marketplace.configure_stripe_request_budget(double precision,double precision) from public;

CREATE OR REPLACE FUNCTION marketplace.dispatch_seller_transfers(max_jobs integer, lease_seconds double precision DEFAULT 120, wait_ms integer DEFAULT 0, poll_ms integer DEFAULT 10)
 RETURNS TABLE(dispatched integer, oldest_due_seconds double precision)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  deadline    timestamptz := clock_timestamp() + make_interval(secs => greatest(wait_ms, 0) / 1000.0);
  have_lock   boolean := false;
  at          timestamptz;  -- now, re-read each round: now() is the transaction's start
  want        integer;
  lease_until timestamptz;
  specs       graphile_worker.job_spec[];
  lag         double precision;
  added       integer;
  snap        text;         -- pg_current_snapshot() of this round
  seen        text;         -- ... of the round that last looked at the table
  looking     boolean;
  orphans     uuid[] := '{}';  -- rows in a worker status claimed by a session that is gone
  next_due    timestamptz;  -- when the earliest not-yet-due row (retry time or lease) falls due
  pause       double precision := poll_ms / 1000.0;
  slept       text;
  paused      boolean := false;  -- the fleet's pause switch, as of the last look
begin
  loop
    -- Single-flight: the first transaction to lock the mutex row dispatches (and polls) for the
    -- fleet; the others only retry it, which costs next to nothing. Only the definer may lock it.
    if not have_lock then
      perform 1 from marketplace.seller_transfer_dispatch_mutex m for update skip locked;
      have_lock := found;
    end if;
    if have_lock then
      at := clock_timestamp();
      -- Has anything changed since the last look? A row becomes due by a commit (a writer's, a
      -- worker's, a job's completion releasing its row) or by the clock reaching its
      -- next_retry_at. The snapshot (xmin, xmax, running xids) is unchanged exactly while no
      -- transaction of the cluster has ended, so an idle round costs one call, not five index
      -- probes. It is read before the probes: a commit between the two is seen by the probes and
      -- again by the next round. The first round of every call looks regardless (a worker session
      -- that died without an xid ends without changing it).
      snap := pg_current_snapshot()::text;
      looking := snap is distinct from seen or (next_due is not null and at >= next_due);
      -- The pause switch (seller_transfer_pause), read with each look: a pause or a resume is a
      -- commit, so the round after it looks. Paused: nothing is handed out, rows stay due.
      if looking then
        paused := marketplace.seller_transfers_paused();
      end if;
      if looking then
        -- Claims of sessions that are gone: their rows are due again now (a killed worker's rows
        -- are taken over in seconds, not after the lease). Activity is re-read, not this
        -- transaction's cached copy.
        perform pg_stat_clear_snapshot();
        select coalesce(array_agg(c.transfer_id), '{}') into orphans
          from marketplace.seller_transfer_claims c
          join marketplace.seller_transfers t on t.id = c.transfer_id
          join marketplace.seller_transfer_statuses s on s.status = t.status and s.worker_task is not null
         where not marketplace.seller_transfer_claim_is_live(c.backend_pid);
      end if;
      if not looking or paused then
        want := 0;
      -- Anything due at all? Five bounded index probes (IS NULL and <= at are index conditions;
      -- at is read as (select at): docs/architecture.md#due-rows-in-index-order-whatever-the-statistics-say).
      -- Only then: is there room in graphile-worker's queue?
      elsif cardinality(orphans) > 0 or exists (
           select 1 from marketplace.seller_transfers t where t.status = 'pending' and t.next_retry_at is null
           union all select 1 from marketplace.seller_transfers t where t.status = 'pending' and t.next_retry_at <= (select at)
           union all select 1 from marketplace.seller_transfers t where t.status = 'failed' and t.next_retry_at <= (select at)
           union all select 1 from marketplace.seller_transfers t where t.status = 'reversal_pending' and t.next_retry_at is null
           union all select 1 from marketplace.seller_transfers t where t.status = 'reversal_pending' and t.next_retry_at <= (select at)) then
        select max_jobs - count(*) into want
          from (select 1 from graphile_worker._private_jobs j
                 where j.is_available
                   and j.task_id in (select t.id from graphile_worker._private_tasks t
                                       join marketplace.seller_transfer_statuses s on s.worker_task = t.identifier)
                 limit greatest(max_jobs, 0)) waiting;
      else
        want := 0;
      end if;
      if looking then
        -- Looked: remember what was seen, and when the next row falls due without a commit.
        seen := snap;
        -- Ordered like each partial index, so each is one index entry however many rows are leased
        -- (min() would want NULLS LAST, which the NULLS FIRST indexes cannot give in order).
        next_due := least(
          (select t.next_retry_at from marketplace.seller_transfers t where t.status = 'pending' and t.next_retry_at > (select at)
            order by t.next_retry_at nulls first limit 1),
          (select t.next_retry_at from marketplace.seller_transfers t where t.status = 'failed' and t.next_retry_at > (select at)
            order by t.next_retry_at limit 1),
          (select t.next_retry_at from marketplace.seller_transfers t where t.status = 'reversal_pending' and t.next_retry_at > (select at)
            order by t.next_retry_at nulls first limit 1));
      end if;
      if want > 0 then
        lease_until := at + make_interval(secs => lease_seconds);
        -- A block of its own (a subtransaction): a round that hands nothing out (every due row is
        -- held by a writer or a worker) rolls back the row locks it took, instead of holding them
        -- while this call keeps waiting.
        begin
        with candidates as (
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'pending' and t.next_retry_at is null order by t.next_retry_at nulls first, t.created_at limit want)
          union all
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'pending' and t.next_retry_at <= (select at) order by t.next_retry_at nulls first, t.created_at limit want)
          union all
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'failed' and t.next_retry_at <= (select at) order by t.next_retry_at limit want)
          union all
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'reversal_pending' and t.next_retry_at is null order by t.next_retry_at nulls first limit want)
          union all
          (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
            where t.status = 'reversal_pending' and t.next_retry_at <= (select at) order by t.next_retry_at nulls first limit want)
          union all
          (select t.id, t.status, null::timestamptz, t.created_at from marketplace.seller_transfers t
            where t.id = any (orphans) limit want)
        ), fair as (
          -- Round robin over the statuses, longest due first within each (a killed worker's rows first).
          select c.id
            from (select c.*, row_number() over (partition by c.status order by c.next_retry_at nulls first, c.created_at) as turn
                    from candidates c) c
           order by c.turn, c.status
           limit want
        ), locked as (
          -- Re-checked under the row lock (a writer may have moved the row since the scan), fetched
          -- by primary key; rows a writer holds right now are skipped.
          select t.id, t.status, t.next_retry_at, t.created_at
            from marketplace.seller_transfers t
            join marketplace.seller_transfer_statuses s on s.status = t.status and s.worker_task is not null
           where t.id = any (array(select f.id from fair f))
             and (t.next_retry_at is null or t.next_retry_at <= at or t.id = any (orphans))
             for update of t skip locked
        ), free as (
          -- ... and so are rows a live worker session claims (its Stripe request in flight).
          select l.* from locked l
           where not marketplace.seller_transfer_claimed(l.id)
        ), leased as (
          update marketplace.seller_transfers t
             set next_retry_at = lease_until
           where t.id = any (array(select l.id from free l))
          returning t.id, t.status
        )
        select array_agg(row(s.worker_task, json_build_object('id', l.id, 'lease', lease_until), null, null, 5,
                             marketplace.seller_transfer_job_key(l.id), null, null)::graphile_worker.job_spec),
               -- Lag from what the rows carried (no history read on this path): a fresh reversal's
               -- due time is in its history only, so it counts in seller_transfer_due_counts() instead.
               -- A time that is not finite (planted past the guard) is left out, never an error.
               (select extract(epoch from at - min(x.since) filter (where isfinite(x.since)))
                  from (select case when k.status = 'pending' then coalesce(k.next_retry_at, k.created_at)
                                    when k.next_retry_at > at then null else k.next_retry_at end as since from free k) x)
          into specs, lag
          from leased l
          join marketplace.seller_transfer_statuses s on s.status = l.status;
        if specs is null then
          raise exception using errcode = 'STX01', message = 'nothing handed out this round';
        end if;
        -- add_jobs clears the key of a job that is locked (already running, or locked by a worker
        -- that died) and adds a new one; a job locked between those two steps is skipped
        -- (graphile-worker #580): that row keeps its lease and is handed out again when it runs out.
        select count(*) into added from graphile_worker.add_jobs(specs);
        -- Return at once: the jobs become visible (and graphile-worker is notified) at commit.
        return query select added, lag;
        return;
        exception when sqlstate 'STX01' then
          null;  -- nothing handed out: this round's row locks are gone with its subtransaction
        end;
      end if;
    end if;
    exit when clock_timestamp() + make_interval(secs => pause) > deadline;
    slept := pg_sleep(pause)::text;  -- an assignment, not PERFORM: no executor start per round
  end loop;
  return query select 0, null::double precision;
end $function$;
comment on function marketplace.dispatch_seller_transfers(integer,double precision,integer,integer) is 'Hands due seller transfers to graphile-worker (at most max_jobs waiting jobs), leasing each row for lease_seconds; with nothing due, polls every poll_ms for up to wait_ms first. Returns how many, and how long the longest-waiting of them had been due (null when unknown).';
grant EXECUTE on function marketplace.dispatch_seller_transfers(integer,double precision,integer,integer) to marketplace_worker;
revoke execute on function marketplace.dispatch_seller_transfers(integer,double precision,integer,integer) from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_audit(since timestamp with time zone DEFAULT (now() - '1 day'::interval))
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with st as (select * from marketplace.seller_transfer_audit_state s where s.singleton),
  unacked as (
    -- Capped: doctor never counts more than 10,001 findings.
    select a.transfer_id, a.problem from marketplace.seller_transfer_audit_findings a where a.acknowledged_at is null limit 10001
  ), o as (
    select count(*) as n, count(distinct transfer_id) as transfers, string_agg(distinct problem, ', ') as problems from unacked
  )
  select 'audit findings (incremental audit)',
         case when o.n > 0 then 'problem'
              when st.finished_at is null or st.finished_at < since then 'warn'
              else 'ok' end,
         concat_ws('; ',
           case when o.n > 0 then format('%s%s open finding(s) on %s transfer(s): %s', case when o.n > 10000 then 'over ' else '' end,
                                         least(o.n, 10000), o.transfers, o.problems) end,
           case when st.finished_at is null then 'the incremental audit has never run'
                else format('last run %s (%s, %s transfer(s) audited)%s',
                            to_char(st.finished_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
                            case when st.was_full then 'full' else 'incremental' end, st.transfers_audited,
                            case when st.finished_at < since then format(', before %s', to_char(since at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')) else '' end) end,
           case when o.n = 0 and st.finished_at is not null then 'every history it audited leads to its row''s status' end),
         case when o.n > 0 then '`seller-transfers audit --findings` lists them (docs/runbook.md#audit); fix the row or acknowledge the finding'
              when st.finished_at is null or st.finished_at < since then 'run `seller-transfers audit --since-last` every few minutes (docs/operating.md#audit)'
              else '' end
    from st cross join o
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_audit(timestamp with time zone) to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_audit(timestamp with time zone) from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_blockers()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with waiting as (
    -- Worker sessions (dispatch, claims, recording) waiting for a lock, and who holds it. pg_locks
    -- and each session's pid, user and application are visible to every role.
    select distinct w.pid as waiter, b.pid as blocker, l.waitstart
      from pg_catalog.pg_stat_activity w
      join pg_catalog.pg_locks l on l.pid = w.pid and not l.granted
     cross join lateral unnest(pg_catalog.pg_blocking_pids(w.pid)) b(pid)
     where w.datname = current_database() and w.application_name like 'seller-transfers-worker%'
  )
  select 'sessions holding up the worker',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'no worker session is waiting for a lock'
              else string_agg(format('pid %s (user %s, application %s) blocks worker pid %s since %s',
                                     x.blocker, coalesce(a.usename::text, '?'), coalesce(nullif(a.application_name, ''), '?'), x.waiter,
                                     coalesce(to_char(x.waitstart at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), '?')), '; ' order by x.waitstart) end,
         case when count(*) = 0 then '' else 'end the blocking session''s transaction (or SELECT pg_terminate_backend(<pid>) as a superuser) ; see docs/runbook.md' end
    from waiting x
    left join pg_catalog.pg_stat_activity a on a.pid = x.blocker
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_blockers() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_blockers() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_currencies()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with fk as (
    select c.convalidated from pg_constraint c
     where c.conrelid = 'marketplace.seller_transfers'::regclass and c.conname = 'seller_transfer_currency_known'
  ), unknown as (
    select t.currency, count(*) as n, min(t.id::text) as example
      from marketplace.seller_transfers t
     where not coalesce((select f.convalidated from fk f), false)
       and not exists (select 1 from marketplace.currencies c where c.code = t.currency)
     group by t.currency
  )
  select 'currencies of seller transfers',
         case when (select count(*) from unknown) > 0 or not coalesce((select convalidated from fk), false) then 'problem' else 'ok' end,
         case when (select count(*) from fk) = 0 then 'constraint seller_transfer_currency_known is missing'
              when (select count(*) from unknown) > 0
                then format('%s row(s) in a currency marketplace.currencies does not know: %s; constraint seller_transfer_currency_known is %s',
                            (select sum(n) from unknown),
                            (select string_agg(format('%s (%s row(s), e.g. %s)', u.currency, u.n, u.example), ', ' order by u.currency) from unknown u),
                            case when (select convalidated from fk) then 'validated' else 'NOT VALID (new rows are checked, these are not)' end)
              when not (select convalidated from fk) then 'every row''s currency is known, but constraint seller_transfer_currency_known is NOT VALID'
              else 'every row''s currency is in marketplace.currencies (constraint validated)' end,
         case when (select count(*) from fk) = 0 then 'the schema is damaged: restore it from migrations/committed'
              when (select count(*) from unknown) > 0
                then 'stop these payouts (seller-transfers fail <id>) and create them again in a currency Stripe supports, or, if Stripe supports the currency, add it to marketplace.currencies as the owner; then, as the owner: ALTER TABLE marketplace.seller_transfers VALIDATE CONSTRAINT seller_transfer_currency_known'
              when not (select convalidated from fk) then 'as the owner: ALTER TABLE marketplace.seller_transfers VALIDATE CONSTRAINT seller_transfer_currency_known (does not block writers)'
              else '' end
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_currencies() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_currencies() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_definers()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with bad as (
    select format('%s (%s)', p.oid::regprocedure,
                  concat_ws(', ',
                    case when not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%') then 'search_path not pinned' || coalesce(' and its body is not path-free: ' || marketplace.seller_transfer_body_is_path_free(p.prosrc), '') end,
                    case when r.rolsuper then format('owned by superuser %s', r.rolname) end,
                    case when r.rolcanlogin then format('owned by login role %s', r.rolname) end,
                    case when r.rolname not in ('marketplace_definer', 'marketplace_recorder', 'marketplace_admin') then format('owned by %s', r.rolname) end)) as what
      from pg_proc p join pg_roles r on r.oid = p.proowner
     where p.pronamespace = 'marketplace'::regnamespace and p.prosecdef
       and (r.rolsuper or r.rolcanlogin or r.rolname not in ('marketplace_definer', 'marketplace_recorder', 'marketplace_admin')
            or (not exists (select 1 from unnest(coalesce(p.proconfig, '{}')) c where c like 'search_path=%')
                and marketplace.seller_transfer_body_is_path_free(p.prosrc) is not null))
  )
  select 'SECURITY DEFINER functions',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'owned by marketplace_definer, _recorder or _admin (NOLOGIN, not superusers), search_path pinned or nothing in the body resolved through it'
              else string_agg(b.what, '; ') end,
         case when count(*) = 0 then '' else 'as the owner: ALTER FUNCTION ... SET search_path = pg_catalog, pg_temp; ALTER FUNCTION ... OWNER TO marketplace_definer (README "Roles")' end
    from bad b
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_definers() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_definers() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_dispatch(max_due interval DEFAULT '00:05:00'::interval)
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select 'due rows dispatched',
         case when count(*) filter (where late) = 0 then 'ok' else 'problem' end,
         case when count(*) filter (where late) = 0
                then format('%s row(s) due now, none due for longer than %s', coalesce(sum(d.due_now), 0), max_due)
              else format('due rows are not being dispatched: is a worker running? %s',
                          string_agg(format('%s: %s due, oldest for %s', d.status, d.due_now,
                                            date_trunc('second', make_interval(secs => d.oldest_due_seconds))), '; ' order by d.ord) filter (where late)) end,
         case when count(*) filter (where late) = 0 then ''
              else 'start `seller-transfers worker` (its dispatcher hands due rows to graphile-worker); if one runs, see its logs and /readyz' end
    from (select c.*, row_number() over () as ord, c.oldest_due_seconds > extract(epoch from max_due) as late
            from marketplace.seller_transfer_due_counts() c) d
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_dispatch(interval) to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_dispatch(interval) from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_funds()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select 'payouts waiting for the platform''s balance',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'none'
              else format('%s payout(s) refused by Stripe for the platform''s available balance (balance_insufficient): %s; most attempts so far %s',
                          count(*), (select string_agg(format('%s payout(s), %s', x.n, marketplace.seller_transfer_amount_text(x.total, x.currency)), '; ')
                                       from (select w.currency, count(*) as n, sum(w.amount_cents)::bigint as total
                                               from marketplace.seller_transfers_waiting_for_funds w group by w.currency order by 1) x),
                          max(w.retry_count)) end,
         case when count(*) = 0 then ''
              else 'top the platform''s Stripe balance up, then retry them (docs/runbook.md#sellertransferswaitingforfunds); services should pass source_transaction' end
    from marketplace.seller_transfers_waiting_for_funds w
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_funds() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_funds() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_guard_drift()
 RETURNS TABLE(from_status text, to_status text, in_table boolean)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  -- The compiled matrix as the owner sees it (the owner may make every legal move) against the table.
  select f.status, t.status, marketplace.can_transition_transfer_status(f.status, t.status)
    from marketplace.seller_transfer_statuses f
   cross join marketplace.seller_transfer_statuses t
   where f.status <> t.status
     and marketplace.can_transition_transfer_status(f.status, t.status)
         <> coalesce(marketplace.seller_transfer_move_owned(f.status, t.status, 'owner'), false)
   order by f.position, t.position
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_guard_drift() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_guard_drift() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_guard_sync()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  guards_on boolean;
  drift     text;
begin
  check_name := 'guard compiled from the transitions table';
  select count(*) = (select count(*) from marketplace.seller_transfer_guard_triggers()) into guards_on
    from pg_trigger tg
   where tg.tgrelid = 'marketplace.seller_transfers'::regclass
     and tg.tgname in (select g.tgname from marketplace.seller_transfer_guard_triggers() g)
     and tg.tgenabled in ('O', 'A');
  if not guards_on then
    status := 'warn';
    detail := 'not checked while a guard trigger is missing or disabled (see the trigger checks)';
    fix := '';
  elsif marketplace.seller_transfer_guard_in_sync() then
    status := 'ok';
    detail := 'the guard matches seller_transfer_transitions';
    fix := '';
  else
    select string_agg(format('%s -> %s (%s)', d.from_status, d.to_status,
                             case when d.in_table then 'in the table, refused by the guard' else 'allowed by the guard, not in the table' end), '; ')
      into drift
      from marketplace.doctor_seller_transfer_guard_drift() d;
    status := 'problem';
    detail := 'the guard was not compiled from the current seller_transfer_transitions'
              || coalesce(': ' || drift, ' (its initial statuses or move owners differ)');
    fix := 'as the owner: ALTER TABLE marketplace.seller_transfer_transitions ENABLE TRIGGER seller_transfer_transitions_changed; SELECT marketplace.compile_seller_transfer_guards(); then `seller-transfers audit`';
  end if;
  return next;
end $function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_guard_sync() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_guard_sync() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_held()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select 'rows held for review (Stripe differs)',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'none'
              else format('%s row(s) where Stripe holds something that differs from the row; e.g. %s: %s', count(*),
                          (array_agg(h.id order by h.updated_at))[1], left((array_agg(h.last_error order by h.updated_at))[1], 300)) end,
         case when count(*) = 0 then '' else 'a write past the guard changed these rows: see docs/runbook.md#transfersheldforreview (`seller-transfers audit` names the change)' end
    from (select v.id, v.updated_at, v.last_error from marketplace.seller_transfers_held_for_review v where v.status = 'failed'
          union all
          select v.id, v.updated_at, v.last_error from marketplace.seller_transfers_held_for_review v where v.status = 'reversal_pending') h
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_held() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_held() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_indexes()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select format('index %s', x.idx),
         case when i.indexrelid is not null and i.indisvalid and i.indisready then 'ok' else 'problem' end,
         case when i.indexrelid is null then 'missing (the dispatcher and the worker scan the whole table)'
              when not (i.indisvalid and i.indisready) then 'invalid (a failed CREATE INDEX CONCURRENTLY?)'
              else 'present and valid' end,
         case when i.indexrelid is null then 'recreate it as in migrations/committed/000001-foundation.sql (CREATE INDEX CONCURRENTLY …)'
              when not (i.indisvalid and i.indisready) then format('REINDEX INDEX CONCURRENTLY marketplace.%I', x.idx)
              else '' end
    from (values ('seller_transfers_reversal_due_idx', 1), ('seller_transfers_retry_due_idx', 2), ('seller_transfers_pending_idx', 3)) x(idx, ord)
    left join pg_index i on i.indexrelid = to_regclass('marketplace.' || x.idx)
   order by x.ord
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_indexes() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_indexes() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_jobs(max_locked interval DEFAULT '00:10:00'::interval)
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  n bigint;
  oldest timestamptz;
  ids text;
  latest text;
begin
  check_name := 'graphile_worker schema';
  if to_regclass('graphile_worker._private_jobs') is null then
    status := 'problem'; detail := 'missing (the worker''s dispatcher hands due rows to it)'; fix := 'run `seller-transfers migrate`';
    return next;
    return;
  end if;
  status := 'ok'; detail := 'present'; fix := '';
  return next;

  check_name := 'jobs locked too long';
  execute 'select count(*), min(locked_at) from graphile_worker._private_jobs where locked_at < now() - $1'
     into n, oldest using max_locked;
  status := case when n = 0 then 'ok' else 'problem' end;
  detail := case when n = 0 then format('no job locked longer than %s', max_locked)
                 else format('%s job(s) locked longer than %s (oldest since %s)', n, max_locked, oldest) end;
  fix := case when n = 0 then ''
              else 'a worker died or hangs: check the heartbeats (workers seen recently) and the worker logs; graphile-worker frees locks after 4 h, and the rows are dispatched again when their lease runs out' end;
  return next;

  check_name := 'jobs that used up their attempts';
  execute $q$
    select count(*), string_agg(j.id::text, ', ' order by j.id),
           (array_agg(format('transfer %s (%s): %s', j.payload ->> 'id', t.identifier, coalesce(j.last_error, 'no error recorded'))
                      order by j.updated_at desc))[1]
      from graphile_worker._private_jobs j
      join graphile_worker._private_tasks t on t.id = j.task_id
      join marketplace.seller_transfer_statuses s on s.worker_task = t.identifier
     where j.attempts >= j.max_attempts and j.locked_at is null$q$
     into n, ids, latest;
  status := case when n = 0 then 'ok' else 'warn' end;
  detail := case when n = 0 then 'none'
                 else format('%s job(s) of the seller transfer tasks failed every attempt and will not run again; latest: %s', n, latest) end;
  fix := case when n = 0 then ''
              else format('read the error (`seller-transfers show <id>`); rows still due get a new job when their lease runs out; then remove these: SELECT graphile_worker.complete_jobs(ARRAY[%s])', ids) end;
  return next;
end $function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_jobs(interval) to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_jobs(interval) from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_roles()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with roles(role, ord) as (values ('marketplace_writer', 1), ('marketplace_worker', 2), ('marketplace_reader', 3), ('marketplace_operator', 4),
                                  ('marketplace_definer', 5), ('marketplace_recorder', 6), ('marketplace_admin', 7)),
  found as (
    select r.role, r.ord, exists (select 1 from pg_roles p where p.rolname = r.role) as present from roles r
  ), wrong as (
    select f.role, array_remove(array[
      case when not has_schema_privilege(f.role, 'marketplace', 'usage') then 'missing USAGE on schema marketplace' end,
      case when not has_table_privilege(f.role, 'marketplace.seller_transfers', 'select') then 'missing SELECT on seller_transfers' end,
      case when f.role not in ('marketplace_recorder', 'marketplace_admin') and not has_table_privilege(f.role, 'marketplace.seller_transfer_events', 'select') then 'missing SELECT on seller_transfer_events' end,
      case when f.role = 'marketplace_writer' and not (has_column_privilege(f.role, 'marketplace.seller_transfers', 'amount_cents', 'insert')
                and has_column_privilege(f.role, 'marketplace.seller_transfers', 'status', 'update')) then 'missing INSERT/UPDATE on seller_transfers' end,
      case when f.role = 'marketplace_worker' and not has_column_privilege(f.role, 'marketplace.seller_transfers', 'status', 'update') then 'missing UPDATE of status on seller_transfers' end,
      case when f.role = 'marketplace_writer' and has_column_privilege(f.role, 'marketplace.seller_transfers', 'stripe_transfer_id', 'update') then 'may write the worker''s columns (Stripe ids) of seller_transfers' end,
      case when f.role in ('marketplace_writer', 'marketplace_worker')
                and (select bool_or(has_column_privilege(f.role, 'marketplace.seller_transfers', c, 'insert'))
                       from unnest(array['stripe_transfer_id', 'stripe_reversal_id', 'stripe_key_generation', 'stripe_request_in_doubt', 'retry_count', 'last_error', 'reversal_amount_cents']) c)
           then 'may INSERT the worker''s columns (Stripe ids, key generation, in-doubt flag) of seller_transfers' end,
      case when f.role = 'marketplace_worker' and has_table_privilege(f.role, 'marketplace.seller_transfers', 'insert') then 'may create payouts (INSERT on seller_transfers)' end,
      case when f.role = 'marketplace_worker' and has_column_privilege(f.role, 'marketplace.seller_transfers', 'stripe_request_in_doubt', 'update') then 'may write the Stripe columns outside its recording functions' end,
      case when f.role in ('marketplace_definer', 'marketplace_recorder', 'marketplace_admin')
                and (select r.rolsuper or r.rolcanlogin or r.rolbypassrls from pg_roles r where r.rolname = f.role) then 'must be NOLOGIN, not a superuser, not BYPASSRLS (owns SECURITY DEFINER functions)' end,
      case when f.role in ('marketplace_reader', 'marketplace_operator') and has_table_privilege(f.role, 'marketplace.seller_transfers', 'insert, update, delete, truncate') then 'may modify seller_transfers (read-only role)' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfers', 'delete, truncate, trigger') then 'may delete, truncate or add triggers on seller_transfers' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfer_statuses', 'insert, update, delete, truncate, trigger') then 'may modify seller_transfer_statuses' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfer_transitions', 'insert, update, delete, truncate, trigger') then 'may modify seller_transfer_transitions' end,
      case when has_table_privilege(f.role, 'marketplace.seller_transfer_events', case when f.role = 'marketplace_definer' then 'update, delete, truncate, trigger' else 'insert, update, delete, truncate, trigger' end) then 'may modify seller_transfer_events (the history)' end,
      case when f.role = 'marketplace_worker' and not has_schema_privilege(f.role, 'graphile_worker', 'usage') then 'missing USAGE on schema graphile_worker' end,
      case when f.role = 'marketplace_worker' and not has_function_privilege(f.role, 'marketplace.record_seller_transfer_worker_heartbeat(text, text, integer, timestamptz, boolean)', 'execute') then 'missing EXECUTE on record_seller_transfer_worker_heartbeat' end,
      case when f.role = 'marketplace_reader' and not has_function_privilege(f.role, 'marketplace.audit_seller_transfers(timestamptz)', 'execute') then 'missing EXECUTE on audit_seller_transfers' end,
      case when f.role = 'marketplace_operator' and not has_function_privilege(f.role, 'marketplace.fail_seller_transfer(uuid, text)', 'execute') then 'missing EXECUTE on the admin actions' end
    ], null) as issues
      from found f where f.present and to_regnamespace('graphile_worker') is not null
  )
  select format('role %s', f.role),
         case when not f.present or cardinality(coalesce(w.issues, '{}')) > 0 then 'problem' else 'ok' end,
         case when not f.present then 'missing'
              when cardinality(coalesce(w.issues, '{}')) > 0 then array_to_string(w.issues, '; ')
              else 'exists with the documented grants' end,
         case when not f.present then 'run `seller-transfers migrate` (000001, 000010 and 000017 create the roles), or CREATE ROLE ' || f.role || ' NOLOGIN and migrate'
              when cardinality(coalesce(w.issues, '{}')) > 0 then 're-apply the grants of migrations/committed (README "Roles"); REVOKE what is listed as "may modify"'
              else '' end
    from found f left join wrong w on w.role = f.role
   order by f.ord
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_roles() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_roles() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_slos()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select 'rows past their status SLO',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'none'
              else format('%s%s row(s): %s', case when count(*) > 10000 then 'over ' else '' end, least(count(*), 10000),
                          string_agg(distinct p.status, ', ')) end,
         case when count(*) = 0 then '' else '`seller-transfers stats` lists them; `seller-transfers show <id>` says why; see docs/runbook.md' end
    from (select t.status
            from marketplace.seller_transfer_status_slos slo
            join marketplace.seller_transfer_statuses s on s.status = slo.status and not s.is_terminal
           cross join lateral (select t.id, t.status, t.created_at from marketplace.seller_transfers t
                                where t.status = slo.status and t.created_at < now() - make_interval(secs => slo.max_seconds)
                               offset 0) t
           where coalesce(marketplace.seller_transfer_status_since(t.id), t.created_at) < now() - make_interval(secs => slo.max_seconds)
           limit 10001) p
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_slos() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_slos() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_times()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  -- Bounded: index probes per status at the two ends of created_at (status_created_idx) and of the
  -- worker statuses' next_retry_at (the partial indexes); a valid constraint makes them all empty.
  with odd as (
    select x.id, x.col, x.v
      from marketplace.seller_transfer_statuses s
     cross join lateral (
       (select t.id, 'created_at' as col, t.created_at as v from marketplace.seller_transfers t
         where t.status = s.status and t.created_at < '2000-01-01 00:00:00+00' order by t.created_at limit 5)
       union all
       (select t.id, 'created_at', t.created_at from marketplace.seller_transfers t
         where t.status = s.status and t.created_at >= '2200-01-01 00:00:00+00' order by t.created_at desc limit 5)) x
    union all
    (select t.id, 'next_retry_at', t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'pending' and (t.next_retry_at < '2000-01-01 00:00:00+00' or t.next_retry_at >= '2200-01-01 00:00:00+00') limit 5)
    union all
    (select t.id, 'next_retry_at', t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'failed' and (t.next_retry_at < '2000-01-01 00:00:00+00'
                                     or t.next_retry_at >= '2200-01-01 00:00:00+00' and not t.stripe_request_in_doubt) limit 5)
    union all
    (select t.id, 'next_retry_at', t.next_retry_at from marketplace.seller_transfers t
      where t.status = 'reversal_pending' and (t.next_retry_at < '2000-01-01 00:00:00+00'
                                               or t.next_retry_at >= '2200-01-01 00:00:00+00' and not t.stripe_request_in_doubt) limit 5)
  )
  select 'times of seller transfers',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'every created_at and due time is finite and plausible'
              else format('%s row(s) with an implausible time: %s', count(*),
                          string_agg(format('%s %s = %s', o.id, o.col, o.v), '; ' order by o.id)) end,
         case when count(*) = 0 then ''
              else 'a write past the guard (replica mode, a disabled trigger) planted these; dispatch and metrics skip the time, not the row. As the owner: set session_replication_role = replica only to repair the column, then run `seller-transfers audit`' end
    from odd o
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_times() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_times() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_triggers()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select format('trigger %s', x.tgname),
         case when t.oid is null then 'problem' when t.tgenabled in ('O', 'A') then 'ok' else 'problem' end,
         case when t.oid is null then format('missing on %s', x.rel)
              when t.tgenabled in ('O', 'A') then format('enabled on %s', x.rel)
              else format('disabled on %s (tgenabled = %s)', x.rel, t.tgenabled) end,
         case when t.oid is null and x.rel = 'marketplace.seller_transfers' and x.tgname = 'seller_transfer_write_once'
                then 'as the owner: SELECT marketplace.compile_seller_transfer_guards(); then run `seller-transfers audit`'
              when t.oid is null then 'the schema is damaged: restore the trigger from migrations/committed (or roll back and migrate again)'
              when t.tgenabled in ('O', 'A') then ''
              else format('as the owner: ALTER TABLE %s ENABLE TRIGGER %s; then run `seller-transfers audit` for writes made meanwhile', x.rel, x.tgname) end
    from (select 'marketplace.seller_transfers' as rel, g.tgname, g.ord from marketplace.seller_transfer_guard_triggers() g
          union all
          values ('marketplace.seller_transfers', 'seller_transfer_kept', 9),
                 ('marketplace.seller_transfers', 'seller_transfer_kept_on_truncate', 10),
                 ('marketplace.seller_transfer_statuses', 'seller_transfer_statuses_changed', 11),
                 ('marketplace.seller_transfer_transitions', 'seller_transfer_transitions_changed', 12),
                 ('marketplace.seller_transfer_move_owners', 'seller_transfer_move_owners_changed', 13)) x(rel, tgname, ord)
    left join pg_trigger t on t.tgrelid = to_regclass(x.rel) and t.tgname = x.tgname and not t.tgisinternal
   order by x.ord
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_triggers() to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_triggers() from public;

CREATE OR REPLACE FUNCTION marketplace.doctor_seller_transfer_workers(max_age interval DEFAULT '00:02:00'::interval)
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select 'workers seen recently',
         case when h.total = 0 then 'warn' when h.recent > 0 then 'ok' else 'problem' end,
         case when h.total = 0 then 'no worker has ever reported a heartbeat to this database'
              when h.recent > 0 then format('%s worker(s) reported within %s', h.recent, max_age)
              else format('no worker reported within %s (last seen %s)', max_age, h.last_seen) end,
         case when h.recent > 0 then '' else 'start `seller-transfers worker` (or find why it stopped: its logs, `/readyz`)' end
    from (select count(*) as total,
                 count(*) filter (where w.last_seen_at >= now() - max_age and w.stopped_at is null) as recent,
                 max(w.last_seen_at) as last_seen
            from marketplace.seller_transfer_worker_heartbeats w) h
$function$;
grant EXECUTE on function marketplace.doctor_seller_transfer_workers(interval) to marketplace_definer;
revoke execute on function marketplace.doctor_seller_transfer_workers(interval) from public;

CREATE OR REPLACE FUNCTION marketplace.fail_seller_transfer(id uuid, reason text)
 RETURNS marketplace.seller_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "marketplace.speaker" TO 'admin'
AS $function$
declare
  t marketplace.seller_transfers;
  job record;
begin
  begin
    t := marketplace.lock_seller_transfer_for_admin(id, reason);
  exception when lock_not_available then
    raise exception 'seller transfer % is not given up: the worker is processing it right now', fail_seller_transfer.id
      using errcode = 'lock_not_available',
            hint = 'Its Stripe request is in flight: the outcome will be known after the worker''s attempt; act then.';
  end;
  if t.status = 'permanently_failed' then
    -- Same-state is legal, but would overwrite the error that made it give up.
    raise exception 'seller transfer % is already permanently_failed (last_error: %)', t.id, coalesce(left(regexp_replace(t.last_error, '\s+', ' ', 'g'), 200), 'none')
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  -- The matrix decides first (pending goes through failed).
  if t.status = 'pending' then
    perform marketplace.assert_seller_transfer_transition(t.id, 'pending', 'failed');
    perform marketplace.assert_seller_transfer_transition(t.id, 'failed', 'permanently_failed');
  else
    perform marketplace.assert_seller_transfer_transition(t.id, t.status, 'permanently_failed');
  end if;
  -- Then who asks: a service cancels a payout before it is paid (no Stripe transfer), nothing else.
  if current_setting('marketplace.caller_authority', true) is distinct from 'operator' and t.stripe_transfer_id is not null then
    raise exception 'seller transfer move % -> permanently_failed belongs to the operator; a service may cancel only a payout not yet paid', t.status
      using errcode = 'insufficient_privilege',
            constraint = 'seller_transfer_move_owner',
            schema = 'marketplace', table = 'seller_transfers', column = 'status',
            detail = marketplace.seller_transfer_refusal_detail(t.id, t.status, 'permanently_failed',
                       format('seller transfer %s: %s -> permanently_failed is legal, but not a service''s to make', t.id, t.status),
                       coalesce(nullif(current_setting('marketplace.caller_authority', true), ''), 'service')),
            hint = 'Ask an operator (seller-transfers fail <id>); see SELECT * FROM marketplace.seller_transfer_transition_owners';
  end if;
  if t.stripe_request_in_doubt then
    raise exception 'seller transfer % is not given up: stripe_request_in_doubt (its last Stripe request got no answer, so Stripe may have %)',
        t.id, case when t.status = 'reversal_pending' then 'reversed it' else 'paid it' end
      using errcode = 'object_not_in_prerequisite_state',
            detail = format('last_error: %s', coalesce(left(regexp_replace(t.last_error, '\s+', ' ', 'g'), 300), 'none')),
            hint = case when t.next_retry_at = 'infinity'
                        then 'Stripe holds an object that differs from this row: see docs/runbook.md#transfersheldforreview'
                        else 'The outcome will be known after the worker''s next attempt, which looks the request up in Stripe first; act then.' end;
  end if;
  select j.job_id, j.lease, j.locked_at, j.attempts into job
    from marketplace.seller_transfer_jobs(t.id) j
   where j.locked_at is not null or j.lease = t.next_retry_at or j.attempts > 0
   order by j.created_at desc limit 1;
  if found then
    raise exception 'seller transfer % is not given up: it is handed to the worker (job %, %)', t.id, job.job_id,
        case when job.locked_at is not null then format('running since %s', job.locked_at)
             when job.lease = t.next_retry_at then format('leased until %s', job.lease)
             else format('%s attempt(s) so far', job.attempts) end
      using errcode = 'object_not_in_prerequisite_state',
            hint = 'Its Stripe request may be in flight: the outcome will be known after the worker''s attempt; act then.';
  end if;
  if t.status = 'pending' then
    update marketplace.seller_transfers s
       set status = 'failed', next_retry_at = now(), last_error = btrim(reason), updated_at = now()
     where s.id = t.id;
  end if;
  update marketplace.seller_transfers s
     set status = 'permanently_failed', next_retry_at = null, last_error = btrim(reason), updated_at = now()
   where s.id = t.id
  returning s.* into t;
  return t;
end $function$;
comment on function marketplace.fail_seller_transfer(uuid,text) is 'Gives a seller transfer up (-> permanently_failed; pending through failed) with the reason as last_error; refused while the worker holds it, a job has it, or its last Stripe request is in doubt.';
grant EXECUTE on function marketplace.fail_seller_transfer(uuid,text) to marketplace_operator;
grant EXECUTE on function marketplace.fail_seller_transfer(uuid,text) to marketplace_writer;
revoke execute on function marketplace.fail_seller_transfer(uuid,text) from public;

CREATE OR REPLACE FUNCTION marketplace.first_write_once_violation(old marketplace.seller_transfers, new marketplace.seller_transfers)
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ select CASE WHEN old.id IS DISTINCT FROM new.id THEN 'id' WHEN old.order_id IS DISTINCT FROM new.order_id THEN 'order_id' WHEN old.seller_id IS DISTINCT FROM new.seller_id THEN 'seller_id' WHEN old.stripe_account_id IS DISTINCT FROM new.stripe_account_id THEN 'stripe_account_id' WHEN old.amount_cents IS DISTINCT FROM new.amount_cents THEN 'amount_cents' WHEN old.currency IS DISTINCT FROM new.currency THEN 'currency' WHEN old.source_transaction IS DISTINCT FROM new.source_transaction THEN 'source_transaction' WHEN old.created_at IS DISTINCT FROM new.created_at THEN 'created_at' WHEN old.stripe_transfer_id IS NOT NULL AND new.stripe_transfer_id IS DISTINCT FROM old.stripe_transfer_id THEN 'stripe_transfer_id' WHEN old.stripe_reversal_id IS NOT NULL AND new.stripe_reversal_id IS DISTINCT FROM old.stripe_reversal_id THEN 'stripe_reversal_id' WHEN old.reversal_amount_cents IS DISTINCT FROM new.reversal_amount_cents AND NOT (new.status = 'reversal_pending' AND old.status IS DISTINCT FROM 'reversal_pending') THEN 'reversal_amount_cents' WHEN old.stripe_key_generation IS DISTINCT FROM new.stripe_key_generation AND current_user <> 'marketplace_recorder' THEN 'stripe_key_generation' END $function$;
comment on function marketplace.first_write_once_violation(marketplace.seller_transfers,marketplace.seller_transfers) is 'The first write-once column an update from old to new would change (null: none).';
grant EXECUTE on function marketplace.first_write_once_violation(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_admin;
grant EXECUTE on function marketplace.first_write_once_violation(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_definer;
grant EXECUTE on function marketplace.first_write_once_violation(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_operator;
grant EXECUTE on function marketplace.first_write_once_violation(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_reader;
grant EXECUTE on function marketplace.first_write_once_violation(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_recorder;
grant EXECUTE on function marketplace.first_write_once_violation(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_worker;
grant EXECUTE on function marketplace.first_write_once_violation(marketplace.seller_transfers,marketplace.seller_transfers) to marketplace_writer;
grant EXECUTE on function marketplace.first_write_once_violation(marketplace.seller_transfers,marketplace.seller_transfers) to public;

CREATE OR REPLACE FUNCTION marketplace.hand_back_paused_seller_transfer(id uuid, from_status text)
 RETURNS text
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "marketplace.speaker" TO 'recorder'
AS $function$
  update marketplace.seller_transfers t
     set next_retry_at = now()
   where t.id = $1 and t.status = $2 and t.status in ('pending', 'failed', 'reversal_pending')
  returning t.status
$function$;
comment on function marketplace.hand_back_paused_seller_transfer(uuid,text) is 'Worker: the fleet is paused (seller_transfers_paused), so no Stripe call was made: the row is due again now, with nothing else changed (not a failed attempt). Dispatch hands it out once resumed.';
grant EXECUTE on function marketplace.hand_back_paused_seller_transfer(uuid,text) to marketplace_worker;
revoke execute on function marketplace.hand_back_paused_seller_transfer(uuid,text) from public;

CREATE OR REPLACE FUNCTION marketplace.hold_seller_transfer_for_review(id uuid, from_status text, error text, reason text)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "marketplace.speaker" TO 'recorder'
AS $function$
declare
  result text;
begin
  perform set_config('marketplace.transition_reason', reason, true);
  update marketplace.seller_transfers t
     set status = case when t.status = 'pending' then 'failed' else t.status end,
         retry_count = t.retry_count + 1,
         next_retry_at = 'infinity',
         last_error = left(error, 2000),
         stripe_request_in_doubt = true,
         updated_at = now()
   where t.id = hold_seller_transfer_for_review.id and t.status = from_status
     and t.status in ('pending', 'failed', 'reversal_pending')
  returning t.status into result;
  return result;
end $function$;
comment on function marketplace.hold_seller_transfer_for_review(uuid,text,text,text) is 'Worker: Stripe holds an object for this row that differs from it. Keeps the row out of the terminal statuses, in doubt, never due (next_retry_at = infinity), with what Stripe holds in last_error.';
grant EXECUTE on function marketplace.hold_seller_transfer_for_review(uuid,text,text,text) to marketplace_worker;
revoke execute on function marketplace.hold_seller_transfer_for_review(uuid,text,text,text) from public;

CREATE OR REPLACE FUNCTION marketplace.lock_seller_transfer_for_admin(id uuid, reason text)
 RETURNS marketplace.seller_transfers
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  t marketplace.seller_transfers;
  caller text := coalesce(nullif(current_setting('role'), 'none'), session_user);
begin
  if reason is null or btrim(reason) = '' then
    raise exception 'a reason is required: say why (it is recorded in the history)'
      using errcode = 'invalid_parameter_value';
  end if;
  if length(reason) > 500 then
    raise exception 'a reason is at most 500 characters (got %)', length(reason)
      using errcode = 'string_data_right_truncation';
  end if;
  select * into t from marketplace.seller_transfers s where s.id = lock_seller_transfer_for_admin.id for update;
  if not found then
    raise exception 'seller transfer % not found', lock_seller_transfer_for_admin.id using errcode = 'no_data_found';
  end if;
  -- A live worker claim: its Stripe request is in flight; acting now could contradict what Stripe
  -- is about to do, so refuse instead of waiting.
  if marketplace.seller_transfer_claimed(t.id) then
    raise exception 'seller transfer % is being processed by the worker right now; try again in a moment', t.id
      using errcode = 'lock_not_available';
  end if;
  perform set_config('marketplace.transition_reason', btrim(reason), true);
  -- Who is asking, as the database knows it: an operator (or the owner), or a service.
  perform set_config('marketplace.caller_authority',
                     case when pg_has_role(caller, 'marketplace_operator', 'MEMBER')
                            or marketplace.seller_transfer_authority(caller::name) = 'owner' then 'operator'
                          else coalesce(marketplace.seller_transfer_authority(caller::name), 'none') end, true);
  return t;
end $function$;
grant EXECUTE on function marketplace.lock_seller_transfer_for_admin(uuid,text) to marketplace_admin;
grant EXECUTE on function marketplace.lock_seller_transfer_for_admin(uuid,text) to marketplace_definer;
revoke execute on function marketplace.lock_seller_transfer_for_admin(uuid,text) from public;

CREATE OR REPLACE FUNCTION marketplace.mark_seller_transfer_paid(id uuid, stripe_transfer_id text, reason text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "marketplace.speaker" TO 'recorder'
AS $function$
begin
  perform set_config('marketplace.transition_reason', reason, true);
  update marketplace.seller_transfers t
     set status = 'completed', stripe_transfer_id = $2, retry_count = 0, next_retry_at = null,
         last_error = null, stripe_key_generation = 0, stripe_request_in_doubt = false, updated_at = now()
   where t.id = $1 and t.status in ('pending', 'failed');
  return found;
end $function$;
grant EXECUTE on function marketplace.mark_seller_transfer_paid(uuid,text,text) to marketplace_worker;
revoke execute on function marketplace.mark_seller_transfer_paid(uuid,text,text) from public;

CREATE OR REPLACE FUNCTION marketplace.mark_seller_transfer_reversed(id uuid, stripe_reversal_id text, amount_cents bigint, reason text)
 RETURNS boolean
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "marketplace.speaker" TO 'recorder'
AS $function$
begin
  perform set_config('marketplace.transition_reason', reason, true);
  update marketplace.seller_transfers t
     set status = 'reversed', stripe_reversal_id = $2,
         reversal_amount_cents = case when t.reversal_amount_cents is null and $3 = t.amount_cents then null else $3 end,
         retry_count = 0, next_retry_at = null, last_error = null, stripe_key_generation = 0, stripe_request_in_doubt = false,
         updated_at = now()
   where t.id = $1 and t.status = 'reversal_pending';
  return found;
end $function$;
grant EXECUTE on function marketplace.mark_seller_transfer_reversed(uuid,text,bigint,text) to marketplace_worker;
revoke execute on function marketplace.mark_seller_transfer_reversed(uuid,text,bigint,text) from public;

CREATE OR REPLACE FUNCTION marketplace.note_seller_transfer_adoption_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  -- One id per row written; the adoption copies it again. tg_argv[0]: the legacy table's name.
  insert into marketplace.seller_transfer_adoption_changes (legacy_table, id)
  values (tg_argv[0], case tg_op when 'DELETE' then old.id else new.id end)
  on conflict do nothing;
  return null;
end $function$;
comment on function marketplace.note_seller_transfer_adoption_change() is 'Trigger on a legacy table while seller-transfers adopt run copies it: notes the id of every row written.';
revoke execute on function marketplace.note_seller_transfer_adoption_change() from public;

CREATE OR REPLACE FUNCTION marketplace.pause_seller_transfers(reason text, OUT paused boolean, OUT since timestamp with time zone, OUT actor text, OUT requested_by text, OUT reason_now text, OUT in_flight integer)
 RETURNS record
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select * from marketplace.set_seller_transfer_pause(true, reason)
$function$;
comment on function marketplace.pause_seller_transfers(text) is 'Operator: pauses the fleet (no new Stripe call, dispatch hands nothing out; writers keep inserting, rows wait), recorded in seller_transfer_pause_events with the caller''s role, marketplace.requested_by and the reason (required, at most 500 characters). Refused when already paused. in_flight: Stripe calls that may be running now; they finish and are recorded.';
grant EXECUTE on function marketplace.pause_seller_transfers(text) to marketplace_operator;
revoke execute on function marketplace.pause_seller_transfers(text) from public;

CREATE OR REPLACE FUNCTION marketplace.recompile_seller_transfer_guards()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  perform marketplace.compile_seller_transfer_guards();
  return null;
end $function$;
grant EXECUTE on function marketplace.recompile_seller_transfer_guards() to marketplace_definer;
revoke execute on function marketplace.recompile_seller_transfer_guards() from public;

CREATE OR REPLACE FUNCTION marketplace.record_external_seller_transfer_reversal(id_hint uuid, stripe_transfer_id text, stripe_reversal_id text, amount_cents bigint, reason text)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "marketplace.speaker" TO 'recorder'
AS $function$
declare
  t marketplace.seller_transfers;
  asked bigint;
begin
  select * into t from marketplace.seller_transfers s where s.stripe_transfer_id = $2;
  if not found then
    return 'no_row';
  end if;
  if id_hint is not null and id_hint <> t.id then
    return 'mismatch';
  end if;
  -- A reversed payout reversed again, at Stripe: kept where people look, never ignored.
  if t.status = 'reversed' and t.stripe_reversal_id is distinct from $3 then
    insert into marketplace.seller_transfer_external_reversals (stripe_reversal_id, transfer_id, stripe_transfer_id, amount_cents, reason)
    values ($3, t.id, $2, $4, left(reason, 1000))
    on conflict on constraint seller_transfer_external_reversals_pkey do nothing;
    return 'extra_reversal';
  end if;
  if t.status not in ('completed', 'reversal_pending') then
    return 'unchanged';
  end if;
  -- The row locked, then no live worker claim on it.
  select * into t from marketplace.seller_transfers s where s.id = t.id for update;
  if marketplace.seller_transfer_claimed(t.id) then
    return 'busy';
  end if;
  if t.status not in ('completed', 'reversal_pending') then
    return 'unchanged';
  end if;
  asked := case when $4 = t.amount_cents then null else $4 end;
  if t.status = 'reversal_pending' and t.reversal_amount_cents is distinct from asked then
    return 'amount_differs';
  end if;
  perform set_config('marketplace.transition_reason', reason, true);
  if t.status = 'completed' then
    update marketplace.seller_transfers s set status = 'reversal_pending', reversal_amount_cents = asked, updated_at = now()
     where s.id = t.id and s.status = 'completed';
  end if;
  update marketplace.seller_transfers s
     set status = 'reversed', stripe_reversal_id = $3, retry_count = 0,
         next_retry_at = null, last_error = null, updated_at = now()
   where s.id = t.id and s.status = 'reversal_pending';
  return case when found then 'recorded' else 'unchanged' end;
end $function$;
comment on function marketplace.record_external_seller_transfer_reversal(uuid,text,text,bigint,text) is 'Records a reversal that exists at Stripe but not on the row (webhook transfer.reversed), through legal moves only; amount_differs when the row asks for another amount; extra_reversal (kept in seller_transfer_external_reversals) when a reversed payout was reversed again.';
grant EXECUTE on function marketplace.record_external_seller_transfer_reversal(uuid,text,text,bigint,text) to marketplace_worker;
revoke execute on function marketplace.record_external_seller_transfer_reversal(uuid,text,text,bigint,text) from public;

CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_action(id uuid, action text)
 RETURNS void
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  said text := case current_setting('marketplace.caller_authority', true) when 'service' then 'service' else 'operator' end;
begin
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  requested_by, authority, action)
  select t.id, t.status, t.status, clock_timestamp(), coalesce(nullif(current_setting('role'), 'none'), session_user),
         nullif(current_setting('application_name'), ''), nullif(current_setting('marketplace.transition_reason', true), ''),
         pg_current_xact_id(),
         case when said = 'operator' then left(nullif(current_setting('marketplace.requested_by', true), ''), 200) end,
         said, record_seller_transfer_action.action
    from marketplace.seller_transfers t where t.id = record_seller_transfer_action.id;
end $function$;
comment on function marketplace.record_seller_transfer_action(uuid,text) is 'The admin functions: records an action that moved no status (a retry) in the history, with the caller''s authority, reason and person.';
grant EXECUTE on function marketplace.record_seller_transfer_action(uuid,text) to marketplace_admin;
revoke execute on function marketplace.record_seller_transfer_action(uuid,text) from public;

CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_failure(id uuid, from_status text, error text, retry_at timestamp with time zone, reason text, new_key boolean DEFAULT true, in_doubt boolean DEFAULT false)
 RETURNS text
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "marketplace.speaker" TO 'recorder'
AS $function$
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
  if retry_at is not null and current_status <> 'pending' then
    update marketplace.seller_transfers t
       set retry_count = t.retry_count + 1,
           next_retry_at = retry_at,
           last_error = left(error, 2000),
           stripe_key_generation = t.stripe_key_generation + case when new_key then 1 else 0 end,
           stripe_request_in_doubt = in_doubt,
           updated_at = now()
     where t.id = record_seller_transfer_failure.id and t.status = current_status
    returning t.status into result;
    return result;
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
end $function$;
grant EXECUTE on function marketplace.record_seller_transfer_failure(uuid,text,text,timestamp with time zone,text,boolean,boolean) to marketplace_worker;
revoke execute on function marketplace.record_seller_transfer_failure(uuid,text,text,timestamp with time zone,text,boolean,boolean) from public;

CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_insert()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
AS $function$
-- Generated by marketplace.compile_seller_transfer_guards().
declare
  who pg_catalog.name := case when pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' then session_user else pg_catalog.current_setting('role')::pg_catalog.name end;
  why pg_catalog.text := pg_catalog.current_setting('marketplace.transition_reason', true);
  app pg_catalog.text := pg_catalog.current_setting('application_name');
begin
  if (new.status OPERATOR(pg_catalog.=) ANY ('{completed,reversal_pending,reversed}'::pg_catalog.text[]) and new.stripe_transfer_id is null)
     or (new.status OPERATOR(pg_catalog.=) 'reversed' and new.stripe_reversal_id is null)
     or (new.stripe_reversal_id is not null and new.stripe_transfer_id is null)
     or (new.status OPERATOR(pg_catalog.=) 'failed' and new.next_retry_at is null)
     or (new.status OPERATOR(pg_catalog.=) 'permanently_failed' and new.stripe_request_in_doubt)
     or pg_catalog.length(why) OPERATOR(pg_catalog.>) 1000 then
    perform marketplace.assert_seller_transfer_not_given_up_in_doubt(null, new, null);
    perform marketplace.assert_seller_transfer_couplings(new);
    perform marketplace.assert_seller_transfer_history_text(why, null);
  end if;
  if why OPERATOR(pg_catalog.=) '' then why := null; end if;
  if app OPERATOR(pg_catalog.=) '' then app := null; end if;
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  amount_cents, currency, stripe_account_id, authority, stripe_transfer_id, stripe_reversal_id, source_transaction)
  values (new.id, null, new.status, pg_catalog.clock_timestamp(), who, app, why, pg_catalog.pg_current_xact_id(),
          new.amount_cents, new.currency, new.stripe_account_id, CASE WHEN who OPERATOR(pg_catalog.=) 'marketplace_recorder'::pg_catalog.name THEN 'worker' WHEN who OPERATOR(pg_catalog.=) 'marketplace_admin'::pg_catalog.name THEN 'operator' WHEN pg_catalog.pg_has_role(who, 'postgres', 'USAGE') THEN 'owner' WHEN pg_catalog.pg_has_role(who, 'marketplace_writer', 'USAGE') THEN 'service' WHEN pg_catalog.pg_has_role(who, 'marketplace_worker', 'USAGE') THEN 'worker' END, new.stripe_transfer_id, new.stripe_reversal_id, new.source_transaction);
  return null;
end
$function$;
comment on function marketplace.record_seller_transfer_insert() is 'Checks a new row''s couplings and writes its history row.';
revoke execute on function marketplace.record_seller_transfer_insert() from public;

CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_move()
 RETURNS trigger
 LANGUAGE plpgsql
 SECURITY DEFINER
AS $function$
-- Generated by marketplace.compile_seller_transfer_guards(). Fires after check_seller_transfer_update(),
-- which refused the move unless marketplace.speaker is the statement's.
declare
  speaker  pg_catalog.text;
  who      pg_catalog.name;
  said     pg_catalog.text;
  why      pg_catalog.text;
  asker    pg_catalog.text;
  app      pg_catalog.text;
begin
  if old.status OPERATOR(pg_catalog.=) new.status then
    return null;
  end if;
  who := case when pg_catalog.current_setting('role') OPERATOR(pg_catalog.=) 'none' then session_user else pg_catalog.current_setting('role')::pg_catalog.name end;
  speaker := pg_catalog.current_setting('marketplace.speaker', true);
  if speaker OPERATOR(pg_catalog.=) 'recorder' then
    said := 'worker';
  elsif speaker OPERATOR(pg_catalog.=) 'admin' then
    said := case when coalesce(pg_catalog.current_setting('marketplace.caller_authority', true) OPERATOR(pg_catalog.=) 'service', false)
                 then 'service' else 'operator' end;
    if said OPERATOR(pg_catalog.=) 'operator' then
      asker := pg_catalog.current_setting('marketplace.requested_by', true);
      if asker OPERATOR(pg_catalog.=) '' then asker := null; end if;
    end if;
  else
    said := CASE WHEN who OPERATOR(pg_catalog.=) 'marketplace_recorder'::pg_catalog.name THEN 'worker' WHEN who OPERATOR(pg_catalog.=) 'marketplace_admin'::pg_catalog.name THEN 'operator' WHEN pg_catalog.pg_has_role(who, 'postgres', 'USAGE') THEN 'owner' WHEN pg_catalog.pg_has_role(who, 'marketplace_writer', 'USAGE') THEN 'service' WHEN pg_catalog.pg_has_role(who, 'marketplace_worker', 'USAGE') THEN 'worker' END;
  end if;
  why := pg_catalog.current_setting('marketplace.transition_reason', true);
  if why OPERATOR(pg_catalog.=) '' then why := null; end if;
  app := pg_catalog.current_setting('application_name');
  if app OPERATOR(pg_catalog.=) '' then app := null; end if;
  if pg_catalog.length(why) OPERATOR(pg_catalog.>) 1000 or pg_catalog.length(asker) OPERATOR(pg_catalog.>) 200 then
    perform marketplace.assert_seller_transfer_history_text(why, asker);
  end if;
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  requested_by, authority, stripe_transfer_id, stripe_reversal_id)
  values (new.id, old.status, new.status, pg_catalog.clock_timestamp(), who, app, why, pg_catalog.pg_current_xact_id(),
          asker, said,
          case when old.stripe_transfer_id is null then new.stripe_transfer_id end,
          case when old.stripe_reversal_id is null then new.stripe_reversal_id end);
  return null;
end
$function$;
comment on function marketplace.record_seller_transfer_move() is 'Writes the history row of a status change; who speaks from marketplace.speaker, checked by check_seller_transfer_update() first.';
revoke execute on function marketplace.record_seller_transfer_move() from public;

CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_rate_limited(id uuid, from_status text, error text, retry_at timestamp with time zone)
 RETURNS text
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "marketplace.speaker" TO 'recorder'
AS $function$
  update marketplace.seller_transfers t
     set next_retry_at = $4,
         last_error = left($3, 2000),
         updated_at = now()
   where t.id = $1 and t.status = $2 and t.status in ('pending', 'failed', 'reversal_pending') and $4 is not null
  returning t.status
$function$;
comment on function marketplace.record_seller_transfer_rate_limited(uuid,text,text,timestamp with time zone) is 'Worker: Stripe answered 429 and the request budget kept the call waiting too long: the row is due again at retry_at, with last_error saying so; status, retry_count and the idempotency key are unchanged (not a failed attempt).';
grant EXECUTE on function marketplace.record_seller_transfer_rate_limited(uuid,text,text,timestamp with time zone) to marketplace_worker;
revoke execute on function marketplace.record_seller_transfer_rate_limited(uuid,text,text,timestamp with time zone) from public;

CREATE OR REPLACE FUNCTION marketplace.record_seller_transfer_worker_heartbeat(worker_id text, hostname text, pid integer, started_at timestamp with time zone, stopping boolean DEFAULT false)
 RETURNS timestamp with time zone
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  -- Rows of processes gone for a week are noise: drop them on the way.
  delete from marketplace.seller_transfer_worker_heartbeats h where h.last_seen_at < now() - interval '7 days';
  insert into marketplace.seller_transfer_worker_heartbeats as h (worker_id, hostname, pid, started_at, last_seen_at, stopped_at)
  values ($1, $2, $3, $4, now(), case when $5 then now() end)
  on conflict on constraint seller_transfer_worker_heartbeats_pkey do update
    set last_seen_at = now(), stopped_at = case when $5 then now() end
  returning h.last_seen_at;
$function$;
comment on function marketplace.record_seller_transfer_worker_heartbeat(text,text,integer,timestamp with time zone,boolean) is 'Called by each worker process every few seconds (stopping = true once, when it stops). Returns the recorded time.';
grant EXECUTE on function marketplace.record_seller_transfer_worker_heartbeat(text,text,integer,timestamp with time zone,boolean) to marketplace_worker;
revoke execute on function marketplace.record_seller_transfer_worker_heartbeat(text,text,integer,timestamp with time zone,boolean) from public;

CREATE OR REPLACE FUNCTION marketplace.refresh_seller_transfer_outcome_hours(max_age interval DEFAULT '00:01:00'::interval)
 RETURNS timestamp with time zone
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  w record;
  newest bigint;
  late timestamptz;
  window_start timestamptz := date_bin('1 hour', now(), timestamptz '2000-01-01 00:00:00+00') - interval '23 hours';
  -- The last final hour: ended at least 10 minutes ago.
  last_final timestamptz := date_bin('1 hour', now() - interval '10 minutes', timestamptz '2000-01-01 00:00:00+00') - interval '1 hour';
  first_missing timestamptz;
begin
  select m.through_id, m.refreshed_at into w from marketplace.seller_transfer_outcome_hours_watermark m;
  if w.refreshed_at > now() - max_age then
    return w.refreshed_at;
  end if;
  -- One session of the fleet refreshes; the others keep what is stored.
  select m.through_id, m.refreshed_at into w
    from marketplace.seller_transfer_outcome_hours_watermark m for update skip locked;
  if not found then
    return null;
  end if;
  -- Read before counting: history written during the count is checked again by the next refresh.
  select max(e.id) into newest from marketplace.seller_transfer_events e;
  delete from marketplace.seller_transfer_outcome_hours o where o.hour < window_start;
  if w.refreshed_at >= window_start then
    -- The rows written since the last refresh (the primary key's range): any stamped in a stored
    -- hour make that hour and the later ones be counted again.
    select min(e.occurred_at) into late from marketplace.seller_transfer_events e where e.id > w.through_id;
    if late is not null then
      delete from marketplace.seller_transfer_outcome_hours o
       where o.hour >= date_bin('1 hour', late, timestamptz '2000-01-01 00:00:00+00');
    end if;
  else
    -- Not refreshed within the window: what came late since cannot be told cheaply; count afresh.
    delete from marketplace.seller_transfer_outcome_hours;
  end if;
  select min(h.hour) into first_missing
    from generate_series(window_start, last_final, interval '1 hour') h(hour)
   where not exists (select 1 from marketplace.seller_transfer_outcome_hours o where o.hour = h.hour);
  if first_missing is not null then
    insert into marketplace.seller_transfer_outcome_hours (hour, paid, failed, given_up, counted_at)
    select h.hour, coalesce(c.paid, 0), coalesce(c.failed, 0), coalesce(c.given_up, 0), now()
      from generate_series(first_missing, last_final, interval '1 hour') h(hour)
      left join marketplace.seller_transfer_outcomes_per_hour(first_missing, last_final + interval '1 hour') c on c.hour = h.hour
     where not exists (select 1 from marketplace.seller_transfer_outcome_hours o where o.hour = h.hour);
  end if;
  update marketplace.seller_transfer_outcome_hours_watermark
     set through_id = coalesce(newest, 0), refreshed_at = now();
  return now();
end $function$;
comment on function marketplace.refresh_seller_transfer_outcome_hours(interval) is 'Stores the payouts paid, failed and given up of each closed hour of the last 24 that is final (ended at least 10 minutes ago) and not stored yet, in seller_transfer_outcome_hours, after dropping the hours history was written late into; when the last refresh is older than max_age, by one session at a time. Returns when the table was last refreshed.';
grant EXECUTE on function marketplace.refresh_seller_transfer_outcome_hours(interval) to marketplace_operator;
grant EXECUTE on function marketplace.refresh_seller_transfer_outcome_hours(interval) to marketplace_worker;
revoke execute on function marketplace.refresh_seller_transfer_outcome_hours(interval) from public;

CREATE OR REPLACE FUNCTION marketplace.refresh_seller_transfer_status_counts(max_age interval DEFAULT '00:05:00'::interval)
 RETURNS timestamp with time zone
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  last_counted timestamptz;
begin
  select min(c.counted_at) into last_counted from marketplace.seller_transfer_status_count_snapshots c;
  if last_counted is not null and last_counted > now() - max_age then
    return last_counted;
  end if;
  -- One session of the fleet counts; the others keep the snapshot they have.
  perform 1 from marketplace.seller_transfer_count_refresh_mutex m for update skip locked;
  if not found then
    return last_counted;
  end if;
  insert into marketplace.seller_transfer_status_count_snapshots as c (status, transfers, counted_at)
  select s.status, coalesce(n.transfers, 0), now()
    from marketplace.seller_transfer_statuses s
    left join (select t.status, count(*) as transfers from marketplace.seller_transfers t group by t.status) n on n.status = s.status
  on conflict on constraint seller_transfer_status_count_snapshots_pkey
  do update set transfers = excluded.transfers, counted_at = excluded.counted_at;
  delete from marketplace.seller_transfer_status_count_snapshots c
   where not exists (select 1 from marketplace.seller_transfer_statuses s where s.status = c.status);
  return now();
end $function$;
comment on function marketplace.refresh_seller_transfer_status_counts(interval) is 'Counts the rows of every status into seller_transfer_status_count_snapshots when the snapshot is older than max_age (one session at a time); returns when the snapshot was counted.';
grant EXECUTE on function marketplace.refresh_seller_transfer_status_counts(interval) to marketplace_operator;
grant EXECUTE on function marketplace.refresh_seller_transfer_status_counts(interval) to marketplace_worker;
revoke execute on function marketplace.refresh_seller_transfer_status_counts(interval) from public;

CREATE OR REPLACE FUNCTION marketplace.refuse_deleting_seen_payout()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  if tg_op = 'TRUNCATE' then
    if exists (select 1 from marketplace.seller_transfers t
                where t.status <> 'pending' or t.stripe_transfer_id is not null or t.stripe_request_in_doubt
                   or t.stripe_key_generation > 0 or t.retry_count > 0) then
      raise exception 'seller_transfers is not truncated: it holds payouts Stripe may have seen'
        using errcode = 'check_violation', constraint = 'seller_transfer_kept',
              schema = 'marketplace', table = 'seller_transfers',
              hint = 'A payout Stripe may have seen is kept with its history: stop it (seller-transfers fail <id>) or reverse it instead.';
    end if;
    return null;
  end if;
  if old.status = 'pending' and old.stripe_transfer_id is null and old.stripe_reversal_id is null
     and not old.stripe_request_in_doubt and old.stripe_key_generation = 0 and old.retry_count = 0
     and not marketplace.seller_transfer_claimed(old.id) then
    return null;
  end if;
  raise exception 'seller transfer % is not deleted: Stripe may have seen it (status %)', old.id, old.status
    using errcode = 'check_violation', constraint = 'seller_transfer_kept',
          schema = 'marketplace', table = 'seller_transfers',
          detail = marketplace.seller_transfer_refusal_detail(old.id, old.status, null,
                     format('seller transfer %s: status %s, stripe_transfer_id %s, stripe_reversal_id %s, attempts %s, in doubt %s',
                            old.id, old.status, coalesce(old.stripe_transfer_id, 'none'), coalesce(old.stripe_reversal_id, 'none'),
                            old.retry_count, old.stripe_request_in_doubt)),
          hint = 'Only a pending payout the worker never attempted may be deleted. Stop a payout with seller-transfers fail <id>, or reverse it once paid.';
end $function$;
revoke execute on function marketplace.refuse_deleting_seen_payout() from public;

CREATE OR REPLACE FUNCTION marketplace.refuse_seller_transfer_pause_event_change()
 RETURNS trigger
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  raise exception 'marketplace.seller_transfer_pause_events is append-only (% refused)', tg_op
    using errcode = 'insufficient_privilege';
end $function$;
comment on function marketplace.refuse_seller_transfer_pause_event_change() is 'Trigger: the pause history is append-only.';
revoke execute on function marketplace.refuse_seller_transfer_pause_event_change() from public;

CREATE OR REPLACE FUNCTION marketplace.release_seller_transfer_at_commit(id uuid)
 RETURNS boolean
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with gone as (delete from marketplace.seller_transfer_claims c where c.transfer_id = $1 and c.backend_pid = pg_backend_pid() returning 1)
  select true from (select count(*) from gone) x
$function$;
comment on function marketplace.release_seller_transfer_at_commit(uuid) is 'Worker: gives up this session''s claim on the row when the current transaction commits (with the outcome it records).';
grant EXECUTE on function marketplace.release_seller_transfer_at_commit(uuid) to marketplace_worker;
revoke execute on function marketplace.release_seller_transfer_at_commit(uuid) from public;

CREATE OR REPLACE FUNCTION marketplace.report_stripe_rate_limited(endpoint text, reason text)
 RETURNS TABLE(budget text, current_per_second double precision, decreased boolean, factor double precision)
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;
comment on function marketplace.report_stripe_rate_limited(text,text) is 'Reports a Stripe 429 (endpoint, Stripe-Rate-Limited-Reason) for the fleet: a stray 429 lowers the named budget''s rate by 5 %, 429s that keep coming (less than 1 s apart after the hold-off, or many within it) halve it; it recovers after 2 s without 429s, fast up to 90 % of the rate that drew the 429, slowly above.';
grant EXECUTE on function marketplace.report_stripe_rate_limited(text,text) to marketplace_worker;
revoke execute on function marketplace.report_stripe_rate_limited(text,text) from public;

CREATE OR REPLACE FUNCTION marketplace.reserve_stripe_request_slots(endpoint text, slots integer)
 RETURNS TABLE(first_slot_at timestamp with time zone, spacing_ms double precision, reserved_at timestamp with time zone, slots integer, global_per_second double precision, endpoint_per_second double precision)
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;
comment on function marketplace.reserve_stripe_request_slots(text,integer) is 'Reserves N Stripe request slots for an endpoint from its budget and the global budget, atomically, in one statement (GCRA). Slot i starts at first_slot_at + i * spacing_ms.';
grant EXECUTE on function marketplace.reserve_stripe_request_slots(text,integer) to marketplace_worker;
revoke execute on function marketplace.reserve_stripe_request_slots(text,integer) from public;

CREATE OR REPLACE FUNCTION marketplace.resume_seller_transfers(reason text, OUT paused boolean, OUT since timestamp with time zone, OUT actor text, OUT requested_by text, OUT reason_now text, OUT in_flight integer)
 RETURNS record
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select * from marketplace.set_seller_transfer_pause(false, reason)
$function$;
comment on function marketplace.resume_seller_transfers(text) is 'Operator: resumes the fleet after pause_seller_transfers (the waiting rows are handed out again), recorded in seller_transfer_pause_events with the caller''s role, marketplace.requested_by and the reason (required, at most 500 characters). Refused when not paused.';
grant EXECUTE on function marketplace.resume_seller_transfers(text) to marketplace_operator;
revoke execute on function marketplace.resume_seller_transfers(text) from public;

CREATE OR REPLACE FUNCTION marketplace.retry_seller_transfer(id uuid, reason text)
 RETURNS marketplace.seller_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "marketplace.speaker" TO 'admin'
AS $function$
declare
  t marketplace.seller_transfers;
  st marketplace.seller_transfer_statuses;
begin
  t := marketplace.lock_seller_transfer_for_admin(id, reason);
  select * into st from marketplace.seller_transfer_statuses s where s.status = t.status;
  -- A retry makes the worker's next attempt due now: what has no attempt to make says why.
  if st.worker_task is null and not marketplace.can_transition_transfer_status(t.status, 'failed') then
    raise exception 'seller transfer % is %: %', t.id, t.status,
        case when st.is_terminal and t.status = 'reversed' then 'its reversal exists at Stripe, so there is nothing to retry (it is terminal)'
             when st.is_terminal then format('it was given up (last_error: %s), so there is nothing to retry (it is terminal); create a new payout if it is still owed',
                                             coalesce(left(regexp_replace(t.last_error, '\s+', ' ', 'g'), 200), 'none'))
             when t.status = 'completed' then 'Stripe paid it, so there is nothing to retry; to take the money back, reverse it'
             else 'the worker has nothing to do for it, so there is nothing to retry' end
      using errcode = 'object_not_in_prerequisite_state',
            hint = 'retry applies to pending, failed and reversal_pending payouts (seller-transfers list --status failed)';
  end if;
  update marketplace.seller_transfers s
     set status = case when st.worker_task is not null then s.status else 'failed' end,
         next_retry_at = now(), updated_at = now()
   where s.id = t.id
  returning s.* into t;
  if st.worker_task is not null then
    -- Same status: no move, so no event from the guard; the retry is recorded as an action.
    perform marketplace.record_seller_transfer_action(t.id, 'retry');
  end if;
  return t;
end $function$;
comment on function marketplace.retry_seller_transfer(uuid,text) is 'Makes the worker''s next attempt on a seller transfer due now (next_retry_at = now()); terminal rows are refused by the matrix.';
grant EXECUTE on function marketplace.retry_seller_transfer(uuid,text) to marketplace_operator;
grant EXECUTE on function marketplace.retry_seller_transfer(uuid,text) to marketplace_writer;
revoke execute on function marketplace.retry_seller_transfer(uuid,text) from public;

CREATE OR REPLACE FUNCTION marketplace.reverse_seller_transfer(id uuid, reason text, amount_cents bigint DEFAULT NULL::bigint)
 RETURNS marketplace.seller_transfers
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET "marketplace.speaker" TO 'admin'
AS $function$
declare
  t marketplace.seller_transfers;
begin
  if amount_cents is not null and amount_cents <= 0 then
    -- Said in the row's currency (read, not locked: nothing is written); an unknown id says so below.
    raise exception 'a reversal amount must be positive, got %',
        coalesce((select marketplace.seller_transfer_amount_text(reverse_seller_transfer.amount_cents, s.currency)
                    from marketplace.seller_transfers s where s.id = reverse_seller_transfer.id),
                 format('%s (minor units)', amount_cents))
      using errcode = 'invalid_parameter_value';
  end if;
  t := marketplace.lock_seller_transfer_for_admin(id, reason);
  if amount_cents > t.amount_cents then
    raise exception 'reversal amount % exceeds the transfer amount of %',
        marketplace.seller_transfer_amount_text(amount_cents, t.currency), marketplace.seller_transfer_amount_text(t.amount_cents, t.currency)
      using errcode = 'invalid_parameter_value';
  end if;
  if t.status = 'reversal_pending' then
    raise exception 'seller transfer % is already reversal_pending (%)', t.id,
        marketplace.seller_transfer_amount_text(coalesce(t.reversal_amount_cents, t.amount_cents), t.currency)
      using errcode = 'object_not_in_prerequisite_state';
  end if;
  perform marketplace.assert_seller_transfer_transition(t.id, t.status, 'reversal_pending');
  update marketplace.seller_transfers s
     set status = 'reversal_pending', reversal_amount_cents = reverse_seller_transfer.amount_cents,
         next_retry_at = null, updated_at = now()
   where s.id = t.id
  returning s.* into t;
  return t;
end $function$;
comment on function marketplace.reverse_seller_transfer(uuid,text,bigint) is 'Requests the reversal of a paid seller transfer (completed -> reversal_pending), whole or amount_cents of it; the worker creates the Stripe reversal.';
grant EXECUTE on function marketplace.reverse_seller_transfer(uuid,text,bigint) to marketplace_operator;
grant EXECUTE on function marketplace.reverse_seller_transfer(uuid,text,bigint) to marketplace_writer;
revoke execute on function marketplace.reverse_seller_transfer(uuid,text,bigint) from public;

CREATE OR REPLACE FUNCTION marketplace.run_seller_transfer_audit(full_audit boolean DEFAULT false)
 RETURNS TABLE(was_full boolean, transfers_audited bigint, problems_found bigint, findings_new bigint, findings_fixed bigint, findings_open bigint, started_at timestamp with time zone)
 LANGUAGE plpgsql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
#variable_conflict use_column
declare
  st        marketplace.seller_transfer_audit_state;
  snap      pg_snapshot;
  xmin_now  xid8;
  started   timestamptz := clock_timestamp();
  first_x   bigint;
  audited   bigint;
  found     bigint;
  added     bigint;
  fixed     bigint;
  open_n    bigint;
  probes    text;
begin
  begin
    select * into st from marketplace.seller_transfer_audit_state s where s.singleton for update nowait;
  exception when lock_not_available then
    raise exception 'an audit run is already in progress' using errcode = '55P03',
      hint = 'wait for it to finish (marketplace.seller_transfer_audit_state.started_at says when it began)';
  end;
  -- The oldest transaction of this database still running (taken before the audit's own
  -- snapshot: every transaction of this database older than it had ended, and its history is
  -- visible to the queries below), or the next transaction id when none runs. Transactions of
  -- other databases on the server cannot write this history: a long one there (a report, a dump)
  -- does not hold the watermark back. A transaction not known to run elsewhere counts as ours.
  snap := pg_current_snapshot();
  select coalesce(min(x), pg_snapshot_xmax(snap)) into xmin_now
    from pg_snapshot_xip(snap) x
   where not exists (select 1
                       from pg_locks l
                       join pg_stat_activity a on a.pid = l.pid
                      where l.locktype = 'transactionid' and l.transactionid = xid(x)
                        and a.datid <> (select d.oid from pg_database d where d.datname = current_database()));
  full_audit := coalesce(full_audit, false) or st.next_xact is null;
  first_x := (st.next_xact::text)::bigint;

  create temporary table if not exists seller_transfer_audit_found (transfer_id uuid, problem text, detail text) on commit drop;
  truncate seller_transfer_audit_found;
  if full_audit then
    -- As in audit_seller_transfers: the whole history sorts faster than it is walked by index.
    probes := current_setting('enable_indexscan');
    perform set_config('enable_indexscan', 'off', true);
    execute format('insert into seller_transfer_audit_found %s', marketplace.seller_transfer_audit_query('full'));
    perform set_config('enable_indexscan', probes, true);
    select count(*) into audited from marketplace.seller_transfers t;
  else
    execute format('insert into seller_transfer_audit_found %s', marketplace.seller_transfer_audit_query('incremental'))
      using first_x, st.next_created_at;
    select count(*) into audited
      from (select c.id
              from marketplace.seller_transfer_statuses s
             cross join lateral (select t.id from marketplace.seller_transfers t where t.status = s.status and t.created_at >= st.next_created_at) c
            union
            select e.transfer_id from marketplace.seller_transfer_events e where (e.xact_id::text)::bigint >= first_x) x;
  end if;
  select count(*) into found from seller_transfer_audit_found;

  -- Fixed: a stored finding of an audited transfer that the audit no longer reports (on a full
  -- run, any). The stored findings are few: each is checked against the scope by index.
  with gone as (
    delete from marketplace.seller_transfer_audit_findings a
     where (full_audit
            or exists (select 1 from marketplace.seller_transfer_events e
                        where e.transfer_id = a.transfer_id and (e.xact_id::text)::bigint >= first_x)
            or exists (select 1 from marketplace.seller_transfers t where t.id = a.transfer_id and t.created_at >= st.next_created_at))
       and not exists (select 1 from seller_transfer_audit_found f
                        where f.transfer_id = a.transfer_id and f.problem = a.problem and f.detail = a.detail)
    returning 1
  )
  select count(*) into fixed from gone;

  with upserted as (
    insert into marketplace.seller_transfer_audit_findings as a (transfer_id, problem, detail, first_found_at, last_found_at)
    select distinct f.transfer_id, f.problem, f.detail, started, started from seller_transfer_audit_found f
    on conflict (transfer_id, problem, detail) do update set last_found_at = excluded.last_found_at
    returning (a.xmax = 0) as inserted
  )
  select count(*) filter (where u.inserted) into added from upserted u;

  select count(*) into open_n from marketplace.seller_transfer_audit_findings a where a.acknowledged_at is null;

  update marketplace.seller_transfer_audit_state s
     set next_xact = xmin_now,
         next_created_at = started - interval '10 minutes',
         started_at = started,
         finished_at = clock_timestamp(),
         was_full = full_audit,
         transfers_audited = audited,
         problems_found = found
   where s.singleton;
  drop table seller_transfer_audit_found;
  return query select full_audit, audited, found, added, fixed, open_n, started;
end $function$;
comment on function marketplace.run_seller_transfer_audit(boolean) is 'The incremental audit (seller-transfers audit --since-last): audits the transfers with history written since the last run (all of them on the first run, or with full_audit => true), keeps what it finds in seller_transfer_audit_findings until the row is fixed or the finding acknowledged, and moves the watermark in seller_transfer_audit_state.';
grant EXECUTE on function marketplace.run_seller_transfer_audit(boolean) to marketplace_operator;
grant EXECUTE on function marketplace.run_seller_transfer_audit(boolean) to marketplace_worker;
revoke execute on function marketplace.run_seller_transfer_audit(boolean) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_admin_actions(status text)
 RETURNS text[]
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$
  select array_remove(array[
           -- reverse_seller_transfer: the operator's move into reversal_pending (not a second one).
           case when st.status <> 'reversal_pending' and exists (
                  select 1 from marketplace.seller_transfer_move_owners o
                   where o.from_status = st.status and o.to_status = 'reversal_pending' and o.authority = 'operator')
                then 'reverse' end,
           -- retry_seller_transfer: makes the worker's next attempt due now, so only in a worker status.
           case when st.worker_task is not null then 'retry' end,
           -- fail_seller_transfer: the operator's move into permanently_failed, directly or through failed.
           case when exists (
                  select 1 from marketplace.seller_transfer_move_owners o
                   where o.from_status = st.status and o.authority = 'operator'
                     and (o.to_status = 'permanently_failed'
                          or o.to_status = 'failed' and exists (
                               select 1 from marketplace.seller_transfer_move_owners p
                                where p.from_status = 'failed' and p.to_status = 'permanently_failed' and p.authority = 'operator')))
                then 'fail' end],
         null)
    from marketplace.seller_transfer_statuses st
   where st.status = seller_transfer_admin_actions.status
$function$;
comment on function marketplace.seller_transfer_admin_actions(text) is 'The admin actions (reverse, retry, fail) that apply to a seller transfer in this status, from the matrix and its move owners: what the console offers. The functions still check everything else (in doubt, in flight, amounts).';
grant EXECUTE on function marketplace.seller_transfer_admin_actions(text) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_admin_actions(text) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_admin_actions(text) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_admin_actions(text) to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_admin_actions(text) to marketplace_writer;
revoke execute on function marketplace.seller_transfer_admin_actions(text) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_adoption_problem_list(r marketplace.seller_transfers)
 RETURNS SETOF text[]
 LANGUAGE sql
 STABLE ROWS 1
AS $function$
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
comment on function marketplace.seller_transfer_adoption_problem_list(marketplace.seller_transfers) is 'Why a legacy row, mapped to seller_transfers'' columns, cannot be adopted as it is (one row; empty: it can). Called in FROM by seller-transfers adopt plan and run, where it is inlined; seller_transfer_adoption_problems(row) is the same as a scalar.';
grant EXECUTE on function marketplace.seller_transfer_adoption_problem_list(marketplace.seller_transfers) to marketplace_reader;
revoke execute on function marketplace.seller_transfer_adoption_problem_list(marketplace.seller_transfers) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_adoption_problems(r marketplace.seller_transfers)
 RETURNS text[]
 LANGUAGE sql
 STABLE
AS $function$
  select p.problems from marketplace.seller_transfer_adoption_problem_list(r) p(problems)
$function$;
comment on function marketplace.seller_transfer_adoption_problems(marketplace.seller_transfers) is 'Why a legacy row, mapped to this table''s columns, cannot be adopted as it is (empty: it can): seller-transfers adopt plan reports them, adopt run refuses a batch holding one.';
grant EXECUTE on function marketplace.seller_transfer_adoption_problems(marketplace.seller_transfers) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_adoption_problems(marketplace.seller_transfers) to public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_amount_text(minor bigint, currency text)
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select case when c.exponent is null then format('%s %s (minor units; currency not in marketplace.currencies)', minor, upper(currency))
              else format('%s%s%s %s', case when minor < 0 then '-' else '' end,
                          regexp_replace((abs(minor) / (10::bigint ^ c.exponent)::bigint)::text, '(\d)(?=(\d{3})+$)', '\1,', 'g'),
                          case when c.exponent > 0 then '.' || lpad((abs(minor) % (10::bigint ^ c.exponent)::bigint)::text, c.exponent, '0') else '' end,
                          upper(currency)) end
    from (select (select x.exponent from marketplace.currencies x where x.code = lower(currency)) as exponent) c
$function$;
comment on function marketplace.seller_transfer_amount_text(bigint,text) is 'An amount in minor units as a person reads it, in its currency''s unit: 123456 usd -> 1,234.56 USD, 1200 jpy -> 1,200 JPY (the exponent from marketplace.currencies).';
grant EXECUTE on function marketplace.seller_transfer_amount_text(bigint,text) to marketplace_admin;
grant EXECUTE on function marketplace.seller_transfer_amount_text(bigint,text) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_amount_text(bigint,text) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_amount_text(bigint,text) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_amount_text(bigint,text) to marketplace_recorder;
grant EXECUTE on function marketplace.seller_transfer_amount_text(bigint,text) to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_amount_text(bigint,text) to marketplace_writer;
revoke execute on function marketplace.seller_transfer_amount_text(bigint,text) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_audit_query(scope text)
 RETURNS text
 LANGUAGE plpgsql
 IMMUTABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  scope_cte text;
  ev_from   text;
  rows_from text;
begin
  if scope = 'full' then
    scope_cte := 'scope as (select null::uuid as id where false)';
    ev_from := 'marketplace.seller_transfer_events e';
    rows_from := 'marketplace.seller_transfers t';
  elsif scope in ('since', 'incremental') then
    scope_cte := format($s$scope as materialized (
    select c.id
      from marketplace.seller_transfer_statuses s
     cross join lateral (select t.id from marketplace.seller_transfers t where t.status = s.status and t.created_at >= %s) c
    union
    select e.transfer_id from marketplace.seller_transfer_events e where %s
  )$s$,
      case scope when 'since' then '$1' else '$2' end,
      case scope when 'since' then 'e.occurred_at >= $1' else '(e.xact_id::text)::bigint >= $1' end);
    -- Each transfer in scope is looked up by index (OFFSET 0 keeps the lookup a nested loop: a
    -- merge or hash join would read the whole table to find a day's rows).
    ev_from := 'scope s cross join lateral (select e.* from marketplace.seller_transfer_events e where e.transfer_id = s.id offset 0) e';
    rows_from := 'scope s cross join lateral (select t.* from marketplace.seller_transfers t where t.id = s.id offset 0) t';
  else
    raise exception 'unknown audit scope %', scope using errcode = '22023';
  end if;
  return format($q$
  with %1$s, ev as (
    -- One sort of the history by (transfer_id, id), one pass of window functions: each step with
    -- the one before it, and on every row what the whole history says (where it ends; for each
    -- Stripe id the last event that recorded one, and whether the history judges it: recorded
    -- since migration 000017, an authority on the insert or on the move that sets the id).
    select e.transfer_id, e.id, e.from_status, e.to_status, e.amount_cents, e.currency, e.stripe_account_id, e.source_transaction,
           e.authority, e.stripe_transfer_id, e.stripe_reversal_id, e.action,
           row_number() over w as n,
           lag(e.to_status) over w as prev_to,
           last_value(e.to_status) over wa as last_to,
           max(e.id) filter (where e.stripe_transfer_id is not null) over wa as transfer_id_event,
           coalesce(bool_or(e.authority is not null and (e.from_status is null or e.to_status = 'completed')) over wa, false) as transfer_id_judged,
           max(e.id) filter (where e.stripe_reversal_id is not null) over wa as reversal_id_event,
           coalesce(bool_or(e.authority is not null and (e.from_status is null or e.to_status = 'reversed')) over wa, false) as reversal_id_judged
      from %2$s
     -- an operator's action on a status (a retry) is not a step; an adoption (seller-transfers adopt)
     -- is the first step of a row that lived elsewhere before: the status it held then, from nothing
     where e.action is null or e.action = 'adopted'
    window w as (partition by e.transfer_id order by e.id),
           wa as (w rows between unbounded preceding and unbounded following)
  ), steps as (
    select ev.transfer_id, 'first_event_not_insert'::text as problem,
           format('event %%s: %%s -> %%s, expected the insert (from nothing)', ev.id, ev.from_status, ev.to_status) as detail
      from ev where ev.n = 1 and ev.from_status is not null
    union all
    select ev.transfer_id, 'initial_status_not_initial',
           format('event %%s: created as %%s, which is not an initial status', ev.id, ev.to_status)
      from ev
      left join marketplace.seller_transfer_statuses s on s.status = ev.to_status
     where ev.n = 1 and ev.from_status is null and not coalesce(s.is_initial, false) and ev.action is distinct from 'adopted'
    union all
    select ev.transfer_id, 'broken_chain',
           format('event %%s: %%s -> %%s, but the previous event ended in %%s', ev.id, coalesce(ev.from_status, '(insert)'), ev.to_status, ev.prev_to)
      from ev where ev.n > 1 and ev.from_status is distinct from ev.prev_to
    union all
    select ev.transfer_id, 'same_state_step',
           format('event %%s: %%s -> %%s (a same-state update is never recorded)', ev.id, ev.from_status, ev.to_status)
      from ev where ev.n > 1 and ev.from_status = ev.to_status
    union all
    select ev.transfer_id, 'illegal_step',
           format('event %%s: %%s -> %%s is not in seller_transfer_transitions', ev.id, ev.from_status, ev.to_status)
      from ev
      left join marketplace.seller_transfer_transitions tr on tr.from_status = ev.from_status and tr.to_status = ev.to_status
     where ev.n > 1 and ev.from_status is not null and ev.from_status <> ev.to_status and tr.from_status is null
  ), per_transfer as (
    -- One row per transfer with history: its first event carries the whole history's verdicts.
    select ev.transfer_id, ev.id as first_id, ev.last_to, ev.from_status is null as first_is_insert,
           ev.amount_cents, ev.currency, ev.stripe_account_id, ev.source_transaction,
           ev.transfer_id_event, ev.transfer_id_judged, ev.reversal_id_event, ev.reversal_id_judged
      from ev where ev.n = 1
  ), recorded as (
    -- The events that last recorded a Stripe id, one or two per transfer.
    select ev.transfer_id, ev.id, ev.authority, ev.stripe_transfer_id, ev.stripe_reversal_id
      from ev where ev.id = ev.transfer_id_event or ev.id = ev.reversal_id_event
  ), rows_in_scope as (
    select t.id, t.status, t.amount_cents, t.currency, t.stripe_account_id, t.source_transaction, t.stripe_transfer_id, t.stripe_reversal_id
      from %3$s
  ), joined as (
    select t.id as row_id, p.transfer_id as history_id, t.status, t.amount_cents, t.currency, t.stripe_account_id, t.source_transaction,
           t.stripe_transfer_id, t.stripe_reversal_id, p.first_id, p.last_to, p.first_is_insert,
           p.amount_cents as first_amount_cents, p.currency as first_currency, p.stripe_account_id as first_stripe_account_id,
           p.source_transaction as first_source_transaction,
           p.transfer_id_event, p.transfer_id_judged, p.reversal_id_event, p.reversal_id_judged
      from rows_in_scope t
      full join per_transfer p on p.transfer_id = t.id
  ), rows_vs_history as (
    select coalesce(j.row_id, j.history_id) as transfer_id,
           case when j.history_id is null then 'no_history'
                when j.row_id is null then 'history_without_row'
                else 'status_mismatch' end as problem,
           case when j.history_id is null then format('status %%s, but no history event', j.status)
                when j.row_id is null then format('history ends in %%s, but there is no such row', j.last_to)
                else format('status %%s, but the history ends in %%s', j.status, j.last_to) end as detail
      from joined j
     where j.history_id is null or j.row_id is null or j.status is distinct from j.last_to
  ), facts as (
    select j.row_id as transfer_id, 'money_facts_changed'::text as problem,
           -- Amounts in their currency's unit (10.00 USD, 1,200 JPY), as every other output prints them.
           format('event %%s: created as %%s to %%s%%s, the row now says %%s to %%s%%s', j.first_id,
                  marketplace.seller_transfer_amount_text(j.first_amount_cents, j.first_currency), j.first_stripe_account_id,
                  coalesce(' from ' || j.first_source_transaction, ''),
                  marketplace.seller_transfer_amount_text(j.amount_cents, j.currency), j.stripe_account_id,
                  coalesce(' from ' || j.source_transaction, '')) as detail
      from joined j
     where j.row_id is not null and j.history_id is not null and j.first_is_insert and j.first_amount_cents is not null
       and (j.amount_cents, j.currency, j.stripe_account_id, j.source_transaction)
           is distinct from (j.first_amount_cents, j.first_currency, j.first_stripe_account_id, j.first_source_transaction)
  ), stripe_claims as (
    -- A Stripe id on the row must be the one the worker recorded with the move that set it.
    select j.row_id, k.col, k.on_row, k.event_id
      from joined j
     cross join lateral (values ('stripe_transfer_id', j.stripe_transfer_id, j.transfer_id_judged, j.transfer_id_event),
                                ('stripe_reversal_id', j.stripe_reversal_id, j.reversal_id_judged, j.reversal_id_event)) k(col, on_row, judged, event_id)
     where j.row_id is not null and j.history_id is not null and k.on_row is not null and k.judged
  ), stripe_ids as (
    select c.row_id as transfer_id, 'stripe_id_not_from_worker'::text as problem,
           format('%%s %%s on the row, but the history %%s', c.col, c.on_row,
                  case when r.id is null then 'records no such id'
                       else format('records %%s (event %%s, by %%s)', r.recorded, r.id, coalesce(r.authority, 'unknown')) end) as detail
      from stripe_claims c
      left join (select x.transfer_id, x.id, x.authority, 'stripe_transfer_id' as col, x.stripe_transfer_id as recorded from recorded x
                 where x.stripe_transfer_id is not null
                 union all
                 select x.transfer_id, x.id, x.authority, 'stripe_reversal_id', x.stripe_reversal_id from recorded x
                 where x.stripe_reversal_id is not null) r
        on r.transfer_id = c.row_id and r.col = c.col and r.id = c.event_id
     where r.id is null or r.recorded is distinct from c.on_row or r.authority is distinct from 'worker'
  )
  select x.transfer_id, x.problem, x.detail from steps x
  union all
  select r.transfer_id, r.problem, r.detail from rows_vs_history r
  union all
  select m.transfer_id, m.problem, m.detail from facts m
  union all
  select i.transfer_id, i.problem, i.detail from stripe_ids i
  order by 1, 2, 3$q$, scope_cte, ev_from, rows_from);
end $function$;
comment on function marketplace.seller_transfer_audit_query(text) is 'The audit''s query for a scope (full | since: $1 timestamptz | incremental: $1 first xid as bigint, $2 created since), as text: audit_seller_transfers and run_seller_transfer_audit execute it; EXPLAIN it to see the plan.';
grant EXECUTE on function marketplace.seller_transfer_audit_query(text) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_audit_query(text) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_audit_query(text) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_audit_query(text) to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_audit_query(text) to marketplace_writer;
revoke execute on function marketplace.seller_transfer_audit_query(text) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_authority(who name)
 RETURNS text
 LANGUAGE sql
 STABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ select CASE WHEN who OPERATOR(pg_catalog.=) 'marketplace_recorder'::pg_catalog.name THEN 'worker' WHEN who OPERATOR(pg_catalog.=) 'marketplace_admin'::pg_catalog.name THEN 'operator' WHEN pg_catalog.pg_has_role(who, 'postgres', 'USAGE') THEN 'owner' WHEN pg_catalog.pg_has_role(who, 'marketplace_writer', 'USAGE') THEN 'service' WHEN pg_catalog.pg_has_role(who, 'marketplace_worker', 'USAGE') THEN 'worker' END $function$;
comment on function marketplace.seller_transfer_authority(name) is 'The authority (service, worker, operator, owner; null: none) a statement run as this role speaks with. Rewritten by compile_seller_transfer_guards() with the table''s owner.';
grant EXECUTE on function marketplace.seller_transfer_authority(name) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_authority(name) to public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_authority_expression(who text)
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  -- Holding the owner's rights is asked first: a role that does is 'owner', whatever else it is.
  select format($a$CASE WHEN %1$s OPERATOR(pg_catalog.=) 'marketplace_recorder'::pg_catalog.name THEN 'worker' WHEN %1$s OPERATOR(pg_catalog.=) 'marketplace_admin'::pg_catalog.name THEN 'operator' WHEN pg_catalog.pg_has_role(%1$s, %2$L, 'USAGE') THEN 'owner' WHEN pg_catalog.pg_has_role(%1$s, 'marketplace_writer', 'USAGE') THEN 'service' WHEN pg_catalog.pg_has_role(%1$s, 'marketplace_worker', 'USAGE') THEN 'worker' END$a$,
                who, (select c.relowner::regrole::text from pg_class c where c.oid = 'marketplace.seller_transfers'::regclass))
$function$;
revoke execute on function marketplace.seller_transfer_authority_expression(text) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_body_is_path_free(body text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with stripped as (
    select regexp_replace(regexp_replace(regexp_replace(regexp_replace(regexp_replace(lower(body),
             '--[^\n]*', ' ', 'g'),                                       -- comments
             '''([^'']|'''')*''', ' ', 'g'),                               -- string literals
             'operator\(pg_catalog\.[^)]+\)', ' ', 'g'),                    -- qualified operators
             '(pg_catalog|marketplace)\.[a-z_0-9]+(\[\])?', ' q ', 'g'),    -- qualified names
             ':=', ';', 'g') as t
  )
  select coalesce(
    (select 'operator ' || m[1] from stripped, regexp_matches(replace(t, '::', ' '), '([=<>!~+*/%^&|#@?-]+)') m limit 1),
    (select 'unqualified type after :: (' || m[1] || ')' from stripped, regexp_matches(t, '::\s*([a-z_]+)') m where m[1] <> 'q' limit 1),
    (select m[1] from stripped, regexp_matches(t, '\m(is\s+(not\s+)?distinct|nullif|in\s*\()') m limit 1),
    (select 'simple CASE (' || m[1] || ')' from stripped, regexp_matches(t, '\mcase\s+([a-z_][a-z_0-9.\[\]]*)\s+when\M') m limit 1),
    (select 'unqualified call ' || m[1] from stripped, regexp_matches(t, '\m([a-z_][a-z_0-9]*)\s*\(', 'g') m
      where m[1] not in ('coalesce', 'any', 'values', 'and', 'or', 'not', 'if', 'elsif', 'when', 'then', 'else', 'return', 'q', 'in') limit 1),
    (select 'unqualified type ' || m[2] from stripped, regexp_matches(coalesce(substring(t from '\mdeclare\M(.*?)\mbegin\M'), ''), '(?:^|\n|;)\s*([a-z_]+)\s+([a-z_]+)\s*(:=|;)', 'g') m
      where m[2] <> 'q' limit 1))
$function$;
comment on function marketplace.seller_transfer_body_is_path_free(text) is 'Null when nothing in a plpgsql body resolves through the caller''s search_path (operators OPERATOR(pg_catalog.x), functions and types schema-qualified, no IS DISTINCT FROM, NULLIF, IN (...) or simple CASE); else the first thing that would. What lets the guard pin no search_path.';
grant EXECUTE on function marketplace.seller_transfer_body_is_path_free(text) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_body_is_path_free(text) to marketplace_reader;
revoke execute on function marketplace.seller_transfer_body_is_path_free(text) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_claim_is_live(backend_pid integer)
 RETURNS boolean
 LANGUAGE sql
 STABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select exists (select 1 from pg_catalog.pg_stat_get_activity($1) a where a.pid = $1)
$function$;
comment on function marketplace.seller_transfer_claim_is_live(integer) is 'True while the session with this pid exists: a claim by a session that is gone (a killed worker) is free to take over.';

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_claimed(id uuid)
 RETURNS boolean
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  -- This session's own claim does not count: a worker (or reconcile) holding the row acts on it.
  select exists (select 1 from marketplace.seller_transfer_claims c
                  where c.transfer_id = $1 and c.backend_pid <> pg_backend_pid()
                    and marketplace.seller_transfer_claim_is_live(c.backend_pid))
$function$;
comment on function marketplace.seller_transfer_claimed(uuid) is 'True while another live worker session holds the seller transfer''s claim (its Stripe request may be in flight).';
grant EXECUTE on function marketplace.seller_transfer_claimed(uuid) to marketplace_admin;
grant EXECUTE on function marketplace.seller_transfer_claimed(uuid) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_claimed(uuid) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_claimed(uuid) to marketplace_recorder;
grant EXECUTE on function marketplace.seller_transfer_claimed(uuid) to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_claimed(uuid) to marketplace_writer;
revoke execute on function marketplace.seller_transfer_claimed(uuid) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_coupling_rules()
 RETURNS TABLE(ord integer, constraint_name text, column_name text, broken_when text, missing text)
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  values
    (1, 'seller_transfer_paid_has_stripe_transfer', 'stripe_transfer_id',
     $r$r.status OPERATOR(pg_catalog.=) ANY ('{completed,reversal_pending,reversed}'::pg_catalog.text[]) and r.stripe_transfer_id is null$r$,
     'status %s requires stripe_transfer_id (the Stripe transfer that paid it)'),
    (2, 'seller_transfer_reversed_has_stripe_reversal', 'stripe_reversal_id',
     $r$r.status OPERATOR(pg_catalog.=) 'reversed' and r.stripe_reversal_id is null$r$,
     'status reversed requires stripe_reversal_id (the Stripe reversal that took the money back)'),
    (3, 'seller_transfer_reversal_needs_transfer', 'stripe_transfer_id',
     $r$r.stripe_reversal_id is not null and r.stripe_transfer_id is null$r$,
     'stripe_reversal_id requires stripe_transfer_id (a reversal reverses a transfer)'),
    (4, 'seller_transfer_failed_is_scheduled', 'next_retry_at',
     $r$r.status OPERATOR(pg_catalog.=) 'failed' and r.next_retry_at is null$r$,
     'status failed requires next_retry_at (when the worker tries again)')
$function$;
comment on function marketplace.seller_transfer_coupling_rules() is 'The column couplings of a seller transfer, in the order a refusal names them: constraint name, column, the path-free test over the row (r.<column>) that finds the rule broken, the message. The guard is generated from this list.';
grant EXECUTE on function marketplace.seller_transfer_coupling_rules() to public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_dispatch_state(id uuid)
 RETURNS TABLE(state text, status text, is_terminal boolean, worker_task text, due_now boolean, next_retry_at timestamp with time zone, job_id bigint, job_task text, lease timestamp with time zone, run_at timestamp with time zone, attempts smallint, max_attempts smallint, locked_at timestamp with time zone, locked_by text, last_error text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select case when s.worker_task is null then 'idle'
              when marketplace.seller_transfer_is_due(t.status, t.next_retry_at) then 'due'
              when j.lease = t.next_retry_at then 'handed'
              else 'scheduled' end,
         t.status, s.is_terminal, s.worker_task, marketplace.seller_transfer_is_due(t.status, t.next_retry_at), t.next_retry_at,
         j.job_id, j.task, j.lease, j.run_at, j.attempts, j.max_attempts, j.locked_at, j.locked_by, j.last_error
    from marketplace.seller_transfers t
    join marketplace.seller_transfer_statuses s on s.status = t.status
    left join lateral (select * from marketplace.seller_transfer_jobs(t.id) x order by x.created_at desc limit 1) j on true
   where t.id = $1
$function$;
comment on function marketplace.seller_transfer_dispatch_state(uuid) is 'Where one seller transfer stands with the worker: idle | due | handed | scheduled, and its graphile-worker job (if any).';
grant EXECUTE on function marketplace.seller_transfer_dispatch_state(uuid) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_dispatch_state(uuid) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_dispatch_state(uuid) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_dispatch_state(uuid) to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_dispatch_state(uuid) to marketplace_writer;
revoke execute on function marketplace.seller_transfer_dispatch_state(uuid) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_doctor()
 RETURNS TABLE(check_name text, status text, detail text, fix text)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select * from marketplace.doctor_seller_transfer_triggers()
  union all select * from marketplace.doctor_seller_transfer_guard_sync()
  union all select * from marketplace.doctor_seller_transfer_indexes()
  union all select * from marketplace.doctor_seller_transfer_roles()
  union all select * from marketplace.doctor_seller_transfer_definers()
  union all select * from marketplace.doctor_seller_transfer_jobs()
  union all select * from marketplace.doctor_seller_transfer_dispatch()
  union all select * from marketplace.doctor_seller_transfer_blockers()
  union all select * from marketplace.doctor_seller_transfer_workers()
  union all select * from marketplace.doctor_seller_transfer_slos()
  union all select * from marketplace.doctor_seller_transfer_held()
  union all select * from marketplace.doctor_seller_transfer_funds()
  union all select * from marketplace.doctor_seller_transfer_currencies()
  union all select * from marketplace.doctor_seller_transfer_times()
  union all select * from marketplace.doctor_seller_transfer_audit()
$function$;
comment on function marketplace.seller_transfer_doctor() is 'Health checks of the installation, one row each: (check_name, ok | warn | problem, detail, fix). What `seller-transfers doctor` prints.';
grant EXECUTE on function marketplace.seller_transfer_doctor() to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_doctor() to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_doctor() to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_doctor() to marketplace_writer;
revoke execute on function marketplace.seller_transfer_doctor() from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_due_counts()
 RETURNS TABLE(status text, due_now bigint, oldest_due_seconds double precision)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select s.status, count(t.id),
         extract(epoch from now() - min(d.since) filter (where isfinite(d.since)))
    from marketplace.seller_transfer_statuses s
    left join lateral (select t.id, t.status, t.next_retry_at, t.created_at from marketplace.seller_transfers t
                        where t.status = s.status and (t.next_retry_at is null or t.next_retry_at <= now()) offset 0) t on true
    left join lateral (select marketplace.seller_transfer_due_since(t.id, t.status, t.next_retry_at, t.created_at) as since) d on true
   where s.worker_task is not null
   group by s.status, s.position
   order by s.position
$function$;
comment on function marketplace.seller_transfer_due_counts() is 'Per worker status: rows due now that no job holds yet, and how long the longest-waiting has been due (seconds).';
grant EXECUTE on function marketplace.seller_transfer_due_counts() to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_due_counts() to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_due_counts() to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_due_counts() to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_due_counts() to marketplace_writer;
revoke execute on function marketplace.seller_transfer_due_counts() from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_due_since(id uuid, status text, next_retry_at timestamp with time zone, created_at timestamp with time zone)
 RETURNS timestamp with time zone
 LANGUAGE sql
 STABLE
AS $function$
  select coalesce($3, case when $2 = 'pending' then $4 else marketplace.seller_transfer_status_since($1) end, $4)
$function$;
grant EXECUTE on function marketplace.seller_transfer_due_since(uuid,text,timestamp with time zone,timestamp with time zone) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_due_since(uuid,text,timestamp with time zone,timestamp with time zone) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_due_since(uuid,text,timestamp with time zone,timestamp with time zone) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_due_since(uuid,text,timestamp with time zone,timestamp with time zone) to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_due_since(uuid,text,timestamp with time zone,timestamp with time zone) to marketplace_writer;
revoke execute on function marketplace.seller_transfer_due_since(uuid,text,timestamp with time zone,timestamp with time zone) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_guard_in_sync()
 RETURNS boolean
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select (select count(*) = (select count(*) from marketplace.seller_transfer_guard_triggers())
            from pg_catalog.pg_trigger tg
           where tg.tgrelid = 'marketplace.seller_transfers'::regclass
             and tg.tgname in (select g.tgname from marketplace.seller_transfer_guard_triggers() g)
             and tg.tgenabled in ('O', 'A'))
     and pg_catalog.obj_description('marketplace.check_seller_transfer_update()'::regprocedure, 'pg_proc')
         = 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint()
     and pg_catalog.obj_description('marketplace.seller_transfer_move_owned(text, text, text)'::regprocedure, 'pg_proc')
         like '%compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint()
     and (select pg_catalog.obj_description(tg.oid, 'pg_trigger') from pg_catalog.pg_trigger tg
           where tg.tgrelid = 'marketplace.seller_transfers'::regclass and tg.tgname = 'seller_transfer_initial_status')
         = 'compiled from the statuses and transitions tables, fingerprint ' || marketplace.seller_transfer_matrix_fingerprint()
$function$;
comment on function marketplace.seller_transfer_guard_in_sync() is 'True when the guard triggers are present, enabled, and compiled from the current statuses and transitions tables.';
grant EXECUTE on function marketplace.seller_transfer_guard_in_sync() to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_guard_in_sync() to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_guard_in_sync() to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_guard_in_sync() to marketplace_writer;
revoke execute on function marketplace.seller_transfer_guard_in_sync() from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_guard_triggers()
 RETURNS TABLE(tgname text, ord integer)
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  values ('seller_transfer_status_transition', 1), ('seller_transfer_write_once', 2), ('seller_transfer_written_to_history', 3),
         ('seller_transfer_initial_status', 4), ('seller_transfer_history_on_insert', 5)
$function$;
comment on function marketplace.seller_transfer_guard_triggers() is 'The triggers on seller_transfers that make up the guard (compile_seller_transfer_guards() generates their functions).';
grant EXECUTE on function marketplace.seller_transfer_guard_triggers() to public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_handover_transfer(p_id uuid, candidates jsonb)
 RETURNS text
 LANGUAGE sql
 STABLE
AS $function$
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
comment on function marketplace.seller_transfer_handover_transfer(uuid,jsonb) is 'Handover (docs/adopting.md#handover): which of the listed Stripe transfers the legacy system made for this adopted row (destination, amount, currency, created after the row, not ours, the recorded legacy transfer_group and metadata, recorded by no other row; the oldest), or null.';
grant EXECUTE on function marketplace.seller_transfer_handover_transfer(uuid,jsonb) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_handover_transfer(uuid,jsonb) to marketplace_worker;
revoke execute on function marketplace.seller_transfer_handover_transfer(uuid,jsonb) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_is_due(status text, next_retry_at timestamp with time zone)
 RETURNS boolean
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$
  select exists (select 1 from marketplace.seller_transfer_statuses s where s.status = $1 and s.worker_task is not null)
     and coalesce($2, '-infinity') <= now()
$function$;
comment on function marketplace.seller_transfer_is_due(text,timestamp with time zone) is 'True when the worker should act on a row now: its status has a worker task and next_retry_at (if any) has passed.';
grant EXECUTE on function marketplace.seller_transfer_is_due(text,timestamp with time zone) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_is_due(text,timestamp with time zone) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_is_due(text,timestamp with time zone) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_is_due(text,timestamp with time zone) to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_is_due(text,timestamp with time zone) to marketplace_writer;
revoke execute on function marketplace.seller_transfer_is_due(text,timestamp with time zone) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_job_key(id uuid)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
  select 'seller_transfer:' || $1::text
$function$;
grant EXECUTE on function marketplace.seller_transfer_job_key(uuid) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_job_key(uuid) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_job_key(uuid) to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_job_key(uuid) to marketplace_writer;
revoke execute on function marketplace.seller_transfer_job_key(uuid) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_jobs(id uuid)
 RETURNS TABLE(job_id bigint, task text, job_key text, run_at timestamp with time zone, attempts smallint, max_attempts smallint, locked_at timestamp with time zone, locked_by text, last_error text, created_at timestamp with time zone, lease timestamp with time zone)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select j.id, t.identifier, j.key, j.run_at, j.attempts, j.max_attempts, j.locked_at, j.locked_by, j.last_error, j.created_at,
         (j.payload ->> 'lease')::timestamptz
    from graphile_worker._private_jobs j
    join graphile_worker._private_tasks t on t.id = j.task_id
   where j.key = marketplace.seller_transfer_job_key($1)
   order by j.run_at, j.id
$function$;
comment on function marketplace.seller_transfer_jobs(uuid) is 'The graphile-worker job of one seller transfer (by job key): task, run_at, attempts, locked_at/locked_by, last_error, the lease it carries.';
grant EXECUTE on function marketplace.seller_transfer_jobs(uuid) to marketplace_admin;
grant EXECUTE on function marketplace.seller_transfer_jobs(uuid) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_jobs(uuid) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_jobs(uuid) to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_jobs(uuid) to marketplace_writer;
revoke execute on function marketplace.seller_transfer_jobs(uuid) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_longest_in_status(status text, OUT id uuid, OUT since timestamp with time zone)
 RETURNS record
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  s record;
  b_id uuid;
  b_since timestamptz;
  start_at timestamptz;
  lo timestamptz;
  hi timestamptz;
  step interval := interval '1 second';
  e_id uuid;
  e_since timestamptz;
begin
  select st.is_terminal, st.worker_task is not null as is_worker into s
    from marketplace.seller_transfer_statuses st where st.status = seller_transfer_longest_in_status.status;
  if not found or s.is_terminal then
    return;
  end if;
  if s.is_worker then
    select t.id, coalesce(marketplace.seller_transfer_status_since(t.id), t.created_at) as at into id, since
      from marketplace.seller_transfers t
     where t.status = seller_transfer_longest_in_status.status
     order by 2, 1 limit 1;
    return;
  end if;

  -- The upper bound: the row created first in the status (the (status, created_at) index, backwards).
  select t.id, coalesce(marketplace.seller_transfer_status_since(t.id), t.created_at) into b_id, b_since
    from marketplace.seller_transfers t
   where t.status = seller_transfer_longest_in_status.status
   order by t.status, t.created_at, t.id limit 1;
  if not found then
    return;
  end if;
  id := b_id;
  since := b_since;
  -- Rows with no history stand in the status since their creation: those created before the bound.
  select t.id, t.created_at into e_id, e_since
    from marketplace.seller_transfers t
   where t.status = seller_transfer_longest_in_status.status and t.created_at <= b_since
     and not exists (select 1 from marketplace.seller_transfer_events e where e.transfer_id = t.id and e.action is null)
   order by t.created_at, t.id limit 1;
  if found and (e_since, e_id) < (since, id) then
    id := e_id;
    since := e_since;
  end if;
  if not isfinite(b_since) then
    -- a time planted past the guard: no walk to an infinite bound
    return;
  end if;
  select e.occurred_at into start_at from marketplace.seller_transfer_events e order by e.id limit 1;
  if start_at is null or not isfinite(start_at) then
    start_at := b_since;
  end if;
  hi := least(start_at + step, b_since);
  loop
    select e.transfer_id, e.occurred_at into e_id, e_since
      from marketplace.seller_transfer_events e
      join marketplace.seller_transfers t on t.id = e.transfer_id
     where e.occurred_at <= hi and (lo is null or e.occurred_at > lo) and e.action is null
       and t.status = seller_transfer_longest_in_status.status
       and not exists (select 1 from marketplace.seller_transfer_events l
                        where l.transfer_id = e.transfer_id and l.id > e.id and l.action is null)
     order by e.occurred_at, e.transfer_id limit 1;
    if found then
      if (e_since, e_id) < (since, id) then
        id := e_id;
        since := e_since;
      end if;
      return;
    end if;
    exit when hi >= b_since;
    lo := hi;
    step := step * 2;
    hi := case when step > interval '200 years' then b_since else least(start_at + step, b_since) end;
  end loop;
end $function$;
comment on function marketplace.seller_transfer_longest_in_status(text) is 'The row in the status that has stood in it longest (time in status from its last history event, as seller_transfer_status_since) and since when; nothing for a terminal status. Reads the backlog for a worker status, the history up to that row for a resting one (completed), never the whole table.';
grant EXECUTE on function marketplace.seller_transfer_longest_in_status(text) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_longest_in_status(text) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_longest_in_status(text) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_longest_in_status(text) to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_longest_in_status(text) to marketplace_writer;
revoke execute on function marketplace.seller_transfer_longest_in_status(text) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_matrix_fingerprint()
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select md5(
    coalesce((select string_agg(t.from_status || '>' || t.to_status, ',' order by t.from_status, t.to_status)
                from marketplace.seller_transfer_transitions t), '')
    || '|' ||
    coalesce((select string_agg(s.status, ',' order by s.status) from marketplace.seller_transfer_statuses s where s.is_initial), '')
    || '|' ||
    coalesce((select string_agg(o.from_status || '>' || o.to_status || ':' || o.authority, ',' order by o.from_status, o.to_status, o.authority)
                from marketplace.seller_transfer_move_owners o), '')
    || '|' ||
    coalesce((select c.relowner::regrole::text from pg_class c where c.oid = 'marketplace.seller_transfers'::regclass), ''))
$function$;
comment on function marketplace.seller_transfer_matrix_fingerprint() is 'md5 of the legal moves, the initial statuses, the move owners and the table''s owner: what the guard triggers are compiled from.';
grant EXECUTE on function marketplace.seller_transfer_matrix_fingerprint() to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_matrix_fingerprint() to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_matrix_fingerprint() to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_matrix_fingerprint() to marketplace_writer;
revoke execute on function marketplace.seller_transfer_matrix_fingerprint() from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_move_owned(from_status text, to_status text, authority text)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
 SELECT
         CASE from_status
             WHEN 'completed'::text THEN
             CASE to_status
                 WHEN 'reversal_pending'::text THEN COALESCE((authority = ANY ('{operator,owner,service,worker}'::text[])), false)
                 ELSE false
             END
             WHEN 'failed'::text THEN
             CASE to_status
                 WHEN 'completed'::text THEN COALESCE((authority = ANY ('{owner,worker}'::text[])), false)
                 WHEN 'permanently_failed'::text THEN COALESCE((authority = ANY ('{operator,owner,worker}'::text[])), false)
                 ELSE false
             END
             WHEN 'pending'::text THEN
             CASE to_status
                 WHEN 'completed'::text THEN COALESCE((authority = ANY ('{owner,worker}'::text[])), false)
                 WHEN 'failed'::text THEN COALESCE((authority = ANY ('{operator,owner,worker}'::text[])), false)
                 ELSE false
             END
             WHEN 'reversal_pending'::text THEN
             CASE to_status
                 WHEN 'permanently_failed'::text THEN COALESCE((authority = ANY ('{operator,owner,worker}'::text[])), false)
                 WHEN 'reversed'::text THEN COALESCE((authority = ANY ('{owner,worker}'::text[])), false)
                 ELSE false
             END
             ELSE false
         END AS "case";
END;
comment on function marketplace.seller_transfer_move_owned(text,text,text) is 'True when authority may move a seller transfer from_status -> to_status (a legal move it owns; the owner owns every legal move). compiled from the statuses and transitions tables, fingerprint b9b6627a6d067bd48ccbc610d7cb59dd';
grant EXECUTE on function marketplace.seller_transfer_move_owned(text,text,text) to public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_outcomes_per_hour(from_at timestamp with time zone, to_at timestamp with time zone)
 RETURNS TABLE(hour timestamp with time zone, paid bigint, failed bigint, given_up bigint)
 LANGUAGE sql
 STABLE
AS $function$
  select date_bin('1 hour', e.occurred_at, timestamptz '2000-01-01 00:00:00+00') as hour,
         count(*) filter (where e.to_status = 'completed') as paid,
         count(*) filter (where e.to_status = 'failed') as failed,
         count(*) filter (where e.to_status = 'permanently_failed') as given_up
    from marketplace.seller_transfer_events e
   where e.occurred_at >= $1 and e.occurred_at < $2
     and e.to_status in ('completed', 'failed', 'permanently_failed')
     and e.from_status is distinct from e.to_status
   group by 1
   order by 1
$function$;
comment on function marketplace.seller_transfer_outcomes_per_hour(timestamp with time zone,timestamp with time zone) is 'Payouts paid (moves into completed), failed (into failed) and given up (into permanently_failed) per UTC-aligned hour of the history in [from_at, to_at); hours with none are left out. Reads the range through the BRIN index on occurred_at.';
grant EXECUTE on function marketplace.seller_transfer_outcomes_per_hour(timestamp with time zone,timestamp with time zone) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_outcomes_per_hour(timestamp with time zone,timestamp with time zone) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_outcomes_per_hour(timestamp with time zone,timestamp with time zone) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_outcomes_per_hour(timestamp with time zone,timestamp with time zone) to marketplace_worker;
revoke execute on function marketplace.seller_transfer_outcomes_per_hour(timestamp with time zone,timestamp with time zone) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_pause_state(OUT paused boolean, OUT since timestamp with time zone, OUT actor text, OUT requested_by text, OUT reason text, OUT paused_seconds double precision)
 RETURNS record
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select p.paused, p.since, p.actor, p.requested_by, p.reason,
         case when p.paused then extract(epoch from clock_timestamp() - p.since)::double precision end
    from marketplace.seller_transfer_pause p where p.singleton
$function$;
comment on function marketplace.seller_transfer_pause_state() is 'The pause switch: paused, since when, by whom (actor: the database role; requested_by: the person), why, and for how many seconds so far.';
grant EXECUTE on function marketplace.seller_transfer_pause_state() to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_pause_state() to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_pause_state() to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_pause_state() to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_pause_state() to marketplace_writer;
revoke execute on function marketplace.seller_transfer_pause_state() from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_recorded_stripe_ids(id uuid)
 RETURNS TABLE(stripe_transfer_id text, transfer_recorded_by text, stripe_reversal_id text, reversal_recorded_by text)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select (select e.stripe_transfer_id from marketplace.seller_transfer_events e
           where e.transfer_id = $1 and e.stripe_transfer_id is not null order by e.id desc limit 1),
         (select e.authority from marketplace.seller_transfer_events e
           where e.transfer_id = $1 and e.stripe_transfer_id is not null order by e.id desc limit 1),
         (select e.stripe_reversal_id from marketplace.seller_transfer_events e
           where e.transfer_id = $1 and e.stripe_reversal_id is not null order by e.id desc limit 1),
         (select e.authority from marketplace.seller_transfer_events e
           where e.transfer_id = $1 and e.stripe_reversal_id is not null order by e.id desc limit 1)
$function$;
comment on function marketplace.seller_transfer_recorded_stripe_ids(uuid) is 'The Stripe ids the history records for a transfer (the latest event that set each) and who recorded them (worker: the worker wrote it). Null: not recorded (set past the guard, or before migration 000017).';
grant EXECUTE on function marketplace.seller_transfer_recorded_stripe_ids(uuid) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_recorded_stripe_ids(uuid) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_recorded_stripe_ids(uuid) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_recorded_stripe_ids(uuid) to marketplace_worker;
revoke execute on function marketplace.seller_transfer_recorded_stripe_ids(uuid) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_refusal_detail(transfer_id uuid, from_status text, to_status text, people text, authority text DEFAULT NULL::text)
 RETURNS text
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select concat_ws(' ', 'seller_transfer_id=' || transfer_id::text, 'from=' || from_status, 'to=' || to_status, 'authority=' || authority)
         || coalesce(E'\n' || people, '')
$function$;
comment on function marketplace.seller_transfer_refusal_detail(uuid,text,text,text,text) is 'The DETAIL of a refused write to a seller transfer: a first line of key=value pairs (seller_transfer_id, from, to, authority; a null is left out), a newline, then the text for people. docs/service-authors.md, "Reading a refusal".';
grant EXECUTE on function marketplace.seller_transfer_refusal_detail(uuid,text,text,text,text) to public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_status_counts()
 RETURNS TABLE(status text, total bigint, stuck bigint)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select c.status, c.transfers, c.past_slo from marketplace.seller_transfer_status_totals() c
$function$;
comment on function marketplace.seller_transfer_status_counts() is 'Per status: how many seller transfers (from seller_transfer_status_totals: live for the worker statuses, the last snapshot for the others) and how many are past their SLO.';
grant EXECUTE on function marketplace.seller_transfer_status_counts() to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_status_counts() to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_status_counts() to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_status_counts() to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_status_counts() to marketplace_writer;
revoke execute on function marketplace.seller_transfer_status_counts() from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_status_since(id uuid)
 RETURNS timestamp with time zone
 LANGUAGE sql
 STABLE PARALLEL SAFE
AS $function$
  select e.occurred_at
    from marketplace.seller_transfer_events e
   where e.transfer_id = $1 and e.action is null
   order by e.id desc
   limit 1
$function$;
comment on function marketplace.seller_transfer_status_since(uuid) is 'When the seller transfer entered its current status (its last history event); null for an unknown id.';
grant EXECUTE on function marketplace.seller_transfer_status_since(uuid) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_status_since(uuid) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_status_since(uuid) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_status_since(uuid) to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_status_since(uuid) to marketplace_writer;
revoke execute on function marketplace.seller_transfer_status_since(uuid) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_status_totals()
 RETURNS TABLE(status text, transfers bigint, counted_at timestamp with time zone, past_slo bigint)
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
  select s.status,
         case when s.worker_task is not null or c.status is null
              then (select count(*) from marketplace.seller_transfers t where t.status = s.status)
              else c.transfers end,
         case when s.worker_task is not null or c.status is null then now() else c.counted_at end,
         (select count(*) from marketplace.seller_transfers_past_slo p where p.status = s.status)
    from marketplace.seller_transfer_statuses s
    left join marketplace.seller_transfer_status_count_snapshots c on c.status = s.status
   order by s.position
$function$;
comment on function marketplace.seller_transfer_status_totals() is 'Per status: rows (live for the worker statuses; for the others from seller_transfer_status_count_snapshots, counted_at saying when), and rows past the status SLO (live). Bounded by the backlog, not the table.';
grant EXECUTE on function marketplace.seller_transfer_status_totals() to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_status_totals() to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_status_totals() to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_status_totals() to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_status_totals() to marketplace_writer;
revoke execute on function marketplace.seller_transfer_status_totals() from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_worker_job_access()
 RETURNS text
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select case
    when to_regclass('graphile_worker._private_jobs') is null
      then 'graphile_worker''s schema is missing: run `seller-transfers migrate`'
    when not has_table_privilege('graphile_worker._private_jobs', 'select, update, delete')
      or not has_table_privilege('graphile_worker._private_tasks', 'select')
      then format('role %s may not read and update graphile_worker._private_jobs: grant it marketplace_worker (README "Roles")', current_user)
    when row_security_active('graphile_worker._private_jobs')
         and not exists (select 1 from pg_policies p
                          where p.schemaname = 'graphile_worker' and p.tablename = '_private_jobs'
                            and ('public' = any (p.roles) or exists (select 1 from unnest(p.roles) r(name)
                                                                     where pg_has_role(current_user, r.name, 'MEMBER'))))
      then format('row-level security on graphile_worker._private_jobs hides every job from role %s: grant it marketplace_worker (README "Roles"), and run `seller-transfers migrate`', current_user)
  end
$function$;
comment on function marketplace.seller_transfer_worker_job_access() is 'Null when the calling role can see and run graphile-worker''s jobs; else why not. The worker refuses to start otherwise.';
grant EXECUTE on function marketplace.seller_transfer_worker_job_access() to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_worker_job_access() to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_worker_job_access() to marketplace_worker;
revoke execute on function marketplace.seller_transfer_worker_job_access() from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_worker_job_counts(cap integer DEFAULT 10000)
 RETURNS TABLE(state text, jobs bigint)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select x.state, count(*)
    from (select case when j.locked_at is not null then 'running'
                      when j.attempts >= j.max_attempts then 'failed'
                      when j.attempts > 0 then 'retrying'
                      when j.run_at <= now() then 'queued'
                      else 'scheduled' end as state
            from graphile_worker._private_jobs j
            join graphile_worker._private_tasks t on t.id = j.task_id
           where t.identifier in (select s.worker_task from marketplace.seller_transfer_statuses s where s.worker_task is not null)
           limit least(greatest(coalesce(cap, 10000), 1), 100000) + 1) x
   group by x.state
$function$;
comment on function marketplace.seller_transfer_worker_job_counts(integer) is 'How many graphile-worker jobs of the payout tasks are in each state (as seller_transfer_worker_jobs names them), reading at most cap + 1 jobs: a total above cap means "more than cap".';
grant EXECUTE on function marketplace.seller_transfer_worker_job_counts(integer) to marketplace_reader;
revoke execute on function marketplace.seller_transfer_worker_job_counts(integer) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_worker_jobs(max_rows integer DEFAULT 200)
 RETURNS TABLE(job_id bigint, task text, transfer_id uuid, state text, run_at timestamp with time zone, attempts smallint, max_attempts smallint, locked_at timestamp with time zone, locked_by text, last_error text, created_at timestamp with time zone, updated_at timestamp with time zone, lease timestamp with time zone)
 LANGUAGE sql
 STABLE SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select j.id, t.identifier,
         case when j.key ~ '^seller_transfer:[0-9a-f-]{36}$' then substr(j.key, 17)::uuid end,
         case when j.locked_at is not null then 'running'
              when j.attempts >= j.max_attempts then 'failed'
              when j.attempts > 0 then 'retrying'
              when j.run_at <= now() then 'queued'
              else 'scheduled' end as state,
         j.run_at, j.attempts, j.max_attempts, j.locked_at, j.locked_by, j.last_error, j.created_at, j.updated_at,
         case when json_typeof(j.payload -> 'lease') = 'string' then (j.payload ->> 'lease')::timestamptz end
    from graphile_worker._private_jobs j
    join graphile_worker._private_tasks t on t.id = j.task_id
   where t.identifier in (select s.worker_task from marketplace.seller_transfer_statuses s where s.worker_task is not null)
   order by case when j.locked_at is not null then 0 when j.attempts >= j.max_attempts then 1 when j.attempts > 0 then 2 else 3 end,
            j.run_at, j.id
   limit least(greatest(coalesce(max_rows, 200), 1), 1000)
$function$;
comment on function marketplace.seller_transfer_worker_jobs(integer) is 'The graphile-worker jobs of the payout tasks (the statuses'' worker_task): state (running, failed: out of attempts, retrying: failed before and waiting, queued: due, scheduled), attempts, last error, the worker holding it (locked_by), its payout and lease; running and failed first, at most max_rows (1 to 1,000). For readers, who may not read graphile_worker''s tables.';
grant EXECUTE on function marketplace.seller_transfer_worker_jobs(integer) to marketplace_reader;
revoke execute on function marketplace.seller_transfer_worker_jobs(integer) from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfer_write_once_rules()
 RETURNS TABLE(column_name text, rule text)
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  values ('id', 'fixed'), ('order_id', 'fixed'), ('seller_id', 'fixed'), ('stripe_account_id', 'fixed'),
         ('amount_cents', 'fixed'), ('currency', 'fixed'), ('source_transaction', 'fixed'), ('created_at', 'fixed'),
         ('stripe_transfer_id', 'once'), ('stripe_reversal_id', 'once'),
         ('reversal_amount_cents', 'with the move into reversal_pending'),
         ('stripe_key_generation', 'by the worker')
$function$;
comment on function marketplace.seller_transfer_write_once_rules() is 'The write-once columns of seller_transfers and their rule: fixed (never changes), once (written once, never changes or clears), with the move into reversal_pending, by the worker (only the worker''s recording functions move it). The guard is generated from this list.';
grant EXECUTE on function marketplace.seller_transfer_write_once_rules() to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfer_write_once_rules() to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfer_write_once_rules() to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfer_write_once_rules() to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfer_write_once_rules() to marketplace_writer;
revoke execute on function marketplace.seller_transfer_write_once_rules() from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfers_paused()
 RETURNS boolean
 LANGUAGE sql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  select coalesce((select p.paused from marketplace.seller_transfer_pause p where p.singleton), false)
$function$;
comment on function marketplace.seller_transfers_paused() is 'True while the fleet is paused (seller_transfer_pause): no new Stripe call may start.';
grant EXECUTE on function marketplace.seller_transfers_paused() to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfers_paused() to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfers_paused() to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfers_paused() to marketplace_recorder;
grant EXECUTE on function marketplace.seller_transfers_paused() to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfers_paused() to marketplace_writer;
revoke execute on function marketplace.seller_transfers_paused() from public;

CREATE OR REPLACE FUNCTION marketplace.seller_transfers_without_recorded_facts(since timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS bigint
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
 SET jit TO 'off'
AS $function$
declare
  n bigint;
begin
  if since is null then
    select count(*) into n
      from marketplace.seller_transfer_events e
      join marketplace.seller_transfers t on t.id = e.transfer_id
     where e.from_status is null and e.amount_cents is null;
  else
    -- The same scope as the audit's, index-driven.
    with scope as materialized (
      select c.id
        from marketplace.seller_transfer_statuses s
       cross join lateral (select t.id from marketplace.seller_transfers t where t.status = s.status and t.created_at >= since) c
      union
      select e.transfer_id from marketplace.seller_transfer_events e where e.occurred_at >= since
    )
    select count(*) into n
      from scope s
      join marketplace.seller_transfers t on t.id = s.id
      join marketplace.seller_transfer_events e on e.transfer_id = s.id
     where e.from_status is null and e.amount_cents is null;
  end if;
  return n;
end $function$;
comment on function marketplace.seller_transfers_without_recorded_facts(timestamp with time zone) is 'How many transfers (in scope) were created before their money facts were recorded in the history (before migration 000010): audit judges their facts by what they hold today.';
grant EXECUTE on function marketplace.seller_transfers_without_recorded_facts(timestamp with time zone) to marketplace_definer;
grant EXECUTE on function marketplace.seller_transfers_without_recorded_facts(timestamp with time zone) to marketplace_operator;
grant EXECUTE on function marketplace.seller_transfers_without_recorded_facts(timestamp with time zone) to marketplace_reader;
grant EXECUTE on function marketplace.seller_transfers_without_recorded_facts(timestamp with time zone) to marketplace_worker;
grant EXECUTE on function marketplace.seller_transfers_without_recorded_facts(timestamp with time zone) to marketplace_writer;
revoke execute on function marketplace.seller_transfers_without_recorded_facts(timestamp with time zone) from public;

CREATE OR REPLACE FUNCTION marketplace.set_seller_transfer_pause(pause boolean, reason text, OUT paused boolean, OUT since timestamp with time zone, OUT actor text, OUT requested_by text, OUT reason_now text, OUT in_flight integer)
 RETURNS record
 LANGUAGE plpgsql
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
declare
  caller text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  asker  text := left(nullif(current_setting('marketplace.requested_by', true), ''), 200);
  app    text := nullif(current_setting('application_name'), '');
  now_p  marketplace.seller_transfer_pause;
  word   text := case when pause then 'pause' else 'resume' end;
begin
  if reason is null or btrim(reason) = '' then
    raise exception 'a reason is required: say why (it is recorded in the pause history)'
      using errcode = 'invalid_parameter_value';
  end if;
  if length(reason) > 500 then
    raise exception 'a reason is at most 500 characters (got %)', length(reason)
      using errcode = 'string_data_right_truncation';
  end if;
  select * into now_p from marketplace.seller_transfer_pause p where p.singleton for update;
  if now_p.paused = pause then
    raise exception '%', case when pause
        then format('seller transfers are already paused (since %s by %s%s: %s)', now_p.since, now_p.actor,
                    coalesce(' for ' || now_p.requested_by, ''), now_p.reason)
        else 'seller transfers are not paused: nothing to resume' end
      using errcode = 'object_not_in_prerequisite_state',
            hint = case when pause then 'Resume first to pause with another reason (seller-transfers resume --reason ...).'
                        else 'The workers are calling Stripe; see SELECT * FROM marketplace.seller_transfer_pause_events ORDER BY id DESC.' end;
  end if;
  insert into marketplace.seller_transfer_pause_events (action, actor, requested_by, application_name, reason, paused_since)
  values (word, caller, asker, app, btrim(reason), case when not pause then now_p.since end);
  update marketplace.seller_transfer_pause p
     set paused = pause,
         since = case when pause then clock_timestamp() end,
         actor = case when pause then caller end,
         requested_by = case when pause then asker end,
         reason = case when pause then btrim(set_seller_transfer_pause.reason) end
   where p.singleton
  returning p.paused, p.since, p.actor, p.requested_by, p.reason
       into set_seller_transfer_pause.paused, set_seller_transfer_pause.since, set_seller_transfer_pause.actor,
            set_seller_transfer_pause.requested_by, set_seller_transfer_pause.reason_now;
  -- Stripe calls that may be in flight right now (live worker claims): they finish and are
  -- recorded as usual; no new one starts once this commits.
  select count(*)::integer into in_flight
    from marketplace.seller_transfer_claims c where marketplace.seller_transfer_claim_is_live(c.backend_pid);
end $function$;
comment on function marketplace.set_seller_transfer_pause(boolean,text) is 'pause_seller_transfers and resume_seller_transfers: sets the switch and appends its history row.';
revoke execute on function marketplace.set_seller_transfer_pause(boolean,text) from public;

CREATE OR REPLACE FUNCTION marketplace.stripe_request_budget_rate(configured double precision, current_rate double precision, adjusted_at timestamp with time zone, rate_limited_at timestamp with time zone, ceiling double precision, at timestamp with time zone)
 RETURNS double precision
 LANGUAGE plpgsql
 IMMUTABLE PARALLEL SAFE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
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
$function$;
comment on function marketplace.stripe_request_budget_rate(double precision,double precision,timestamp with time zone,timestamp with time zone,double precision,timestamp with time zone) is 'Adaptive rate at a time: once 2 s passed without a 429, current_rate grows by 10 % of configured per second below 90 % of the ceiling, by 1 % above it; capped at configured.';
grant EXECUTE on function marketplace.stripe_request_budget_rate(double precision,double precision,timestamp with time zone,timestamp with time zone,double precision,timestamp with time zone) to marketplace_definer;
grant EXECUTE on function marketplace.stripe_request_budget_rate(double precision,double precision,timestamp with time zone,timestamp with time zone,double precision,timestamp with time zone) to marketplace_reader;
grant EXECUTE on function marketplace.stripe_request_budget_rate(double precision,double precision,timestamp with time zone,timestamp with time zone,double precision,timestamp with time zone) to marketplace_worker;
grant EXECUTE on function marketplace.stripe_request_budget_rate(double precision,double precision,timestamp with time zone,timestamp with time zone,double precision,timestamp with time zone) to marketplace_writer;
revoke execute on function marketplace.stripe_request_budget_rate(double precision,double precision,timestamp with time zone,timestamp with time zone,double precision,timestamp with time zone) from public;

CREATE OR REPLACE FUNCTION marketplace.try_lock_seller_transfer(id uuid)
 RETURNS boolean
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  insert into marketplace.seller_transfer_claims as c (transfer_id, backend_pid, task)
  values ($1, pg_backend_pid(), 'manual')
  on conflict on constraint seller_transfer_claims_pkey do update
     set backend_pid = excluded.backend_pid, task = excluded.task, claimed_at = now()
   where c.backend_pid = pg_backend_pid() or not marketplace.seller_transfer_claim_is_live(c.backend_pid)
  returning true
$function$;
comment on function marketplace.try_lock_seller_transfer(uuid) is 'Worker: takes the row''s claim for this session unless another live session holds it (null: busy).';
grant EXECUTE on function marketplace.try_lock_seller_transfer(uuid) to marketplace_worker;
revoke execute on function marketplace.try_lock_seller_transfer(uuid) from public;

CREATE OR REPLACE FUNCTION marketplace.unlock_seller_transfer(id uuid)
 RETURNS boolean
 LANGUAGE sql
 SECURITY DEFINER
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
  with gone as (delete from marketplace.seller_transfer_claims c where c.transfer_id = $1 and c.backend_pid = pg_backend_pid() returning 1)
  select exists (select 1 from gone)
$function$;
comment on function marketplace.unlock_seller_transfer(uuid) is 'Worker: gives up this session''s claim on the row now.';
grant EXECUTE on function marketplace.unlock_seller_transfer(uuid) to marketplace_worker;
revoke execute on function marketplace.unlock_seller_transfer(uuid) from public;

grant USAGE on schema marketplace to marketplace_admin;

grant USAGE on schema marketplace to marketplace_console;

grant USAGE on schema marketplace to marketplace_definer;

grant USAGE on schema marketplace to marketplace_operator;

grant USAGE on schema marketplace to marketplace_reader;

grant USAGE on schema marketplace to marketplace_recorder;

grant USAGE on schema marketplace to marketplace_worker;

grant USAGE on schema marketplace to marketplace_writer;

grant DELETE, INSERT, SELECT on marketplace.console_sessions to marketplace_console;

grant SELECT on marketplace.currencies to marketplace_admin;

grant SELECT on marketplace.currencies to marketplace_definer;

grant SELECT on marketplace.currencies to marketplace_operator;

grant SELECT on marketplace.currencies to marketplace_reader;

grant SELECT on marketplace.currencies to marketplace_recorder;

grant SELECT on marketplace.currencies to marketplace_worker;

grant SELECT on marketplace.currencies to marketplace_writer;

grant INSERT on marketplace.seller_transfer_adoption_changes to marketplace_definer;

grant SELECT on marketplace.seller_transfer_adoption_handover to marketplace_reader;

grant SELECT on marketplace.seller_transfer_adoption_handover to marketplace_worker;

grant SELECT on marketplace.seller_transfer_adoptions to marketplace_reader;

grant DELETE, INSERT, SELECT, UPDATE on marketplace.seller_transfer_audit_findings to marketplace_definer;

grant SELECT on marketplace.seller_transfer_audit_findings to marketplace_operator;

grant SELECT on marketplace.seller_transfer_audit_findings to marketplace_reader;

grant SELECT on marketplace.seller_transfer_audit_findings to marketplace_worker;

grant SELECT on marketplace.seller_transfer_audit_findings to marketplace_writer;

grant SELECT, UPDATE on marketplace.seller_transfer_audit_state to marketplace_definer;

grant SELECT on marketplace.seller_transfer_audit_state to marketplace_operator;

grant SELECT on marketplace.seller_transfer_audit_state to marketplace_reader;

grant SELECT on marketplace.seller_transfer_audit_state to marketplace_worker;

grant SELECT on marketplace.seller_transfer_audit_state to marketplace_writer;

grant SELECT on marketplace.seller_transfer_authorities to marketplace_admin;

grant SELECT on marketplace.seller_transfer_authorities to marketplace_definer;

grant SELECT on marketplace.seller_transfer_authorities to marketplace_operator;

grant SELECT on marketplace.seller_transfer_authorities to marketplace_reader;

grant SELECT on marketplace.seller_transfer_authorities to marketplace_recorder;

grant SELECT on marketplace.seller_transfer_authorities to marketplace_worker;

grant SELECT on marketplace.seller_transfer_authorities to marketplace_writer;

grant SELECT on marketplace.seller_transfer_claims to marketplace_admin;

grant DELETE, INSERT, SELECT, UPDATE on marketplace.seller_transfer_claims to marketplace_definer;

grant SELECT on marketplace.seller_transfer_claims to marketplace_reader;

grant SELECT on marketplace.seller_transfer_claims to marketplace_recorder;

grant SELECT, UPDATE on marketplace.seller_transfer_count_refresh_mutex to marketplace_definer;

grant SELECT, UPDATE on marketplace.seller_transfer_dispatch_mutex to marketplace_definer;

grant SELECT on marketplace.seller_transfer_dispatch_mutex to marketplace_reader;

grant INSERT, SELECT on marketplace.seller_transfer_events to marketplace_definer;

grant SELECT on marketplace.seller_transfer_events to marketplace_operator;

grant SELECT on marketplace.seller_transfer_events to marketplace_reader;

grant SELECT on marketplace.seller_transfer_events to marketplace_worker;

grant SELECT on marketplace.seller_transfer_events to marketplace_writer;

grant SELECT on marketplace.seller_transfer_events_set_aside to marketplace_reader;

grant SELECT on marketplace.seller_transfer_external_reversals to marketplace_definer;

grant SELECT on marketplace.seller_transfer_external_reversals to marketplace_operator;

grant SELECT on marketplace.seller_transfer_external_reversals to marketplace_reader;

grant INSERT, SELECT on marketplace.seller_transfer_external_reversals to marketplace_recorder;

grant SELECT on marketplace.seller_transfer_external_reversals to marketplace_worker;

grant SELECT on marketplace.seller_transfer_external_reversals to marketplace_writer;

grant SELECT on marketplace.seller_transfer_move_owners to marketplace_admin;

grant SELECT on marketplace.seller_transfer_move_owners to marketplace_definer;

grant SELECT on marketplace.seller_transfer_move_owners to marketplace_operator;

grant SELECT on marketplace.seller_transfer_move_owners to marketplace_reader;

grant SELECT on marketplace.seller_transfer_move_owners to marketplace_recorder;

grant SELECT on marketplace.seller_transfer_move_owners to marketplace_worker;

grant SELECT on marketplace.seller_transfer_move_owners to marketplace_writer;

grant DELETE, INSERT, SELECT, UPDATE on marketplace.seller_transfer_outcome_hours to marketplace_definer;

grant SELECT on marketplace.seller_transfer_outcome_hours to marketplace_operator;

grant SELECT on marketplace.seller_transfer_outcome_hours to marketplace_reader;

grant SELECT on marketplace.seller_transfer_outcome_hours to marketplace_worker;

grant SELECT, UPDATE on marketplace.seller_transfer_outcome_hours_watermark to marketplace_definer;

grant SELECT on marketplace.seller_transfer_outcome_hours_watermark to marketplace_operator;

grant SELECT on marketplace.seller_transfer_outcome_hours_watermark to marketplace_reader;

grant SELECT on marketplace.seller_transfer_outcome_hours_watermark to marketplace_worker;

grant SELECT, UPDATE on marketplace.seller_transfer_pause to marketplace_definer;

grant SELECT on marketplace.seller_transfer_pause to marketplace_operator;

grant SELECT on marketplace.seller_transfer_pause to marketplace_reader;

grant SELECT on marketplace.seller_transfer_pause to marketplace_recorder;

grant SELECT on marketplace.seller_transfer_pause to marketplace_worker;

grant SELECT on marketplace.seller_transfer_pause to marketplace_writer;

grant INSERT, SELECT on marketplace.seller_transfer_pause_events to marketplace_definer;

grant SELECT on marketplace.seller_transfer_pause_events to marketplace_operator;

grant SELECT on marketplace.seller_transfer_pause_events to marketplace_reader;

grant SELECT on marketplace.seller_transfer_pause_events to marketplace_worker;

grant SELECT on marketplace.seller_transfer_pause_events to marketplace_writer;

grant SELECT on marketplace.seller_transfer_stats to marketplace_definer;

grant SELECT on marketplace.seller_transfer_stats to marketplace_operator;

grant SELECT on marketplace.seller_transfer_stats to marketplace_reader;

grant SELECT on marketplace.seller_transfer_stats to marketplace_worker;

grant SELECT on marketplace.seller_transfer_stats to marketplace_writer;

grant DELETE, INSERT, SELECT, UPDATE on marketplace.seller_transfer_status_count_snapshots to marketplace_definer;

grant SELECT on marketplace.seller_transfer_status_count_snapshots to marketplace_operator;

grant SELECT on marketplace.seller_transfer_status_count_snapshots to marketplace_reader;

grant SELECT on marketplace.seller_transfer_status_count_snapshots to marketplace_worker;

grant SELECT on marketplace.seller_transfer_status_count_snapshots to marketplace_writer;

grant SELECT on marketplace.seller_transfer_status_slos to marketplace_definer;

grant SELECT on marketplace.seller_transfer_status_slos to marketplace_operator;

grant SELECT on marketplace.seller_transfer_status_slos to marketplace_reader;

grant SELECT on marketplace.seller_transfer_status_slos to marketplace_worker;

grant SELECT on marketplace.seller_transfer_status_slos to marketplace_writer;

grant SELECT on marketplace.seller_transfer_statuses to marketplace_admin;

grant SELECT on marketplace.seller_transfer_statuses to marketplace_definer;

grant SELECT on marketplace.seller_transfer_statuses to marketplace_operator;

grant SELECT on marketplace.seller_transfer_statuses to marketplace_reader;

grant SELECT on marketplace.seller_transfer_statuses to marketplace_recorder;

grant SELECT on marketplace.seller_transfer_statuses to marketplace_worker;

grant SELECT on marketplace.seller_transfer_statuses to marketplace_writer;

grant SELECT on marketplace.seller_transfer_transition_matrix to marketplace_operator;

grant SELECT on marketplace.seller_transfer_transition_matrix to marketplace_reader;

grant SELECT on marketplace.seller_transfer_transition_matrix to marketplace_worker;

grant SELECT on marketplace.seller_transfer_transition_matrix to marketplace_writer;

grant SELECT on marketplace.seller_transfer_transition_owners to marketplace_admin;

grant SELECT on marketplace.seller_transfer_transition_owners to marketplace_definer;

grant SELECT on marketplace.seller_transfer_transition_owners to marketplace_operator;

grant SELECT on marketplace.seller_transfer_transition_owners to marketplace_reader;

grant SELECT on marketplace.seller_transfer_transition_owners to marketplace_recorder;

grant SELECT on marketplace.seller_transfer_transition_owners to marketplace_worker;

grant SELECT on marketplace.seller_transfer_transition_owners to marketplace_writer;

grant SELECT on marketplace.seller_transfer_transitions to marketplace_admin;

grant SELECT on marketplace.seller_transfer_transitions to marketplace_definer;

grant SELECT on marketplace.seller_transfer_transitions to marketplace_operator;

grant SELECT on marketplace.seller_transfer_transitions to marketplace_reader;

grant SELECT on marketplace.seller_transfer_transitions to marketplace_recorder;

grant SELECT on marketplace.seller_transfer_transitions to marketplace_worker;

grant SELECT on marketplace.seller_transfer_transitions to marketplace_writer;

grant DELETE, INSERT, SELECT, UPDATE on marketplace.seller_transfer_worker_heartbeats to marketplace_definer;

grant SELECT on marketplace.seller_transfer_worker_heartbeats to marketplace_operator;

grant SELECT on marketplace.seller_transfer_worker_heartbeats to marketplace_reader;

grant SELECT on marketplace.seller_transfer_worker_heartbeats to marketplace_worker;

grant SELECT on marketplace.seller_transfer_worker_heartbeats to marketplace_writer;

grant SELECT on marketplace.seller_transfers to marketplace_admin;

grant SELECT on marketplace.seller_transfers to marketplace_definer;

grant SELECT on marketplace.seller_transfers to marketplace_operator;

grant SELECT on marketplace.seller_transfers to marketplace_reader;

grant SELECT on marketplace.seller_transfers to marketplace_recorder;

grant SELECT on marketplace.seller_transfers to marketplace_worker;

grant SELECT on marketplace.seller_transfers to marketplace_writer;

grant SELECT on marketplace.seller_transfers_held_for_review to marketplace_definer;

grant SELECT on marketplace.seller_transfers_held_for_review to marketplace_operator;

grant SELECT on marketplace.seller_transfers_held_for_review to marketplace_reader;

grant SELECT on marketplace.seller_transfers_held_for_review to marketplace_worker;

grant SELECT on marketplace.seller_transfers_held_for_review to marketplace_writer;

grant SELECT on marketplace.seller_transfers_past_slo to marketplace_definer;

grant SELECT on marketplace.seller_transfers_past_slo to marketplace_operator;

grant SELECT on marketplace.seller_transfers_past_slo to marketplace_reader;

grant SELECT on marketplace.seller_transfers_past_slo to marketplace_worker;

grant SELECT on marketplace.seller_transfers_past_slo to marketplace_writer;

grant SELECT on marketplace.seller_transfers_waiting_for_funds to marketplace_definer;

grant SELECT on marketplace.seller_transfers_waiting_for_funds to marketplace_operator;

grant SELECT on marketplace.seller_transfers_waiting_for_funds to marketplace_reader;

grant SELECT on marketplace.seller_transfers_waiting_for_funds to marketplace_worker;

grant SELECT on marketplace.seller_transfers_waiting_for_funds to marketplace_writer;

grant SELECT on marketplace.stripe_request_budget_status to marketplace_definer;

grant SELECT on marketplace.stripe_request_budget_status to marketplace_operator;

grant SELECT on marketplace.stripe_request_budget_status to marketplace_reader;

grant SELECT on marketplace.stripe_request_budget_status to marketplace_worker;

grant SELECT on marketplace.stripe_request_budget_status to marketplace_writer;

grant INSERT, SELECT, UPDATE on marketplace.stripe_request_budgets to marketplace_definer;

grant SELECT on marketplace.stripe_request_budgets to marketplace_reader;

grant SELECT on marketplace.stripe_request_budgets to marketplace_worker;

grant SELECT on marketplace.stripe_request_budgets to marketplace_writer;

-- rows of marketplace.seller_transfer_statuses
-- {"status":"completed","position":2,"is_initial":false,"is_terminal":false,"description":"The Stripe transfer exists (stripe_transfer_id).","worker_task":null}
-- {"status":"failed","position":3,"is_initial":false,"is_terminal":false,"description":"The last attempt failed; retried at next_retry_at.","worker_task":"seller_transfer_retry"}
-- {"status":"pending","position":1,"is_initial":true,"is_terminal":false,"description":"Created by a service; the worker has not paid it yet.","worker_task":"seller_transfer_create"}
-- {"status":"permanently_failed","position":6,"is_initial":false,"is_terminal":true,"description":"Gave up: retry limit reached or a permanent Stripe error (last_error).","worker_task":null}
-- {"status":"reversal_pending","position":4,"is_initial":false,"is_terminal":false,"description":"A refund asked for the transfer to be reversed; the worker will do it.","worker_task":"seller_transfer_reverse"}
-- {"status":"reversed","position":5,"is_initial":false,"is_terminal":true,"description":"The Stripe reversal exists (stripe_reversal_id).","worker_task":null}

-- rows of marketplace.seller_transfer_transitions
-- {"from_status":"completed","to_status":"reversal_pending","description":"Refund requested; reversal queued"}
-- {"from_status":"failed","to_status":"completed","description":"Retry succeeded"}
-- {"from_status":"failed","to_status":"permanently_failed","description":"Retry limit reached or permanent error"}
-- {"from_status":"pending","to_status":"completed","description":"Stripe transfer created"}
-- {"from_status":"pending","to_status":"failed","description":"Transfer attempt failed; will retry"}
-- {"from_status":"reversal_pending","to_status":"permanently_failed","description":"Reversal impossible (retry limit or permanent error)"}
-- {"from_status":"reversal_pending","to_status":"reversed","description":"Stripe reversal created"}
