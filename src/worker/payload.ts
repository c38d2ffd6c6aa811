// Job payloads are checked at the edge: a job whose payload is not what dispatch writes is a bug
// (or a hand-made job), and fails loudly instead of acting on a wrong row.
// lease: the next_retry_at dispatch gave the row with this job; a task may act on the row when
// it is due or still carries this lease (a hand-made job without one acts only on due rows).
// id: any value of PostgreSQL's uuid type as it prints it (dispatch writes it), RFC 4122 or not:
// z.uuid() refuses ids PostgreSQL accepts (version nibble 0, e.g.), and such a row was never paid.
import { z } from 'zod';

export const POSTGRES_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
export const transferJobPayload = z.object({ id: z.string().regex(POSTGRES_UUID), lease: z.string().optional() });
export type TransferJobPayload = z.infer<typeof transferJobPayload>;
