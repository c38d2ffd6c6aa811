// A text snapshot of everything the migrations own, to prove up -> down -> up is lossless.
import { withConnection } from '../../src/db/connection.ts';

const SNAPSHOT = `
with ns as (select oid, nspname from pg_namespace where nspname = any($1))
select 'schema ' || nspname || ' acl=' || coalesce((select nspacl::text from pg_namespace n where n.oid = ns.oid), '') as line from ns
union all
select format('rel %s.%s kind=%s acl=%s comment=%s', ns.nspname, c.relname, c.relkind, c.relacl, obj_description(c.oid, 'pg_class'))
  from pg_class c join ns on ns.oid = c.relnamespace where c.relkind in ('r', 'v', 'm', 'S', 'p')
union all
select format('col %s.%s.%s %s notnull=%s default=%s identity=%s', ns.nspname, c.relname, a.attname,
              format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity)
  from pg_attribute a join pg_class c on c.oid = a.attrelid join ns on ns.oid = c.relnamespace
  left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
 where a.attnum > 0 and not a.attisdropped and c.relkind in ('r', 'v', 'p')
union all
select format('con %s.%s %s', ns.nspname, conname, pg_get_constraintdef(k.oid))
  from pg_constraint k join ns on ns.oid = k.connamespace
union all
select 'idx ' || pg_get_indexdef(i.indexrelid)
  from pg_index i join pg_class c on c.oid = i.indexrelid join ns on ns.oid = c.relnamespace
union all
select 'trg ' || pg_get_triggerdef(t.oid)
  from pg_trigger t join pg_class c on c.oid = t.tgrelid join ns on ns.oid = c.relnamespace where not t.tgisinternal
union all
select format('fn %s acl=%s comment=%s %s', p.oid::regprocedure, p.proacl, obj_description(p.oid, 'pg_proc'), pg_get_functiondef(p.oid))
  from pg_proc p join ns on ns.oid = p.pronamespace
union all
select format('view %s.%s %s', ns.nspname, c.relname, pg_get_viewdef(c.oid))
  from pg_class c join ns on ns.oid = c.relnamespace where c.relkind = 'v'
order by 1`;

export async function catalogSnapshot(url: string, schemas: string[] = ['marketplace', 'graphile_worker']): Promise<string[]> {
  return withConnection(url, async (c) => {
    const { rows } = await c.query<{ line: string }>(SNAPSHOT, [schemas]);
    const data = await c
      .query<{ line: string }>(
        `
      select format('status %s', row_to_json(s)) as line from marketplace.seller_transfer_statuses s
      union all select format('transition %s', row_to_json(t)) from marketplace.seller_transfer_transitions t
      order by 1`,
      )
      .catch(() => ({ rows: [] as Array<{ line: string }> }));
    return [...rows.map((r) => r.line), ...data.rows.map((r) => r.line)];
  });
}
