--! Previous: sha1:80047b587b01d0d8a450a5cb8168ce66daaabd3e
--! Hash: sha1:96032beace7fe48ecf1f0a0e6734b386f2968a5f
--! Message: console sessions

-- The console's sessions in the database (issue 21), so every console process on it knows every
-- login, a restart or a deploy logs nobody out, and logout or expiry ends a session everywhere at
-- once. A row is a login: the SHA-256 of its random token (the cookie holds the token; a copy of
-- this table logs nobody in), the person, their console role, and when it ends. Logout deletes the
-- row; past expires_at it is no session (the console's lookup compares with now()).
-- Only marketplace_console may touch it (granted to the console's login beside the reader and
-- operator roles): not the reader, which would otherwise see who is logged in, nor services.
do $$
begin
  if not exists (select 1 from pg_roles where rolname = 'marketplace_console') then
    create role marketplace_console nologin;
  end if;
end
$$;

create table marketplace.console_sessions (
  token_sha256 bytea primary key check (octet_length(token_sha256) = 32),
  user_name    text not null check (user_name <> '' and length(user_name) <= 64),
  console_role text not null check (console_role in ('viewer', 'operator')),
  created_at   timestamptz not null default now(),
  expires_at   timestamptz not null,
  constraint console_session_ends_after_it_starts check (expires_at > created_at)
);
comment on table marketplace.console_sessions is
  'Console logins (seller-transfers console), shared by its processes: SHA-256 of the session token, the person, the console role, the expiry. Only marketplace_console reads or writes it.';

revoke all on marketplace.console_sessions from public;
grant usage on schema marketplace to marketplace_console;
grant select, insert, delete on marketplace.console_sessions to marketplace_console;

-- The console's doctor page reads as marketplace_reader, like every other page; its migration
-- check lists the applied migrations, graphile-migrate's bookkeeping.
grant usage on schema graphile_migrate to marketplace_reader;
grant select on graphile_migrate.migrations to marketplace_reader;
