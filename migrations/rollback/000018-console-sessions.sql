-- Down for 000018-console-sessions.sql: the console's sessions table (everyone is logged out) and
-- the reader's view of graphile-migrate's bookkeeping. The role marketplace_console is
-- cluster-wide and kept, like the others; only its grants in this database go.
revoke select on graphile_migrate.migrations from marketplace_reader;
revoke usage on schema graphile_migrate from marketplace_reader;
drop table marketplace.console_sessions;
revoke usage on schema marketplace from marketplace_console;
