// How the front ends' connections parse column types (pg's types option).
import pg from 'pg';

// bigint columns (amounts, counts) as numbers when exact, so --json prints numbers.
export const types: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === pg.types.builtins.INT8 && format !== 'binary') {
      return (v: string) => (Number.isSafeInteger(Number(v)) ? Number(v) : v);
    }
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};
