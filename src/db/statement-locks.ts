// Which table-level lock each statement of a migration takes, read from its text, for
// `migrate --dry-run`. A statement kind the table below does not know, and code whose locks
// depend on what it runs (select f(), do $$…$$), is reported as unknown rather than guessed.
// test/statement-locks.test.ts checks every rule against the locks PostgreSQL really takes.

export type LockMode =
  | 'ACCESS SHARE'
  | 'ROW SHARE'
  | 'ROW EXCLUSIVE'
  | 'SHARE UPDATE EXCLUSIVE'
  | 'SHARE'
  | 'SHARE ROW EXCLUSIVE'
  | 'EXCLUSIVE'
  | 'ACCESS EXCLUSIVE';

export interface LockClaim {
  mode: LockMode | 'none' | 'unknown';
  /** The relation locked, as written (for DROP INDEX: the index, whose table is locked too). */
  target?: string;
  /** True when `target` is an index and the lock falls on its table (DROP INDEX). */
  index?: boolean;
  note?: string;
}

export interface Statement {
  line: number;
  text: string;
}

/** Splits SQL into statements at top-level semicolons (quotes, dollar quotes and comments respected). */
export function splitStatements(sql: string): Statement[] {
  const out: Statement[] = [];
  let start = 0;
  let i = 0;
  const push = (end: number) => {
    const raw = sql.slice(start, end);
    const body = stripComments(raw);
    const text = body.trim();
    if (text) {
      const offset = start + (raw.length - body.length) + (body.length - body.trimStart().length);
      out.push({ line: sql.slice(0, offset).split('\n').length, text });
    }
  };
  while (i < sql.length) {
    const c = sql[i]!;
    if (c === '-' && sql[i + 1] === '-') i = endOf(sql, '\n', i);
    else if (c === '/' && sql[i + 1] === '*') i = endOf(sql, '*/', i + 2);
    else if (c === "'" || c === '"') i = endOf(sql, c, i + 1);
    else if (c === '$' && /^\$[A-Za-z_]*\$/.test(sql.slice(i))) {
      const tag = /^\$[A-Za-z_]*\$/.exec(sql.slice(i))![0];
      i = endOf(sql, tag, i + tag.length);
    } else if (c === ';') {
      push(i);
      start = ++i;
    } else i++;
  }
  push(sql.length);
  return out;
}

function endOf(sql: string, close: string, from: number): number {
  const at = sql.indexOf(close, from);
  return at < 0 ? sql.length : at + close.length;
}

function stripComments(s: string): string {
  return s.replace(/^(\s*(--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/))+/, '');
}

/** A possibly schema-qualified, possibly quoted SQL name (one capture group). */
export const NAME = String.raw`((?:"[^"]+"|[\w$]+)(?:\.(?:"[^"]+"|[\w$]+))?)`;
const r = (src: string) => new RegExp('^' + src.replace(/NAME/g, NAME).replace(/ /g, '\\s+'), 'i');

type Rule = [RegExp, (m: RegExpExecArray, text: string) => LockClaim[]];

const on =
  (mode: LockMode, note?: string) =>
  (m: RegExpExecArray): LockClaim[] => [{ mode, target: m[m.length - 1], ...(note ? { note } : {}) }];
const onIndexTable =
  (mode: LockMode) =>
  (m: RegExpExecArray): LockClaim[] => [{ mode, target: m[1], index: true, note: "on the index's table" }];
const none = (note: string) => (): LockClaim[] => [{ mode: 'none', note }];
const references = (text: string): LockClaim[] =>
  [...text.matchAll(new RegExp(String.raw`\breferences\s+${NAME}`, 'gi'))].map((m) => ({
    mode: 'SHARE ROW EXCLUSIVE' as const,
    target: m[1],
    note: 'referenced table (foreign key)',
  }));

// First match wins: the specific forms come before the general ones.
const RULES: Rule[] = [
  [
    r('create (?:unique )?index concurrently (?:if not exists )?(?:NAME )?on (?:only )?NAME'),
    on('SHARE UPDATE EXCLUSIVE', 'for the whole build; writes go on'),
  ],
  [r('create (?:unique )?index (?:if not exists )?(?:NAME )?on (?:only )?NAME'), on('SHARE', 'for the whole build: blocks writes')],
  [r('drop index concurrently (?:if exists )?NAME'), onIndexTable('SHARE UPDATE EXCLUSIVE')],
  [r('drop index (?:if exists )?NAME'), onIndexTable('ACCESS EXCLUSIVE')],
  [r('alter table (?:if exists )?(?:only )?NAME validate constraint'), on('SHARE UPDATE EXCLUSIVE', 'for the whole scan; writes go on')],
  [r('alter table (?:if exists )?(?:only )?NAME (?:enable|disable) trigger'), on('SHARE ROW EXCLUSIVE')],
  [
    r('alter table (?:if exists )?(?:only )?NAME add (?:constraint NAME )?foreign key'),
    (m, t) => [{ mode: 'SHARE ROW EXCLUSIVE', target: m[1] }, ...references(t)],
  ],
  [r('alter table (?:if exists )?(?:only )?NAME'), (m, t) => [{ mode: 'ACCESS EXCLUSIVE', target: m[1] }, ...references(t)]],
  [r('create (?:or replace )?(?:constraint )?trigger NAME (?:[\\s\\S]*?) on NAME'), on('SHARE ROW EXCLUSIVE')],
  [r('drop trigger (?:if exists )?NAME on NAME'), on('ACCESS EXCLUSIVE')],
  [
    r('create (?:unlogged )?table (?:if not exists )?NAME'),
    (m, t) => [{ mode: 'none', target: m[1], note: 'new table' }, ...references(t)],
  ],
  [r('drop (?:table|view|materialized view) (?:if exists )?NAME'), on('ACCESS EXCLUSIVE')],
  [r('create or replace view NAME'), on('ACCESS EXCLUSIVE', 'when the view exists')],
  [r('create view NAME'), none('new view')],
  [r('comment on (?:table|view) NAME'), on('SHARE UPDATE EXCLUSIVE')],
  [r('comment on column NAME\\.[\\w$"]+ '), on('SHARE UPDATE EXCLUSIVE')],
  [r('comment on'), none('catalog row only')], // on a trigger or constraint too: ACCESS SHARE on its table
  [r('(?:grant|revoke) '), none('catalog row only')],
  [
    r(
      '(?:create|alter|drop) (?:or replace )?(?:function|procedure|aggregate|type|domain|schema|sequence|role|extension|policy|cast|operator)\\b',
    ),
    none('catalog rows only'),
  ],
  [r('insert into NAME'), on('ROW EXCLUSIVE')],
  [r('update (?:only )?NAME'), on('ROW EXCLUSIVE')],
  [r('delete from (?:only )?NAME'), on('ROW EXCLUSIVE')],
  [
    r(
      'lock (?:table )?(?:only )?NAME in (access share|row share|row exclusive|share update exclusive|share row exclusive|share|exclusive|access exclusive) mode',
    ),
    (m) => [{ mode: m[2]!.toUpperCase().replace(/\s+/g, ' ') as LockMode, target: m[1] }],
  ],
  [r('(?:analyze|vacuum)(?: NAME)?'), (m) => [{ mode: 'SHARE UPDATE EXCLUSIVE', target: m[1] ?? 'every table' }]],
  [r('(?:set|reset|begin|commit|start transaction)\\b'), none('session setting')],
  [r('(?:select|do|call|perform)\\b'), () => [{ mode: 'unknown', note: 'runs code: its locks are those of what it runs' }]],
];

export function statementLocks(text: string): LockClaim[] {
  for (const [re, claims] of RULES) {
    const m = re.exec(text);
    if (m) {
      const all = claims(m, text);
      return all.filter((c, i) => all.findIndex((d) => d.mode === c.mode && d.target === c.target) === i);
    }
  }
  return [{ mode: 'unknown', note: 'statement kind not in src/db/statement-locks.ts' }];
}

/** Whether a lock of this mode makes plain writers (INSERT/UPDATE/DELETE: ROW EXCLUSIVE) wait; readers (ACCESS SHARE). */
export function blocks(mode: LockClaim['mode']): { writers: boolean; readers: boolean } {
  return {
    writers: ['SHARE', 'SHARE ROW EXCLUSIVE', 'EXCLUSIVE', 'ACCESS EXCLUSIVE'].includes(mode),
    readers: mode === 'ACCESS EXCLUSIVE',
  };
}
