/**
 * A malformed command line. Every Berth program (worker, gateway, operator, `berth`,
 * `npm start`) throws this from its argument parser; its main prints the message with
 * the usage text and exits with status 2.
 */
export class UsageError extends Error {
  override readonly name = "UsageError";
  /** The subcommand whose usage applies (the `berth` CLI), when there is one. */
  readonly topic: string | undefined;
  constructor(
    message: string,
    options?: { readonly topic?: string | undefined; readonly cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.topic = options?.topic;
  }
}
