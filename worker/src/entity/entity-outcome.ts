// What a pool entity answers to a command: a value for every case, never an exception.
import type {
  InvalidCommandError,
  PoolCommand,
  PoolView,
  Rejection,
  Reply,
} from "../domain/pool.js";

/** A command for a pool entity: a decider command, or a linearizable read of the pool. */
export type EntityCommand = PoolCommand | { readonly type: "read" };

/** Why an entity could not answer now; the caller may retry (same request id) later. */
export type UnavailableReason = "JOURNAL_UNAVAILABLE" | "OWNER_UNAVAILABLE" | "SHARD_RECOVERING";

/**
 * The answer of a pool entity to one command.
 *
 * - `ok`: the decider accepted the command and every event it produced is durable.
 * - `view`: the answer to a `read`; undefined when the pool was never configured.
 * - `rejected`: a domain rejection (an answer, nothing written).
 * - `invalid`: the decider refused a malformed command (a caller bug).
 * - `not_owner`: this entity no longer owns the pool (fenced, or its shard is leaving).
 * - `unavailable`: not answered; for a write the outcome may be unknown, so the caller
 *   retries with the same request id (every command is idempotent).
 * - `deadline_exceeded`: the command's deadline passed before it was decided: nothing written.
 * - `internal`: a bug or a corrupt journal; logged.
 */
export type EntityOutcome =
  | {
      readonly kind: "ok";
      readonly reply: Reply;
      /** The pool's version after this command (its own event's seq, or the version it saw). */
      readonly version: number;
      /** The pool's counters right after this command (configure only). */
      readonly view: PoolView | undefined;
    }
  | { readonly kind: "view"; readonly view: PoolView | undefined }
  | { readonly kind: "rejected"; readonly rejection: Rejection; readonly version: number }
  | { readonly kind: "invalid"; readonly error: InvalidCommandError }
  | { readonly kind: "not_owner"; readonly message: string }
  | {
      readonly kind: "unavailable";
      readonly reason: UnavailableReason;
      readonly message: string;
      readonly retryDelayMs: number;
    }
  | { readonly kind: "deadline_exceeded"; readonly message: string }
  | { readonly kind: "internal"; readonly message: string };
