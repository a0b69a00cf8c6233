// When a pool entity saves a snapshot: a pure decision, tested without a journal.
import type { PoolState } from "../domain/pool.js";

/** Events between snapshots when the settings name none. */
export const DEFAULT_SNAPSHOT_EVERY = 100;

/**
 * Whether to snapshot the pool at `version`: none is in flight, and at least
 * `max(every, lastSnapshotEntries)` events were appended since `lastSnapshotSeq`. A pool
 * whose last snapshot listed more reservations than `every` waits for as many events:
 * a snapshot costs time in proportion to the pool's size, so snapshot work per event
 * stays constant as a pool grows, while recovery still replays no more events than the
 * snapshot it starts from lists. Arguments are positional so that the check, made
 * after every commit, allocates nothing.
 *
 * @param lastSnapshotSeq seq of the last snapshot saved or loaded (0: none)
 * @param lastSnapshotEntries {@link snapshotEntries} of the last snapshot taken or loaded
 */
export function snapshotDue(
  version: number,
  lastSnapshotSeq: number,
  lastSnapshotEntries: number,
  snapshotInFlight: boolean,
  every: number,
): boolean {
  return !snapshotInFlight && version - lastSnapshotSeq >= Math.max(every, lastSnapshotEntries);
}

/** How many reservations (active and released) a snapshot of `state` lists: what its cost grows with. */
export function snapshotEntries(state: PoolState): number {
  return state.active.size + state.released.size;
}
