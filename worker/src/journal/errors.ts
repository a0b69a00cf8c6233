/** Thrown when an append's expected version is not the pool's current version: another writer got there first. */
export class VersionConflictError extends Error {
  override readonly name = "VersionConflictError";
  constructor(
    readonly pool: string,
    readonly expectedVersion: number,
    readonly actualVersion: number,
  ) {
    super(
      `journal conflict on pool ${pool}: expected version ${expectedVersion}, found ${actualVersion}`,
    );
  }
}

/** Thrown when a writer's epoch is below the pool's fence: ownership has moved on. */
export class FencedError extends Error {
  override readonly name = "FencedError";
  constructor(
    readonly pool: string,
    readonly epoch: number,
    readonly fenceEpoch: number,
  ) {
    super(`pool ${pool} is fenced at epoch ${fenceEpoch}; writer epoch ${epoch} is stale`);
  }
}

/**
 * Thrown when the journal could not be reached or did not answer in time. For an
 * append the outcome is unknown: the events may or may not have been written.
 */
export class JournalUnavailableError extends Error {
  override readonly name = "JournalUnavailableError";
  constructor(
    message: string,
    readonly outcomeUnknown: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
