// What the ownership layer answers: an entity's outcome, or where the pool lives instead.
import type { AnsweredOutcome, EntityCommand, EntityFailure } from "../entity/entity-outcome.js";

/** The pool's shard is not served here (any more); the caller should ask `owner`. */
export interface NotOwnerOutcome {
  readonly kind: "not_owner";
  readonly message: string;
  readonly shard: number;
  /** Epoch of the shard in this worker's ShardMap. */
  readonly epoch: number;
  /** Member id of the owner per this worker's ShardMap, when it is another worker. */
  readonly owner: string | undefined;
  /** host:port of that owner, when known. */
  readonly ownerAddress: string | undefined;
  /** Set while a hand-off is under way (the new owner is not known yet): retry after this. */
  readonly retryDelayMs: number | undefined;
}

/** Why {@link ShardOwnership.execute} did not answer a command, whatever its type. */
export type CommandFailure =
  | Exclude<EntityFailure, { readonly kind: "not_owner" }>
  | NotOwnerOutcome;

/** Every answer of {@link ShardOwnership.execute} to a command of type `C`. */
export type CommandOutcome<C extends EntityCommand = EntityCommand> =
  | AnsweredOutcome<C>
  | CommandFailure;

/** A command's outcome and where it was served. */
export interface ExecuteResult<C extends EntityCommand = EntityCommand> {
  readonly outcome: CommandOutcome<C>;
  /** The pool's shard (undefined while the ShardMap is not known). */
  readonly shard: number | undefined;
  /** This worker's epoch for the shard, when it owns it. */
  readonly epoch: number;
}
