// Job payloads are checked at the edge: a job whose payload is not what the trigger writes is a bug
// (or a hand-made job), and fails loudly instead of acting on a wrong row.
import { z } from 'zod';

export const transferJobPayload = z.object({ id: z.uuid() });
export type TransferJobPayload = z.infer<typeof transferJobPayload>;
