-- The statements of src/db/ (databases, the migrations' bookkeeping, locks), one named query each
-- (`-- name: x`), loaded by src/db/named-queries.ts. The migrations themselves are the .sql files
-- under migrations/, run as they are.

-- name: create_database_sql
-- The CREATE DATABASE statement for $1 (a copy of template $2 when given), or no row when it
-- exists. Identifiers are quoted by the server.
select format('create database %I', $1::text) || case when $2::text is null then '' else format(' template %I', $2::text) end as sql
 where not exists (select 1 from pg_database where datname = $1);

-- name: drop_database_sql
select format('drop database if exists %I with (force)', $1::text) as sql;

-- name: has_migrations_table
select to_regclass('graphile_migrate.migrations') is not null as ok;

-- name: applied_migrations
select filename from graphile_migrate.migrations order by filename;

-- name: forget_migration
delete from graphile_migrate.migrations where filename = $1;

-- name: invalid_index
-- The invalid index $1 on table $2 that an interrupted concurrent build left, quoted, or no row.
select format('%I.%I', n.nspname, c.relname) as name
  from pg_class c join pg_index i on i.indexrelid = c.oid join pg_namespace n on n.oid = c.relnamespace
 where i.indrelid = to_regclass($2) and not i.indisvalid
   and c.relname = (parse_ident($1))[cardinality(parse_ident($1))];

-- name: lock_blockers
-- The sessions each waiting backend of the migration (found by its application_name) waits for.
select b.pid, b.usename as user, b.application_name as application, b.state,
       round(extract(epoch from now() - coalesce(b.xact_start, b.query_start))::numeric, 1)::float8 as "ageSeconds",
       left(regexp_replace(b.query, '\s+', ' ', 'g'), 200) as query
  from pg_stat_activity w
 cross join lateral unnest(pg_blocking_pids(w.pid)) as bp(pid)
  join pg_stat_activity b on b.pid = bp.pid
 where w.application_name = $1
 order by b.xact_start nulls last;
