// What a pool entity answers to a command: a value for every case, never an exception.
import type {
  InvalidCommandError,
  PoolCommand,
  PoolView,
  Rejection,
  Reply,
} from "../domain/pool.js";

/** A linearizable read of the pool's counters (no decider command, nothing written). */
export interface ReadCommand {
  readonly type: "read";
}

/** A command for a pool entity: a decider command, or a linearizable read of the pool. */
export type EntityCommand = PoolCommand | ReadCommand;

/** Why an entity could not answer now; the caller may retry (same request id) later. */
export type UnavailableReason = "JOURNAL_UNAVAILABLE" | "OWNER_UNAVAILABLE" | "SHARD_RECOVERING";

/** The decider's reply to a command of type `C`: reserve → reserved, release → released, configure and retire → configured. */
export type ReplyTo<C extends PoolCommand> = C extends { readonly type: "reserve" }
  ? Extract<Reply, { readonly type: "reserved" }>
  : C extends { readonly type: "release" }
    ? Extract<Reply, { readonly type: "released" }>
    : Extract<Reply, { readonly type: "configured" }>;

/** The decider accepted a command and every event it produced is durable. */
export interface OkOutcome<R extends Reply = Reply> {
  readonly kind: "ok";
  readonly reply: R;
  /** The pool's version after this command (its own event's seq, or the version it saw). */
  readonly version: number;
  /** The pool's counters right after this command (configure only). */
  readonly view: PoolView | undefined;
}

/** The answer to a `read`; `view` is undefined when the pool was never configured. */
export interface ViewOutcome {
  readonly kind: "view";
  readonly view: PoolView | undefined;
}

/** A domain rejection (an answer, nothing written). */
export interface RejectedOutcome {
  readonly kind: "rejected";
  readonly rejection: Rejection;
  readonly version: number;
}

/** Why a command of any type was not answered (by the entity). */
export type EntityFailure =
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

/**
 * What an answered command of type `C` gets: a write (`PoolCommand`) gets `ok` with the
 * reply its type calls for, or `rejected`; a `read` gets `view`. The type says it, so
 * no caller needs an "unexpected reply" branch.
 */
export type AnsweredOutcome<C extends EntityCommand> = C extends ReadCommand
  ? ViewOutcome
  : C extends PoolCommand
    ? OkOutcome<ReplyTo<C>> | RejectedOutcome
    : never;

/**
 * The answer of a pool entity to one command of type `C`.
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
export type EntityOutcome<C extends EntityCommand = EntityCommand> =
  | AnsweredOutcome<C>
  | EntityFailure;

/** Any entity outcome, whatever the command: what the entity handles internally. */
export type AnyEntityOutcome = OkOutcome | ViewOutcome | RejectedOutcome | EntityFailure;

/**
 * Whether `reply` is the kind of reply `command` calls for ({@link ReplyTo}): the
 * decider's contract, checked once where its replies become typed outcomes.
 */
export function replyFits(command: PoolCommand, reply: Reply): boolean {
  switch (command.type) {
    case "reserve":
      return reply.type === "reserved";
    case "release":
      return reply.type === "released";
    case "configure":
    case "retire":
      return reply.type === "configured";
  }
}
