// What a decided command answers, and whether the journal must confirm it before the
// answer goes out: an answer that rests on the entity's in-memory state is true only if
// that state is still the pool's latest and this entity still owns the pool.
import {
  type PoolCommand,
  type PoolState,
  poolView,
  type Rejection,
  type Reply,
} from "../domain/pool.js";
import type { AnyEntityOutcome } from "./entity-outcome.js";

/** A decided command's outcome; `confirm`: answer it only once the journal confirmed the state it rests on. */
export interface DecidedAnswer {
  readonly outcome: AnyEntityOutcome;
  readonly confirm: boolean;
}

/** A read: the counters of `state`, to confirm (a newer owner may have written since). */
export function readAnswer(state: PoolState): DecidedAnswer {
  return { outcome: { kind: "view", view: poolView(state) }, confirm: true };
}

/** A domain rejection against `state`, to confirm (against a newer state it may not hold). */
export function rejectedAnswer(rejection: Rejection, state: PoolState): DecidedAnswer {
  return { outcome: { kind: "rejected", rejection, version: state.version }, confirm: true };
}

/**
 * An accepted command's answer, given `state` after its events were applied.
 *
 * @param wroteEvents whether its decision produced events (they go in this batch's append)
 * @param failedFromVersion expectedVersion of the first failed append that carried this
 *   command's events, whose outcome was unknown (undefined: none failed)
 */
export function acceptedAnswer(
  command: PoolCommand,
  reply: Reply,
  wroteEvents: boolean,
  state: PoolState,
  failedFromVersion: number | undefined,
): DecidedAnswer {
  let answered = reply;
  if (
    answered.type === "reserved" &&
    answered.replayed &&
    failedFromVersion !== undefined &&
    answered.reservationSeq > failedFromVersion
  ) {
    // The reservation is this very command's own earlier append, whose
    // outcome was unknown: for its caller this is the first answer.
    answered = { ...answered, replayed: false };
  }
  return {
    outcome: {
      kind: "ok",
      reply: answered,
      version: state.version,
      view: command.type === "configure" || command.type === "retire" ? poolView(state) : undefined,
    },
    // A reservation that exists, or a release already done, stays true whoever owns
    // the pool now; "configure changed nothing" does not (a newer owner may have
    // configured something else since).
    confirm: !wroteEvents && answered.type === "configured",
  };
}
