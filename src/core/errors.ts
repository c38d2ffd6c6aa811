// What a person asked for cannot be done, said in one message they can act on (a transfer that
// does not exist, input in the wrong form, a database without the migrations). The front ends
// show it as it is: the CLI prints it on one line (src/cli/main.ts), the console on a problem
// page. Any other error is a bug or an outage and is reported as such.
export class UserError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
  }
}

/** The seller transfer asked for does not exist (the console answers 404). */
export class TransferNotFound extends UserError {
  constructor(readonly id: string) {
    super(`seller transfer ${id} not found`);
  }
}
