// SECURITY DEFINER functions cannot leak privileges: each pins search_path (or, like the guard,
// resolves nothing through it: marketplace.seller_transfer_body_is_path_free, and
// guard-search-path.test.ts under a hostile path) and is owned by one of the three NOLOGIN,
// non-superuser roles made for them, listed from the catalog (a new function that forgets either
// fails here), and doctor says the same.
import { describe, expect, it } from 'vitest';
import { useTestDatabase } from './support/database.ts';

const db = useTestDatabase();
const OWNERS = ['marketplace_admin', 'marketplace_definer', 'marketplace_recorder'];

interface Definer {
  fn: string;
  owner: string;
  superuser: boolean;
  login: boolean;
  config: string[] | null;
  pathFree: string | null;
}

async function definers(c: { query: typeof db.pool.query } = db.pool): Promise<Definer[]> {
  const { rows } = await c.query<Definer>(
    `select p.oid::regprocedure::text as fn, r.rolname as owner, r.rolsuper as superuser, r.rolcanlogin as login, p.proconfig as config,
            marketplace.seller_transfer_body_is_path_free(p.prosrc) as "pathFree"
       from pg_proc p join pg_roles r on r.oid = p.proowner
      where p.pronamespace = 'marketplace'::regnamespace and p.prosecdef order by 1`,
  );
  return rows;
}

describe('SECURITY DEFINER functions', () => {
  it('every one pins search_path (or its body resolves nothing through it) and is owned by a NOLOGIN non-superuser role made for it', async () => {
    const list = await definers();
    expect(list.length).toBeGreaterThanOrEqual(18);
    const unpinned = list.filter((d) => !(d.config ?? []).includes('search_path=pg_catalog, pg_temp')).map((d) => d.fn);
    // The guard's history writers (generated, path-free bodies: the static check below).
    expect(unpinned).toEqual(['marketplace.record_seller_transfer_insert()', 'marketplace.record_seller_transfer_move()']);
    for (const d of list) {
      if (!(d.config ?? []).includes('search_path=pg_catalog, pg_temp')) expect(d.pathFree, d.fn).toBeNull();
      expect(OWNERS, d.fn).toContain(d.owner);
      expect(d.superuser, d.fn).toBe(false);
      expect(d.login, d.fn).toBe(false);
    }
  });

  it("the moves are made by the roles the guard knows: the worker's recordings and the admin functions", async () => {
    const owner = Object.fromEntries((await definers()).map((d) => [d.fn.replace(/\(.*/, ''), d.owner]));
    for (const f of [
      'mark_seller_transfer_paid',
      'mark_seller_transfer_reversed',
      'record_seller_transfer_failure',
      'record_seller_transfer_rate_limited',
      'hold_seller_transfer_for_review',
      'record_external_seller_transfer_reversal',
    ]) {
      expect(owner[`marketplace.${f}`], f).toBe('marketplace_recorder');
    }
    for (const f of ['fail_seller_transfer', 'retry_seller_transfer', 'reverse_seller_transfer'])
      expect(owner[`marketplace.${f}`], f).toBe('marketplace_admin');
  });

  it('every function owned by the recorder or the admin role says who speaks (marketplace.speaker), as the history trigger reads it', async () => {
    const list = await definers();
    const speaking = list.filter((d) => d.owner === 'marketplace_recorder' || d.owner === 'marketplace_admin');
    expect(speaking.length).toBeGreaterThanOrEqual(9);
    for (const d of speaking)
      expect(d.config ?? [], d.fn).toContain(`marketplace.speaker=${d.owner === 'marketplace_recorder' ? 'recorder' : 'admin'}`);
    for (const d of list.filter((x) => !speaking.includes(x)))
      expect(
        (d.config ?? []).some((c) => c.startsWith('marketplace.speaker=')),
        d.fn,
      ).toBe(false);
  });

  it('doctor names a definer function that does not pin search_path or is owned by a superuser', async () => {
    const c = await db.pool.connect();
    try {
      await c.query('begin');
      const ok = await c.query(`select status from marketplace.seller_transfer_doctor() where check_name = 'SECURITY DEFINER functions'`);
      expect(ok.rows).toEqual([{ status: 'ok' }]);
      await c.query(`create function marketplace.leaky() returns int language sql security definer as 'select 1'`);
      const {
        rows: [bad],
      } = await c.query(`select status, detail from marketplace.seller_transfer_doctor() where check_name = 'SECURITY DEFINER functions'`);
      expect(bad.status).toBe('problem');
      expect(bad.detail).toMatch(/marketplace\.leaky\(\) \(search_path not pinned, owned by superuser \w+/);
    } finally {
      await c.query('rollback');
      c.release();
    }
  });
});
