// Loads one pool from the journal into a PoolState — its snapshot, then the events after
// it — fencing first when asked, retrying with backoff while the journal is unavailable.
import { type BackoffPolicy, backoffDelayMs } from "@berth/proto";
import {
  evolve,
  fromSnapshot,
  initialState,
  type PoolState,
  parsePoolEvent,
} from "../domain/pool.js";
import { FencedError, JournalUnavailableError } from "../journal/errors.js";
import type { Journal, LoadedPool } from "../journal/journal.js";
import { delay } from "./journal-retry.js";

/** How a recovery ended. */
export type RecoveryResult =
  /** The pool's latest state; `snapshotSeq` is the seq of the snapshot it started from (0: none). */
  | { readonly kind: "loaded"; readonly state: PoolState; readonly snapshotSeq: number }
  /** A newer owner holds the pool: its fence is above this owner's epoch. */
  | { readonly kind: "fenced"; readonly error: FencedError }
  /** The journal refused other than by being unavailable, or holds what cannot be replayed. */
  | { readonly kind: "broken"; readonly error: unknown }
  /** {@link RecoveryObserver.beforeAttempt} said to stop. */
  | { readonly kind: "stopped" };

/** The pool to recover, at which owner epoch, and how. */
export interface RecoveryPlan {
  readonly pool: string;
  readonly shard: number;
  readonly epoch: number;
  /** Raise the pool's fence to `epoch` before loading it. */
  readonly fence: boolean;
  /**
   * The pool as `Journal.recoverShard` loaded it: the first attempt replays it instead
   * of fencing and loading, when it was loaded under a fence at `epoch` or above
   * (otherwise it was recorded before the shard's fence, and is ignored).
   */
  readonly loaded: LoadedPool | undefined;
  /** 0 to try at once; 1 to wait one backoff first. */
  readonly firstAttempt: number;
  readonly backoff: BackoffPolicy;
}

/** What a recovery tells its entity between attempts. */
export interface RecoveryObserver {
  /** Called before every attempt (after its backoff); false stops the recovery. */
  beforeAttempt(): boolean;
  /**
   * An attempt failed on an unavailable journal (at its `step`); the next follows after
   * a backoff. `elapsedMs` is the time since the recovery began.
   */
  unavailable(
    error: JournalUnavailableError,
    step: "fence" | "load",
    attempt: number,
    elapsedMs: number,
  ): void;
}

/**
 * Recovers `plan.pool` from `journal`, attempt after attempt (each after a backoff)
 * until it is loaded, fenced, broken, or the observer stops it. Never rejects.
 */
export async function recoverPool(
  journal: Journal,
  plan: RecoveryPlan,
  observer: RecoveryObserver,
): Promise<RecoveryResult> {
  const started = performance.now();
  let given =
    plan.loaded !== undefined && plan.loaded.fenceEpoch >= plan.epoch ? plan.loaded : undefined;
  for (let attempt = plan.firstAttempt; ; attempt++) {
    if (attempt > 0) await delay(backoffDelayMs(attempt, plan.backoff));
    if (!observer.beforeAttempt()) return STOPPED;
    const recovered = given;
    given = undefined;
    if (plan.fence && recovered === undefined) {
      try {
        await journal.fence(plan.pool, plan.shard, plan.epoch);
      } catch (e: unknown) {
        if (e instanceof FencedError) return { kind: "fenced", error: e };
        if (!(e instanceof JournalUnavailableError)) return { kind: "broken", error: e };
        observer.unavailable(e, "fence", attempt, performance.now() - started);
        continue;
      }
    }
    let loaded: LoadedPool;
    let replayed: { readonly state: PoolState; readonly snapshotSeq: number };
    try {
      loaded = recovered ?? (await journal.load(plan.pool));
      replayed = replayPool(plan.pool, loaded);
    } catch (e: unknown) {
      if (e instanceof JournalUnavailableError) {
        observer.unavailable(e, "load", attempt, performance.now() - started);
        continue;
      }
      return { kind: "broken", error: e };
    }
    if (loaded.fenceEpoch > plan.epoch) {
      return { kind: "fenced", error: new FencedError(plan.pool, plan.epoch, loaded.fenceEpoch) };
    }
    return { kind: "loaded", state: replayed.state, snapshotSeq: replayed.snapshotSeq };
  }
}

const STOPPED: RecoveryResult = Object.freeze({ kind: "stopped" });

/**
 * The state of `pool` as `loaded` holds it: its snapshot (or the initial state), then
 * every event after it. Throws when they do not add up to the version the journal
 * reports, or name another pool: the journal is corrupt.
 */
export function replayPool(
  pool: string,
  loaded: LoadedPool,
): { readonly state: PoolState; readonly snapshotSeq: number } {
  let state: PoolState;
  let snapshotSeq = 0;
  if (loaded.snapshot !== undefined) {
    state = fromSnapshot(loaded.snapshot.state);
    snapshotSeq = loaded.snapshot.seq;
    if (state.pool !== pool || state.version !== snapshotSeq) {
      throw new Error(
        `snapshot of pool ${pool} at seq ${snapshotSeq} holds pool ${state.pool} at version ${state.version}`,
      );
    }
  } else {
    state = initialState(pool);
  }
  for (const stored of loaded.events) {
    state = evolve(state, parsePoolEvent(pool, stored.seq, stored.event), stored.seq);
  }
  if (state.version !== loaded.version) {
    throw new Error(
      `pool ${pool} replayed to version ${state.version}, journal says ${loaded.version}`,
    );
  }
  return { state, snapshotSeq };
}
