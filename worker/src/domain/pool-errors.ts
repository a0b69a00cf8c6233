/**
 * Errors thrown by the pool decider. These are programming or storage errors,
 * never answers: a refused command is a `Rejection` value, not an exception.
 */

/**
 * Thrown when `decide` gets a malformed command (e.g. units not a positive
 * integer). The gateway validates requests first, so this is a bug in the caller.
 */
export class InvalidCommandError extends Error {
  override readonly name = "InvalidCommandError";
  constructor(
    readonly pool: string,
    readonly commandType: string,
    readonly field: string,
    readonly problem: string,
  ) {
    super(`invalid ${commandType} command for pool ${pool}: ${field} ${problem}`);
  }
}

/** Thrown when `evolve` is given an event whose seq is not the state's version + 1. */
export class EventSequenceError extends Error {
  override readonly name = "EventSequenceError";
  constructor(
    readonly pool: string,
    readonly expectedSeq: number,
    readonly actualSeq: number,
  ) {
    super(
      `pool ${pool}: event seq ${actualSeq} applied at version ${expectedSeq - 1}; expected seq ${expectedSeq}`,
    );
  }
}

/**
 * Thrown when an event is malformed or cannot apply to the state (a `released`
 * for a reservation that is not active, a repeated request id, …): the journal
 * holds something `decide` never emits.
 */
export class InvalidEventError extends Error {
  override readonly name = "InvalidEventError";
  constructor(
    readonly pool: string,
    readonly seq: number,
    readonly problem: string,
  ) {
    super(`pool ${pool}: invalid event at seq ${seq}: ${problem}`);
  }
}

/** Thrown when `fromSnapshot` is given something that is not a valid pool snapshot. */
export class CorruptSnapshotError extends Error {
  override readonly name = "CorruptSnapshotError";
  /**
   * @param path where in the snapshot the problem is, e.g. `active[3][1]`
   * @param problem what is wrong there
   */
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`corrupt pool snapshot: ${path} ${problem}`);
  }
}
