// Job payloads are checked at the edge: a job whose payload is not what dispatch writes is a bug
// (or a hand-made job), and fails loudly instead of acting on a wrong row.
// lease: the next_retry_at dispatch gave the row with this job; a task may act on the row when
// it is due or still carries this lease (a hand-made job without one acts only on due rows).
import { z } from 'zod';

export const transferJobPayload = z.object({ id: z.uuid(), lease: z.string().optional() });
export type TransferJobPayload = z.infer<typeof transferJobPayload>;
