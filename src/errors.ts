/**
 * A problem with the user's input (a file, a key, a flag, a dataset): the CLI prints its message
 * on one line and exits with code 2, without a stack trace.
 */
export class ReproError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReproError';
  }
}

export function fail(message: string): never {
  throw new ReproError(message);
}
