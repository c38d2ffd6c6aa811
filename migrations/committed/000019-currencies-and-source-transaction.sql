--! Previous: sha1:96032beace7fe48ecf1f0a0e6734b386f2968a5f
--! Hash: sha1:103c1ab2ca17cdb0e25f82c61d403eee75007b22
--! Message: currencies and source_transaction

-- Stripe Connect as marketplaces run it (issue 20).
--
--   1. marketplace.currencies: the currencies Stripe supports, with the minor-unit exponent
--      Stripe's API counts amounts in; seller_transfers.currency references it (NOT VALID here:
--      a catalog change; the next migration validates it in its own transaction)
--   2. source_transaction: the charge (ch_…) or payment (py_…) a transfer is funded from, written
--      by the service at insert, write-once like the other money facts; the worker reads it
--   3. payouts waiting on the platform's balance (balance_insufficient on a transfer): a view,
--      and doctor checks for them and for rows whose currency the table does not know
--
-- Online: the ALTER TABLEs on seller_transfers change the catalog only (a nullable column
-- without a default, constraints NOT VALID); `seller-transfers migrate` runs them under a short
-- lock_timeout and retries.

------------------------------------------------------------------------------
-- 1. Currencies. Seeded from Stripe's supported presentment currencies
-- (docs.stripe.com/currencies). exponent: how many decimals Stripe's API amounts carry,
-- i.e. amount = value * 10^exponent. Zero-decimal (Stripe's list): bif clp djf gnf jpy kmf krw
-- mga pyg rwf ugx vnd vuv xaf xof xpf. Three-decimal (Stripe: the last digit must be 0 for
-- charges): bhd jod kwd omr tnd. Special cases Stripe documents are in the description: ISK
-- (zero-decimal in life, but the API takes two decimals: a multiple of 100), HUF and TWD (two
-- decimals; payouts in whole units, a multiple of 100), UGX (zero-decimal).
------------------------------------------------------------------------------
create table marketplace.currencies (
  code        text primary key check (code ~ '^[a-z]{3}$'),
  exponent    integer not null check (exponent in (0, 2, 3)),
  description text not null
);
comment on table marketplace.currencies is
  'Currencies a seller transfer may be in: Stripe''s supported currencies, with the minor-unit exponent Stripe''s API counts amounts in (amount_cents = amount * 10^exponent). The console and the CLI read exponents from here.';
comment on column marketplace.currencies.exponent is
  'Decimals of the amount Stripe''s API takes: 0 for zero-decimal currencies (jpy: 1200 is 1,200 JPY), 2 for most, 3 for bhd jod kwd omr tnd.';

insert into marketplace.currencies (code, exponent, description) values
  ('aed', 2, 'United Arab Emirates dirham'), ('afn', 2, 'Afghan afghani'), ('all', 2, 'Albanian lek'),
  ('amd', 2, 'Armenian dram'), ('ang', 2, 'Netherlands Antillean guilder'), ('aoa', 2, 'Angolan kwanza'),
  ('ars', 2, 'Argentine peso'), ('aud', 2, 'Australian dollar'), ('awg', 2, 'Aruban florin'),
  ('azn', 2, 'Azerbaijani manat'), ('bam', 2, 'Bosnia and Herzegovina convertible mark'), ('bbd', 2, 'Barbadian dollar'),
  ('bdt', 2, 'Bangladeshi taka'), ('bgn', 2, 'Bulgarian lev'),
  ('bhd', 3, 'Bahraini dinar (three-decimal; Stripe: charge amounts end in 0)'),
  ('bif', 0, 'Burundian franc (zero-decimal)'), ('bmd', 2, 'Bermudian dollar'), ('bnd', 2, 'Brunei dollar'),
  ('bob', 2, 'Bolivian boliviano'), ('brl', 2, 'Brazilian real'), ('bsd', 2, 'Bahamian dollar'),
  ('bwp', 2, 'Botswana pula'), ('byn', 2, 'Belarusian ruble'), ('bzd', 2, 'Belize dollar'),
  ('cad', 2, 'Canadian dollar'), ('cdf', 2, 'Congolese franc'), ('chf', 2, 'Swiss franc'),
  ('clp', 0, 'Chilean peso (zero-decimal)'), ('cny', 2, 'Chinese yuan'), ('cop', 2, 'Colombian peso'),
  ('crc', 2, 'Costa Rican colón'), ('cve', 2, 'Cape Verdean escudo'), ('czk', 2, 'Czech koruna'),
  ('djf', 0, 'Djiboutian franc (zero-decimal)'), ('dkk', 2, 'Danish krone'), ('dop', 2, 'Dominican peso'),
  ('dzd', 2, 'Algerian dinar'), ('egp', 2, 'Egyptian pound'), ('etb', 2, 'Ethiopian birr'),
  ('eur', 2, 'Euro'), ('fjd', 2, 'Fijian dollar'), ('fkp', 2, 'Falkland Islands pound'),
  ('gbp', 2, 'Pound sterling'), ('gel', 2, 'Georgian lari'), ('gip', 2, 'Gibraltar pound'),
  ('gmd', 2, 'Gambian dalasi'), ('gnf', 0, 'Guinean franc (zero-decimal)'), ('gtq', 2, 'Guatemalan quetzal'),
  ('gyd', 2, 'Guyanese dollar'), ('hkd', 2, 'Hong Kong dollar'), ('hnl', 2, 'Honduran lempira'),
  ('htg', 2, 'Haitian gourde'),
  ('huf', 2, 'Hungarian forint (Stripe special case: charges take two decimals; payouts only whole forints, a multiple of 100)'),
  ('idr', 2, 'Indonesian rupiah'), ('ils', 2, 'Israeli new shekel'), ('inr', 2, 'Indian rupee'),
  ('isk', 2, 'Icelandic króna (Stripe special case: zero-decimal, but API amounts keep two decimals for compatibility: 5 ISK is 500)'),
  ('jmd', 2, 'Jamaican dollar'),
  ('jod', 3, 'Jordanian dinar (three-decimal; Stripe: charge amounts end in 0)'),
  ('jpy', 0, 'Japanese yen (zero-decimal)'), ('kes', 2, 'Kenyan shilling'), ('kgs', 2, 'Kyrgyzstani som'),
  ('khr', 2, 'Cambodian riel'), ('kmf', 0, 'Comorian franc (zero-decimal)'), ('krw', 0, 'South Korean won (zero-decimal)'),
  ('kwd', 3, 'Kuwaiti dinar (three-decimal; Stripe: charge amounts end in 0)'),
  ('kyd', 2, 'Cayman Islands dollar'), ('kzt', 2, 'Kazakhstani tenge'), ('lak', 2, 'Lao kip'),
  ('lbp', 2, 'Lebanese pound'), ('lkr', 2, 'Sri Lankan rupee'), ('lrd', 2, 'Liberian dollar'),
  ('lsl', 2, 'Lesotho loti'), ('mad', 2, 'Moroccan dirham'), ('mdl', 2, 'Moldovan leu'),
  ('mga', 0, 'Malagasy ariary (zero-decimal)'), ('mkd', 2, 'Macedonian denar'), ('mmk', 2, 'Myanmar kyat'),
  ('mnt', 2, 'Mongolian tögrög'), ('mop', 2, 'Macanese pataca'), ('mur', 2, 'Mauritian rupee'),
  ('mvr', 2, 'Maldivian rufiyaa'), ('mwk', 2, 'Malawian kwacha'), ('mxn', 2, 'Mexican peso'),
  ('myr', 2, 'Malaysian ringgit'), ('mzn', 2, 'Mozambican metical'), ('nad', 2, 'Namibian dollar'),
  ('ngn', 2, 'Nigerian naira'), ('nio', 2, 'Nicaraguan córdoba'), ('nok', 2, 'Norwegian krone'),
  ('npr', 2, 'Nepalese rupee'), ('nzd', 2, 'New Zealand dollar'),
  ('omr', 3, 'Omani rial (three-decimal; Stripe: charge amounts end in 0)'),
  ('pab', 2, 'Panamanian balboa'), ('pen', 2, 'Peruvian sol'), ('pgk', 2, 'Papua New Guinean kina'),
  ('php', 2, 'Philippine peso'), ('pkr', 2, 'Pakistani rupee'), ('pln', 2, 'Polish złoty'),
  ('pyg', 0, 'Paraguayan guaraní (zero-decimal)'), ('qar', 2, 'Qatari riyal'), ('ron', 2, 'Romanian leu'),
  ('rsd', 2, 'Serbian dinar'), ('rub', 2, 'Russian ruble'), ('rwf', 0, 'Rwandan franc (zero-decimal)'),
  ('sar', 2, 'Saudi riyal'), ('sbd', 2, 'Solomon Islands dollar'), ('scr', 2, 'Seychellois rupee'),
  ('sek', 2, 'Swedish krona'), ('sgd', 2, 'Singapore dollar'), ('shp', 2, 'Saint Helena pound'),
  ('sle', 2, 'Sierra Leonean leone'), ('sos', 2, 'Somali shilling'), ('srd', 2, 'Surinamese dollar'),
  ('std', 2, 'São Tomé and Príncipe dobra'), ('szl', 2, 'Swazi lilangeni'), ('thb', 2, 'Thai baht'),
  ('tjs', 2, 'Tajikistani somoni'),
  ('tnd', 3, 'Tunisian dinar (three-decimal; Stripe: charge amounts end in 0)'),
  ('top', 2, 'Tongan paʻanga'), ('try', 2, 'Turkish lira'), ('ttd', 2, 'Trinidad and Tobago dollar'),
  ('twd', 2, 'New Taiwan dollar (Stripe special case: charges take two decimals; payouts only whole dollars, a multiple of 100)'),
  ('tzs', 2, 'Tanzanian shilling'), ('uah', 2, 'Ukrainian hryvnia'),
  ('ugx', 0, 'Ugandan shilling (zero-decimal; listed among Stripe''s special cases)'),
  ('usd', 2, 'United States dollar'), ('uyu', 2, 'Uruguayan peso'), ('uzs', 2, 'Uzbekistani som'),
  ('vnd', 0, 'Vietnamese đồng (zero-decimal)'), ('vuv', 0, 'Vanuatu vatu (zero-decimal)'), ('wst', 2, 'Samoan tālā'),
  ('xaf', 0, 'Central African CFA franc (zero-decimal)'), ('xcd', 2, 'East Caribbean dollar'),
  ('xof', 0, 'West African CFA franc (zero-decimal)'), ('xpf', 0, 'CFP franc (zero-decimal)'),
  ('yer', 2, 'Yemeni rial'), ('zar', 2, 'South African rand'), ('zmw', 2, 'Zambian kwacha');

-- The table is data the guard and the money display rely on: read by all, written by the owner.
revoke all on marketplace.currencies from public;
grant select on marketplace.currencies to marketplace_reader, marketplace_writer, marketplace_worker, marketplace_operator;

-- NOT VALID: new and updated rows are checked from this commit on; existing rows are checked by
-- the next migration (VALIDATE, which does not block writers), or named by doctor if unknown.
alter table marketplace.seller_transfers
  add constraint seller_transfer_currency_known foreign key (currency) references marketplace.currencies (code) not valid;

------------------------------------------------------------------------------
-- 2. source_transaction: the charge the transfer is funded from. Stripe: "If the transfer has a
-- source_transaction defined, the transfer request automatically succeeds but the transfer
-- itself doesn't occur until the funds from the source_transaction become available";
-- without it a transfer beyond the platform's available balance fails (balance_insufficient)
-- (docs.stripe.com/connect/separate-charges-and-transfers). A charge (ch_) or, for charges on
-- connected accounts and some payment methods, a payment (py_); never a PaymentIntent (pi_).
------------------------------------------------------------------------------
alter table marketplace.seller_transfers add column source_transaction text;
alter table marketplace.seller_transfers
  add constraint seller_transfer_source_transaction_format check (source_transaction ~ '^(ch|py)_[A-Za-z0-9]+$') not valid;
comment on column marketplace.seller_transfers.source_transaction is
  'Optional: the Stripe charge (ch_…) or payment (py_…) this payout is funded from (Stripe''s source_transaction). Written by the service at insert, never changed.';
-- Services write it at INSERT; UPDATE like the other facts they may name, so a change meets the
-- write-once rule (23514) rather than a missing privilege.
grant insert (source_transaction), update (source_transaction) on marketplace.seller_transfers to marketplace_writer;
-- The worker's plain UPDATE reaches the facts a service's does (000017), so the guard answers it.
grant update (source_transaction) on marketplace.seller_transfers to marketplace_worker;

create or replace function marketplace.first_write_once_violation(old marketplace.seller_transfers, new marketplace.seller_transfers)
returns text language sql immutable
set search_path = pg_catalog, pg_temp as $$
  select case
    when old.id is distinct from new.id then 'id'
    when old.order_id is distinct from new.order_id then 'order_id'
    when old.seller_id is distinct from new.seller_id then 'seller_id'
    when old.stripe_account_id is distinct from new.stripe_account_id then 'stripe_account_id'
    when old.amount_cents is distinct from new.amount_cents then 'amount_cents'
    when old.currency is distinct from new.currency then 'currency'
    when old.source_transaction is distinct from new.source_transaction then 'source_transaction'
    when old.created_at is distinct from new.created_at then 'created_at'
    when old.stripe_transfer_id is not null and new.stripe_transfer_id is distinct from old.stripe_transfer_id then 'stripe_transfer_id'
    when old.stripe_reversal_id is not null and new.stripe_reversal_id is distinct from old.stripe_reversal_id then 'stripe_reversal_id'
    when old.reversal_amount_cents is distinct from new.reversal_amount_cents
         and not (new.status = 'reversal_pending' and old.status is distinct from 'reversal_pending') then 'reversal_amount_cents'
  end
$$;

-- As 000017 defines it, with source_transaction among the facts.
create or replace trigger seller_transfer_write_once
  after update of id, order_id, seller_id, stripe_account_id, amount_cents, currency, source_transaction, created_at,
                  stripe_transfer_id, stripe_reversal_id, reversal_amount_cents, stripe_request_in_doubt
  on marketplace.seller_transfers
  for each row
  when (old.id is distinct from new.id or old.order_id is distinct from new.order_id
        or old.seller_id is distinct from new.seller_id or old.stripe_account_id is distinct from new.stripe_account_id
        or old.amount_cents is distinct from new.amount_cents or old.currency is distinct from new.currency
        or old.source_transaction is distinct from new.source_transaction
        or old.created_at is distinct from new.created_at
        or (old.stripe_transfer_id is not null and new.stripe_transfer_id is distinct from old.stripe_transfer_id)
        or (old.stripe_reversal_id is not null and new.stripe_reversal_id is distinct from old.stripe_reversal_id)
        or (old.reversal_amount_cents is distinct from new.reversal_amount_cents
            and not (new.status = 'reversal_pending' and old.status is distinct from 'reversal_pending'))
        or (old.stripe_request_in_doubt and not new.stripe_request_in_doubt
            and marketplace.seller_transfer_authority(current_user) is distinct from 'worker'))
  execute function marketplace.refuse_write_once_change();
comment on trigger seller_transfer_write_once on marketplace.seller_transfers is
  'Money facts (source_transaction included) are fixed at insert, Stripe ids are written once, the reversal amount is chosen with the move into reversal_pending.';

-- The worker's read of a row carries source_transaction (a new result column: drop and create).
drop function marketplace.claim_seller_transfer(uuid, text, timestamptz);
create function marketplace.claim_seller_transfer(transfer_id uuid, task text, lease timestamptz default null)
returns table (outcome text, id uuid, status text, stripe_account_id text, amount_cents bigint, currency text, order_id uuid, seller_id uuid,
               stripe_transfer_id text, reversal_amount_cents bigint, retry_count integer, next_retry_at timestamptz, last_error text,
               stripe_key_generation integer, stripe_request_in_doubt boolean, state_since timestamptz, source_transaction text)
language plpgsql
set search_path = pg_catalog, pg_temp as $$
declare
  wanted     uuid := claim_seller_transfer.transfer_id;
  lock_class integer := 'marketplace.seller_transfers'::regclass::oid::integer;
  lock_key   integer := hashtext(claim_seller_transfer.transfer_id::text);
begin
  if not pg_try_advisory_lock(lock_class, lock_key) then
    outcome := 'busy';
    id := wanted;
    return next;
    return;
  end if;
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
   where t.id = wanted;
  if not found then
    outcome := 'missing';
    id := wanted;
  end if;
  if outcome <> 'claimed' then
    perform pg_advisory_unlock(lock_class, lock_key);
  end if;
  return next;
end $$;
comment on function marketplace.claim_seller_transfer(uuid, text, timestamptz) is
  'Worker: takes the row''s advisory lock and reads the row in one round trip. outcome: claimed (the lock is held), busy, missing or not_actionable (not held).';
revoke execute on function marketplace.claim_seller_transfer(uuid, text, timestamptz) from public;
grant execute on function marketplace.claim_seller_transfer(uuid, text, timestamptz) to marketplace_worker, marketplace_definer;

------------------------------------------------------------------------------
-- 3. Payouts waiting on the platform's balance: Stripe refused the transfer because the
-- platform's available balance was short (balance_insufficient on a pending -> failed row).
-- The worker tries again every BALANCE_RETRY_SECONDS, BALANCE_MAX_ATTEMPTS times, then gives
-- the payout up (permanently_failed): the metric, doctor and the console count them so a
-- person tops the balance up (or the service passes source_transaction) before that.
------------------------------------------------------------------------------
create view marketplace.seller_transfers_waiting_for_funds as
  select t.id, t.amount_cents, t.currency, t.retry_count, t.next_retry_at, t.last_error, t.created_at, t.updated_at
    from marketplace.seller_transfers t
   where t.status = 'failed' and t.stripe_transfer_id is null and t.next_retry_at <> 'infinity'
     and t.last_error like '%balance_insufficient%';
comment on view marketplace.seller_transfers_waiting_for_funds is
  'Payouts Stripe refused for the platform''s available balance (balance_insufficient), retried on the balance schedule until BALANCE_MAX_ATTEMPTS; see docs/runbook.md#sellertransferswaitingforfunds.';
grant select on marketplace.seller_transfers_waiting_for_funds to marketplace_reader, marketplace_writer, marketplace_worker, marketplace_operator;

create function marketplace.doctor_seller_transfer_funds()
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  select 'payouts waiting for the platform''s balance',
         case when count(*) = 0 then 'ok' else 'problem' end,
         case when count(*) = 0 then 'none'
              else format('%s payout(s) refused by Stripe for the platform''s available balance (balance_insufficient): %s; most attempts so far %s',
                          count(*), (select string_agg(format('%s %s', x.n, upper(x.currency)), ', ')
                                       from (select w.currency, count(*) as n from marketplace.seller_transfers_waiting_for_funds w group by w.currency order by 1) x),
                          max(w.retry_count)) end,
         case when count(*) = 0 then ''
              else 'top the platform''s Stripe balance up, then retry them (docs/runbook.md#sellertransferswaitingforfunds); services should pass source_transaction' end
    from marketplace.seller_transfers_waiting_for_funds w
$$;

create function marketplace.doctor_seller_transfer_currencies()
returns table (check_name text, status text, detail text, fix text)
language sql stable
set search_path = pg_catalog, pg_temp as $$
  with unknown as (
    select t.currency, count(*) as n, min(t.id::text) as example
      from marketplace.seller_transfers t
     where not exists (select 1 from marketplace.currencies c where c.code = t.currency)
     group by t.currency
  ), fk as (
    select c.convalidated from pg_constraint c
     where c.conrelid = 'marketplace.seller_transfers'::regclass and c.conname = 'seller_transfer_currency_known'
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
$$;

create or replace function marketplace.seller_transfer_doctor()
returns table (check_name text, status text, detail text, fix text)
language sql stable security definer
set search_path = pg_catalog, pg_temp as $$
  select * from marketplace.doctor_seller_transfer_triggers()
  union all select * from marketplace.doctor_seller_transfer_guard_sync()
  union all select * from marketplace.doctor_seller_transfer_indexes()
  union all select * from marketplace.doctor_seller_transfer_roles()
  union all select * from marketplace.doctor_seller_transfer_definers()
  union all select * from marketplace.doctor_seller_transfer_jobs()
  union all select * from marketplace.doctor_seller_transfer_dispatch()
  union all select * from marketplace.doctor_seller_transfer_workers()
  union all select * from marketplace.doctor_seller_transfer_slos()
  union all select * from marketplace.doctor_seller_transfer_held()
  union all select * from marketplace.doctor_seller_transfer_funds()
  union all select * from marketplace.doctor_seller_transfer_currencies()
  union all select * from marketplace.doctor_seller_transfer_audit()
$$;

revoke all on function marketplace.doctor_seller_transfer_funds(), marketplace.doctor_seller_transfer_currencies() from public;

------------------------------------------------------------------------------
-- 4. A payout carries one reversal: `reversed` is terminal. Stripe allows more partial reversals
-- of one transfer until it is fully reversed, so a second one can be made outside this system
-- (the Stripe Dashboard). The webhook records such a reversal here instead of ignoring it;
-- the console's transfer page lists it, a metric counts it, reconcile reports it.
------------------------------------------------------------------------------
create table marketplace.seller_transfer_external_reversals (
  stripe_reversal_id text primary key check (stripe_reversal_id ~ '^trr_[A-Za-z0-9]+$'),
  transfer_id        uuid not null references marketplace.seller_transfers (id),
  stripe_transfer_id text not null,
  amount_cents       bigint not null check (amount_cents > 0),
  seen_at            timestamptz not null default now(),
  reason             text
);
create index seller_transfer_external_reversals_transfer_idx on marketplace.seller_transfer_external_reversals (transfer_id);
comment on table marketplace.seller_transfer_external_reversals is
  'Reversals Stripe holds for a payout beyond the one the row records (a reversed payout reversed again outside this system, e.g. in the Stripe Dashboard). Written by the webhook; see docs/runbook.md#reversalsmadeoutside.';
revoke all on marketplace.seller_transfer_external_reversals from public;
grant select on marketplace.seller_transfer_external_reversals to marketplace_reader, marketplace_writer, marketplace_worker, marketplace_operator;

create or replace function marketplace.record_external_seller_transfer_reversal(id_hint uuid, stripe_transfer_id text, stripe_reversal_id text, amount_cents bigint, reason text)
returns text language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
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
    values ($3, t.id, $2, $4, reason)
    on conflict on constraint seller_transfer_external_reversals_pkey do nothing;
    return 'extra_reversal';
  end if;
  if t.status not in ('completed', 'reversal_pending') then
    return 'unchanged';
  end if;
  -- Conflicts with the worker's session lock on the same row; released at commit.
  if not pg_try_advisory_xact_lock('marketplace.seller_transfers'::regclass::oid::integer, hashtext(t.id::text)) then
    return 'busy';
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
end $$;
comment on function marketplace.record_external_seller_transfer_reversal(uuid, text, text, bigint, text) is
  'Records a reversal that exists at Stripe but not on the row (webhook transfer.reversed), through legal moves only; amount_differs when the row asks for another amount; extra_reversal (kept in seller_transfer_external_reversals) when a reversed payout was reversed again.';
-- The function runs as its owner since 000017 (marketplace_recorder): it writes the table.
grant select, insert on marketplace.seller_transfer_external_reversals to marketplace_recorder; -- select: ON CONFLICT reads the key

------------------------------------------------------------------------------
-- 5. The history records source_transaction with the other money facts of the insert, and the
-- audit compares it (money_facts_changed). A nullable column without a default: no rewrite.
------------------------------------------------------------------------------
alter table marketplace.seller_transfer_events add column source_transaction text;
comment on column marketplace.seller_transfer_events.source_transaction is
  'Insert events: the source_transaction the transfer was created with (null: none, or an insert before this column existed).';

create or replace function marketplace.record_seller_transfer_inserts()
returns trigger language plpgsql security definer
set search_path = pg_catalog, pg_temp as $$
declare
  -- Evaluated once per statement, not once per row: a bulk statement is one moment, one actor.
  at     timestamptz := clock_timestamp();
  actor  text := coalesce(nullif(current_setting('role'), 'none'), session_user);
  app    text := nullif(current_setting('application_name'), '');
  reason text := nullif(current_setting('marketplace.transition_reason', true), '');
  xid    xid8 := pg_current_xact_id();
begin
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, occurred_at, actor, application_name, reason, xact_id,
                                                  amount_cents, currency, stripe_account_id, authority, stripe_transfer_id, stripe_reversal_id, source_transaction)
  select n.id, null, n.status, at, actor, app, reason, xid, n.amount_cents, n.currency, n.stripe_account_id,
         marketplace.seller_transfer_authority(actor::name), n.stripe_transfer_id, n.stripe_reversal_id, n.source_transaction
    from new_rows n;
  return null;
end $$;

create or replace function marketplace.audit_seller_transfers(since timestamp with time zone DEFAULT NULL::timestamp with time zone)
 RETURNS TABLE(transfer_id uuid, problem text, detail text)
 LANGUAGE plpgsql
 STABLE
 SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$
begin
  -- plpgsql plans this with the value of `since` known, so `since is null` folds away and the
  -- full audit is two sequential scans, one sort and a hash join.
  return query
  with scope as materialized (
    select t.id from marketplace.seller_transfers t where since is not null and t.created_at >= since
    union
    select e.transfer_id from marketplace.seller_transfer_events e where since is not null and e.occurred_at >= since
  ), ev as (
    select e.transfer_id, e.id, e.from_status, e.to_status, e.amount_cents, e.currency, e.stripe_account_id, e.source_transaction,
           e.authority, e.stripe_transfer_id, e.stripe_reversal_id,
           row_number() over w as n,
           lag(e.to_status) over w as prev_to,
           last_value(e.to_status) over (w rows between unbounded preceding and unbounded following) as last_to
      from marketplace.seller_transfer_events e
     where since is null or e.transfer_id in (select s.id from scope s)
    window w as (partition by e.transfer_id order by e.id)
  ), steps as (
    select ev.transfer_id, 'first_event_not_insert'::text as problem,
           format('event %s: %s -> %s, expected the insert (from nothing)', ev.id, ev.from_status, ev.to_status) as detail
      from ev where ev.n = 1 and ev.from_status is not null
    union all
    select ev.transfer_id, 'initial_status_not_initial',
           format('event %s: created as %s, which is not an initial status', ev.id, ev.to_status)
      from ev
      left join marketplace.seller_transfer_statuses s on s.status = ev.to_status
     where ev.n = 1 and ev.from_status is null and not coalesce(s.is_initial, false)
    union all
    select ev.transfer_id, 'broken_chain',
           format('event %s: %s -> %s, but the previous event ended in %s', ev.id, coalesce(ev.from_status, '(insert)'), ev.to_status, ev.prev_to)
      from ev where ev.n > 1 and ev.from_status is distinct from ev.prev_to
    union all
    select ev.transfer_id, 'same_state_step',
           format('event %s: %s -> %s (a same-state update is never recorded)', ev.id, ev.from_status, ev.to_status)
      from ev where ev.n > 1 and ev.from_status = ev.to_status
    union all
    select ev.transfer_id, 'illegal_step',
           format('event %s: %s -> %s is not in seller_transfer_transitions', ev.id, ev.from_status, ev.to_status)
      from ev
      left join marketplace.seller_transfer_transitions tr on tr.from_status = ev.from_status and tr.to_status = ev.to_status
     where ev.n > 1 and ev.from_status is not null and ev.from_status <> ev.to_status and tr.from_status is null
  ), firsts as (
    select ev.transfer_id, ev.id, ev.last_to, ev.from_status, ev.amount_cents, ev.currency, ev.stripe_account_id, ev.source_transaction from ev where ev.n = 1
  ), rows_in_scope as (
    select t.id, t.status, t.amount_cents, t.currency, t.stripe_account_id, t.source_transaction, t.stripe_transfer_id, t.stripe_reversal_id from marketplace.seller_transfers t
     where since is null or t.id in (select s.id from scope s)
  ), rows_vs_history as (
    select coalesce(t.id, l.transfer_id) as transfer_id,
           case when l.transfer_id is null then 'no_history'
                when t.id is null then 'history_without_row'
                else 'status_mismatch' end as problem,
           case when l.transfer_id is null then format('status %s, but no history event', t.status)
                when t.id is null then format('history ends in %s, but there is no such row', l.last_to)
                else format('status %s, but the history ends in %s', t.status, l.last_to) end as detail
      from rows_in_scope t
      full join firsts l on l.transfer_id = t.id
     where l.transfer_id is null or t.id is null or t.status is distinct from l.last_to
  ), facts as (
    select t.id as transfer_id, 'money_facts_changed'::text as problem,
           format('event %s: created as %s %s to %s%s, the row now says %s %s to %s%s', f.id,
                  f.amount_cents, f.currency, f.stripe_account_id, coalesce(' from ' || f.source_transaction, ''),
                  t.amount_cents, t.currency, t.stripe_account_id, coalesce(' from ' || t.source_transaction, '')) as detail
      from rows_in_scope t
      join firsts f on f.transfer_id = t.id and f.from_status is null and f.amount_cents is not null
     where (t.amount_cents, t.currency, t.stripe_account_id, t.source_transaction) is distinct from (f.amount_cents, f.currency, f.stripe_account_id, f.source_transaction)
  ), stripe_ids as (
    -- A Stripe id on the row must be the one the worker recorded with the move that set it. Judged
    -- only where the history records it: rows created, paid or reversed since migration 000017.
    select t.id as transfer_id, 'stripe_id_not_from_worker'::text as problem,
           format('%s %s on the row, but the history %s', k.col, k.on_row,
                  case when r.id is null then 'records no such id'
                       else format('records %s (event %s, by %s)', r.recorded, r.id, coalesce(r.authority, 'unknown')) end) as detail
      from rows_in_scope t
     cross join lateral (values ('stripe_transfer_id', t.stripe_transfer_id, 'completed'),
                                ('stripe_reversal_id', t.stripe_reversal_id, 'reversed')) k(col, on_row, sets_it)
      left join lateral (select ev.id, ev.authority,
                                case k.col when 'stripe_transfer_id' then ev.stripe_transfer_id else ev.stripe_reversal_id end as recorded
                           from ev
                          where ev.transfer_id = t.id
                            and case k.col when 'stripe_transfer_id' then ev.stripe_transfer_id else ev.stripe_reversal_id end is not null
                          order by ev.id desc limit 1) r on true
     where k.on_row is not null
       and exists (select 1 from ev where ev.transfer_id = t.id and ev.authority is not null
                      and (ev.from_status is null or ev.to_status = k.sets_it))
       and (r.id is null or r.recorded is distinct from k.on_row or r.authority is distinct from 'worker')
  )
  select x.transfer_id, x.problem, x.detail from steps x
  union all
  select r.transfer_id, r.problem, r.detail from rows_vs_history r
  union all
  select m.transfer_id, m.problem, m.detail from facts m
  union all
  select i.transfer_id, i.problem, i.detail from stripe_ids i
  order by 1, 2, 3;
end $function$;

-- 000017's definer (doctor) reads every table and runs every function of the schema: the new ones too.
grant select on marketplace.currencies, marketplace.seller_transfers_waiting_for_funds, marketplace.seller_transfer_external_reversals to marketplace_definer;
grant execute on function marketplace.doctor_seller_transfer_funds(), marketplace.doctor_seller_transfer_currencies() to marketplace_definer;
