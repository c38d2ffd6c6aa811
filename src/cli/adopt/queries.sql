-- seller-transfers adopt (docs/adopting.md). Fixed queries read the catalog; the templates (names
-- ending in _template) hold {{placeholders}} that map.ts fills from the column map: the legacy
-- table's quoted name, the mapped select list (each map expression AS its project column, over the
-- legacy row aliased l), column lists. Nothing else is ever spliced in.

-- name: set_application_name
-- adopt's lock steps are watched (and their blockers named) by this name, as migrate's are.
select pg_catalog.set_config('application_name', $1, false);

-- name: relation
-- The table (or, after the switch, the view) the DBA named, and its size for the lock estimates.
select pg_catalog.format('%I.%I', n.nspname, c.relname) as name, c.relkind::text as kind, n.nspname as schema, c.relname as relname,
       greatest(c.reltuples, 0)::bigint as estimated_rows, pg_catalog.pg_total_relation_size(c.oid)::bigint as bytes
  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
 where c.oid = pg_catalog.to_regclass($1);

-- name: columns
-- A relation's columns in order, with their type and default (the view under the legacy name
-- shows the legacy types and takes the legacy defaults), and which ones a service may insert.
select a.attname::text as name, pg_catalog.format_type(a.atttypid, a.atttypmod) as type,
       pg_catalog.pg_get_expr(d.adbin, d.adrelid) as default_expr, a.attnotnull as not_null,
       pg_catalog.has_column_privilege('marketplace_writer', a.attrelid, a.attnum, 'INSERT') as writer_inserts
  from pg_catalog.pg_attribute a
  left join pg_catalog.pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
 where a.attrelid = pg_catalog.to_regclass($1) and a.attnum > 0 and not a.attisdropped
 order by a.attnum;

-- name: foreign_keys_to
-- Foreign keys of other tables that point at a relation: re-pointed at the switch (and by undo).
select con.conname::text as name, con.conrelid::regclass::text as table_name, pg_catalog.pg_get_constraintdef(con.oid) as definition,
       con.convalidated as validated
  from pg_catalog.pg_constraint con
 where con.contype = 'f' and con.confrelid = pg_catalog.to_regclass($1) and con.conrelid <> con.confrelid
   and con.conrelid::regclass::text not like 'marketplace.%'
 order by 2, 1;

-- name: triggers_on
select t.tgname::text as name, pg_catalog.pg_get_triggerdef(t.oid) as definition
  from pg_catalog.pg_trigger t
 where t.tgrelid = pg_catalog.to_regclass($1) and not t.tgisinternal
 order by 1;

-- name: table_grants
-- The legacy table's grants, as statements for the view that takes its name.
select pg_catalog.format('grant %s on %s to %s', a.privilege_type, $2::text,
                         case when a.grantee = 0 then 'public' else a.grantee::regrole::text end) as statement
  from pg_catalog.pg_class c cross join lateral pg_catalog.aclexplode(c.relacl) a
 where c.oid = pg_catalog.to_regclass($1) and a.grantee <> c.relowner;

-- name: live_workers
-- seller-transfers workers that reported within two minutes: they should wait for the switch
-- (docs/adopting.md#handover).
select count(*)::int as count from marketplace.seller_transfer_worker_heartbeats
 where stopped_at is null and last_seen_at > now() - interval '2 minutes';

-- name: adoption
select legacy_table, kept_as, map, step, rows_copied, copy_cursor::text as copy_cursor, switched_at, finished_at
  from marketplace.seller_transfer_adoptions where legacy_table = $1;

-- name: start_adoption
insert into marketplace.seller_transfer_adoptions (legacy_table, kept_as, map) values ($1, $2, $3)
on conflict (legacy_table) do update set kept_as = excluded.kept_as, map = excluded.map, step = 'capture', rows_copied = 0,
  copy_cursor = null, started_at = now(), switched_at = null, finished_at = null, undone_at = null
 where marketplace.seller_transfer_adoptions.step = 'undone';

-- name: set_step
update marketplace.seller_transfer_adoptions
   set step = $2, switched_at = case when $2 = 'switched' then now() else switched_at end,
       finished_at = case when $2 = 'done' then now() else finished_at end,
       undone_at = case when $2 = 'undone' then now() else undone_at end
 where legacy_table = $1;

-- name: set_cursor
update marketplace.seller_transfer_adoptions set copy_cursor = $2, rows_copied = rows_copied + $3 where legacy_table = $1;

-- name: lock_timeout
-- Every lock-taking step runs under migrate's lock_timeout (MIGRATION_LOCK_TIMEOUT_MS), retried.
select pg_catalog.set_config('lock_timeout', $1 || 'ms', true);

-- name: replica_role
-- Adopted rows enter past the insert triggers (a row in completed is not a new payout), in this
-- transaction only; adopt_rows_template checks each with seller_transfer_adoption_problems and
-- writes its adopted event itself.
select pg_catalog.set_config('session_replication_role', 'replica', true);

-- name: origin_role
-- Back to the guard: a legacy write replayed during the adoption is an UPDATE the guard judges.
select pg_catalog.set_config('session_replication_role', 'origin', true),
       pg_catalog.set_config('marketplace.transition_reason', 'a legacy write made while seller-transfers adopt run copied the table', true);

-- name: create_capture_trigger
-- Takes SHARE ROW EXCLUSIVE on the legacy table for a moment (waits for its open writes, under
-- lock_timeout): every write after it is noted, every write before it is committed for the copy.
select pg_catalog.format('create trigger seller_transfer_adoption_capture after insert or update or delete on %s for each row execute function marketplace.note_seller_transfer_adoption_change(%L)',
                         $1::text, $1::text) as statement
 where not exists (select 1 from pg_catalog.pg_trigger where tgrelid = pg_catalog.to_regclass($1) and tgname = 'seller_transfer_adoption_capture');

-- name: take_changes
delete from marketplace.seller_transfer_adoption_changes c
 where c.legacy_table = $1
   and c.id in (select x.id from marketplace.seller_transfer_adoption_changes x where x.legacy_table = $1 limit $2 for update skip locked)
returning c.id::text as id;

-- name: changes_left
select count(*)::bigint as count from marketplace.seller_transfer_adoption_changes where legacy_table = $1;

-- name: lock_exclusive
select pg_catalog.format('lock table %s in access exclusive mode', $1::text) as statement;

-- name: plan_status_counts_template
select l.status::text as status, count(*)::bigint as count from {{legacy}} l group by 1 order by 2 desc, 1;

-- name: plan_findings_template
-- Every finding that would make the guard refuse a row or money wrong, with its count and five ids.
with m as materialized (select {{mapped}} from {{legacy}} l),
-- (the row built once per legacy row, OFFSET 0, and the rules inlined: seller_transfer_adoption_problem_list)
p as (select x.id, pl.problems
        from (select m.id, jsonb_populate_record(null::marketplace.seller_transfers, to_jsonb(m)) as r from m offset 0) x
       cross join lateral marketplace.seller_transfer_adoption_problem_list(x.r) pl(problems)),
found as (
  select x.problem, p.id from p cross join lateral unnest(p.problems) x(problem)
  union all
  select 'shared_stripe_transfer_id', m.id from m
   where m.stripe_transfer_id is not null and exists (select 1 from m o where o.stripe_transfer_id = m.stripe_transfer_id and o.id <> m.id)
  union all
  select 'shared_stripe_reversal_id', m.id from m
   where m.stripe_reversal_id is not null and exists (select 1 from m o where o.stripe_reversal_id = m.stripe_reversal_id and o.id <> m.id)
  union all
  select 'id_already_in_marketplace', m.id from m where exists (select 1 from marketplace.seller_transfers t where t.id = m.id)
)
select problem, count(*)::bigint as count, (array_agg(id::text order by id))[1:5] as ids from found group by problem order by problem;

-- name: plan_ids_taken_template
-- What adopt run checks before it starts instead of plan's full scan (each batch is checked as it
-- is copied): an id marketplace.seller_transfers already holds would be skipped by the copy's
-- ON CONFLICT, as a row copied before a kill -9 is. Driven by the smaller table.
select 'id_already_in_marketplace' as problem, count(*)::bigint as count, (array_agg(t.id::text order by t.id))[1:5] as ids
  from marketplace.seller_transfers t
 where exists (select 1 from {{legacy}} l where l.id = t.id)
having count(*) > 0;

-- name: adopt_rows_template
-- Copies legacy rows (those {{where}} selects) into marketplace.seller_transfers with one adopted
-- event each; rows already there are left alone (a batch after a kill -9, a row copied by the
-- sync). Runs under replica_role: the caller rolls back when problems is not null.
with src as (select {{mapped}}, {{handover_group}} as handover_transfer_group, {{handover_metadata}} as handover_metadata
               from {{legacy}} l where {{where}}),
ins as (
  insert into marketplace.seller_transfers ({{cols}}) select {{cols}} from src
  on conflict (id) do nothing
  returning *
),
ev as (
  insert into marketplace.seller_transfer_events (transfer_id, from_status, to_status, actor, application_name, reason, amount_cents, currency,
                                                  stripe_account_id, stripe_transfer_id, stripe_reversal_id, source_transaction, action)
  select i.id, null, i.status, current_user, nullif(current_setting('application_name'), ''),
         format('adopted from %s: %s since before the adoption (created_at %s, updated_at %s)', {{legacy_literal}}, i.status, i.created_at, i.updated_at),
         i.amount_cents, i.currency, i.stripe_account_id, i.stripe_transfer_id, i.stripe_reversal_id, i.source_transaction, 'adopted'
    from ins i
  returning transfer_id
),
handover as (
  -- What the legacy worker's transfer carries, when the map names it (docs/adopting.md#handover).
  insert into marketplace.seller_transfer_adoption_handover (transfer_id, transfer_group, metadata)
  select s.id, s.handover_transfer_group, s.handover_metadata from src s join ins i on i.id = s.id
   where s.handover_transfer_group is not null or s.handover_metadata <> '{}'::jsonb
  on conflict (transfer_id) do nothing
  returning transfer_id
)
select (select count(*) from src)::int as read,
       (select s.id::text from src s order by s.id desc limit 1) as last_id,
       (select count(*) from ev)::int as adopted,
       (select count(*) from handover)::int as handed_over,
       (select json_agg(json_build_object('id', i.id, 'problems', x.problems))
          from ins i cross join lateral marketplace.seller_transfer_adoption_problem_list(row(i.*)::marketplace.seller_transfers) x(problems)
         where cardinality(x.problems) > 0) as problems;

-- name: sync_update_template
-- A legacy write made during the copy, replayed on the adopted row through the guard (owner
-- authority; an illegal move is refused as any other). Only the columns the legacy row holds.
with m as (select {{mapped}} from {{legacy}} l where l.id = any($1::uuid[]))
update marketplace.seller_transfers t set ({{direct}}) = row({{m_direct}})
  from m where t.id = m.id and ({{t_direct}}) is distinct from ({{m_direct}});

-- name: sync_delete_template
delete from marketplace.seller_transfers t
 where t.id = any($1::uuid[]) and not exists (select 1 from {{legacy}} l where l.id = t.id);

-- name: verify_template
-- Every row under the legacy name against marketplace.seller_transfers (each mapped column) and
-- its history (an adopted or insert event carrying its money facts).
with m as materialized (select {{mapped}} from {{legacy}} l)
select coalesce(m.id, t.id)::text as id,
       case when t.id is null then 'missing_in_marketplace' when m.id is null then 'missing_under_legacy_name' else 'differs' end as problem
  from m full join marketplace.seller_transfers t on t.id = m.id
 where m.id is null or t.id is null or ({{m_all}}) is distinct from ({{t_all}})
union all
select t.id::text, 'no_first_event' from marketplace.seller_transfers t
 where not exists (select 1 from marketplace.seller_transfer_events e
                    where e.transfer_id = t.id and e.from_status is null
                      and (e.amount_cents, e.currency, e.stripe_account_id) is not distinct from (t.amount_cents, t.currency, t.stripe_account_id))
order by 2, 1;

-- name: audit_problems
select transfer_id::text as id, problem from marketplace.audit_seller_transfers() order by 1, 2;

-- name: undo_refusals
-- undo gives rows back to a table without the guard: never one whose Stripe request is in doubt
-- or that a worker is acting on right now (claims are few: read from them, not from every row).
select t.id::text as id from marketplace.seller_transfers t where t.stripe_request_in_doubt
union
select c.transfer_id::text from marketplace.seller_transfer_claims c where marketplace.seller_transfer_claimed(c.transfer_id)
limit 5;

-- name: undo_create_capture
-- undo's capture: every write on marketplace.seller_transfers (through the view or by the worker)
-- from now on is noted, so the rows copied back in batches are copied again before undo's switch.
-- CREATE TRIGGER takes SHARE ROW EXCLUSIVE on marketplace.seller_transfers for a moment.
select pg_catalog.format('create trigger seller_transfer_adoption_undo_capture after insert or update or delete on marketplace.seller_transfers for each row execute function marketplace.note_seller_transfer_adoption_change(%L)',
                         $1::text) as statement
 where not exists (select 1 from pg_catalog.pg_trigger
                    where tgrelid = 'marketplace.seller_transfers'::regclass and tgname = 'seller_transfer_adoption_undo_capture');

-- name: undo_drop_capture
drop trigger if exists seller_transfer_adoption_undo_capture on marketplace.seller_transfers;

-- name: undo_copy_back_template
-- One batch of the rows as they are now, under the legacy columns, into the kept table (its own
-- triggers off: updated_at stays what the row says); a row already the same is not written again.
-- {{where}}: a keyset batch ($1 cursor, $2 rows) or the noted ids ($1).
with b as (select {{legacy_cols}} from {{legacy}} v where {{where}}),
up as (
  insert into {{kept}} as k ({{legacy_cols}}) select {{legacy_cols}} from b
  on conflict (id) do update set ({{legacy_cols}}) = row({{excluded_cols}})
   where ({{k_cols}}) is distinct from ({{excluded_cols}})
  returning 1
)
select (select count(*) from b)::int as read, (select b.id::text from b order by b.id desc limit 1) as last_id,
       (select count(*) from up)::int as written;

-- name: undo_delete_gone_template
-- Rows deleted under the legacy name since the switch (or, with $1, among the noted ids).
delete from {{kept}} k where ($1::uuid[] is null or k.id = any($1::uuid[])) and not exists (select 1 from {{legacy}} v where v.id = k.id);

-- name: undo_set_aside_batch_template
-- After undo's switch, outside any lock a writer waits for: one batch of the rows given back
-- ({{legacy}} is the table again) leaves marketplace.seller_transfers, their history kept in
-- seller_transfer_events_set_aside, what adopt run stored for their handover removed.
with b as materialized (
  select t.id from marketplace.seller_transfers t
   where t.id > $1::uuid and exists (select 1 from {{legacy}} l where l.id = t.id)
   order by t.id limit $2
),
moved as (delete from marketplace.seller_transfer_events e where e.transfer_id in (select b.id from b) returning e.*),
aside as (insert into marketplace.seller_transfer_events_set_aside select m.*, now(), {{legacy_literal}} from moved m returning 1),
handover as (delete from marketplace.seller_transfer_adoption_handover h where h.transfer_id in (select b.id from b) returning 1),
gone as (delete from marketplace.seller_transfers t where t.id in (select b.id from b) returning 1)
select (select count(*) from gone)::int as removed, (select b.id::text from b order by b.id desc limit 1) as last_id,
       (select count(*) from aside)::int as events, (select count(*) from handover)::int as handover;

-- name: abandon_refusals_template
-- Before the switch the copies are dropped, never one the project's worker acted on: its Stripe
-- call would be forgotten and the legacy worker would pay the row again.
select e.transfer_id::text as id from marketplace.seller_transfer_events e
 where e.transfer_id in (select l.id from {{legacy}} l) and e.authority = 'worker'
 limit 5;

-- name: undo_forget_changes
delete from marketplace.seller_transfer_adoption_changes where legacy_table = $1;

-- name: count_rows_template
select count(*)::bigint as count from {{legacy}};

-- name: drop_capture_template
drop trigger if exists seller_transfer_adoption_capture on {{legacy}};

-- name: rename_template
-- Under the switch's ACCESS EXCLUSIVE lock: a catalog change, no rewrite.
alter table {{from}} rename to {{to}};

-- name: repoint_fk_template
-- The referencing table's key now points at the same ids in another table. NOT VALID: no scan
-- under the lock; validate_fk_template checks the rows afterwards, writers going on.
alter table {{table}} drop constraint {{name}}, add constraint {{name}} {{definition}} not valid;

-- name: validate_fk_template
alter table {{table}} validate constraint {{name}};

-- name: view_template
-- The legacy name answers every SELECT with the legacy columns and types, from the project's table.
create view {{legacy}} as select {{columns}} from marketplace.seller_transfers t;

-- name: view_default_template
alter view {{legacy}} alter column {{column}} set default {{default}};

-- name: view_function_template
-- A legacy statement on the view becomes the same write on marketplace.seller_transfers, made as
-- the legacy role (not a definer): the guard judges it as any service's write. INSERT: the
-- columns a service may insert, from the map ({{insert_columns}}). UPDATE: only the columns the
-- statement changed (a service may not write the worker's). DELETE: refused for a row Stripe saw.
create function {{function}}() returns trigger language plpgsql set search_path = pg_catalog, pg_temp as $adopt$
declare
  sets text[] := '{}';
begin
  if tg_op = 'INSERT' then
    insert into marketplace.seller_transfers ({{insert_columns}})
    select {{insert_values}} from (select new.*) l;
    return new;
  elsif tg_op = 'UPDATE' then
{{update_checks}}
    if cardinality(sets) > 0 then
{{touch_updated_at}}
      execute format('update marketplace.seller_transfers set %s where id = $2', array_to_string(sets, ', ')) using new, old.id;
    end if;
    return new;
  else
    delete from marketplace.seller_transfers where id = old.id;
    return old;
  end if;
end $adopt$;

-- name: view_trigger_template
create trigger seller_transfer_adopted_write instead of insert or update or delete on {{legacy}}
  for each row execute function {{function}}();

-- name: view_comment_template
comment on view {{legacy}} is {{comment}};

-- name: undo_drop_view_template
drop view {{legacy}};

-- name: undo_drop_function_template
drop function if exists {{function}}();
