// One reconcile of a CapacityPool, pure: from the resource, the published ShardMap,
// owners' reports and the pool's gossiped counters to what the operator should do
// (finalizer, configure command to the owner, status). The adapter carries it out.
import {
  CAPACITY_POOL_FINALIZER,
  type CapacityPool,
  type CapacityPoolStatus,
  type Condition,
  ConditionReason,
  PoolConditionType,
  poolIdOf,
  poolSpecOf,
  setCondition,
} from "@berth/kubernetes";
import { internal, shardOf } from "@berth/proto";
import { type AcceptedSpec, configuresNeeded, specKey } from "../planning/configure-diff.js";
import type { ShardReport } from "../planning/hand-off.js";

const { ShardState } = internal;

/** What the operator last had accepted by an owner for a pool. */
export interface AppliedSpec extends AcceptedSpec {
  readonly owner: string;
  readonly epoch: number;
  /** Counters the owner answered with. */
  readonly reserved: number;
  readonly version: number;
}

/** Why the last configure of this pool failed, when it was refused for its content. */
export interface RejectedSpec {
  readonly key: string;
  readonly message: string;
}

/** What one reconcile of a pool sees. */
export interface PoolObservation {
  readonly pool: CapacityPool;
  readonly map: internal.ShardMap | undefined;
  readonly reports: ReadonlyMap<number, ShardReport>;
  readonly applied: AppliedSpec | undefined;
  readonly rejected: RejectedSpec | undefined;
  /** The pool's counters as gossip last carried them. */
  readonly counters: { readonly reserved: number; readonly version: number } | undefined;
  /** RFC 3339 time for condition transitions. */
  readonly now: string;
}

/** Where to send a configure command. */
export interface ConfigureTarget {
  readonly owner: string;
  readonly address: string;
  readonly epoch: number;
  readonly spec: internal.PoolSpec;
  readonly key: string;
}

/** What to do for one pool, in order: finalizer, configure, status. */
export interface PoolPlan {
  readonly addFinalizer: boolean;
  /** Deleted, retired on its owner: let kube-apiserver remove the object. */
  readonly removeFinalizer: boolean;
  readonly configure: ConfigureTarget | undefined;
  /** The status to write; undefined when the current one is right. */
  readonly status: CapacityPoolStatus | undefined;
}

/**
 * Plans one reconcile. A deleted pool is retired on its owner (`deleted`: Reserve
 * and GetPool then answer POOL_NOT_FOUND, Release RESERVATION_NOT_FOUND, gateways
 * stop listing it, the journal keeps its history) before its finalizer is removed.
 * The retiring spec carries only the pool id and generation, so a spec the owner
 * refused, or one that no longer parses, never holds the deletion up.
 */
export function reconcilePool(o: PoolObservation): PoolPlan {
  const { pool } = o;
  const deleting = pool.metadata.deletionTimestamp !== undefined;
  const hasFinalizer = pool.metadata.finalizers?.includes(CAPACITY_POOL_FINALIZER) ?? false;
  if (deleting && !hasFinalizer) {
    return { addFinalizer: false, removeFinalizer: false, configure: undefined, status: undefined };
  }
  const id = poolIdOf(pool);
  const spec = deleting
    ? internal.PoolSpec.fromPartial({
        pool: id,
        generation: pool.metadata.generation ?? 0,
        deleted: true,
      })
    : poolSpecOf(pool);
  const key = specKey(spec);
  const assignment = o.map === undefined ? undefined : o.map.shards[shardOf(id, o.map.shardCount)];
  const owner =
    assignment !== undefined &&
    assignment.owner !== "" &&
    assignment.state === ShardState.SHARD_STATE_ACTIVE
      ? assignment
      : undefined;
  const serving =
    owner !== undefined && o.reports.get(owner.shard)?.state === "serving"
      ? o.map?.members.find((m) => m.id === owner.owner)
      : undefined;
  const inForce =
    configuresNeeded({
      desired: [spec],
      accepted: () => o.applied,
      placement: () => owner,
    }).length === 0;
  const rejected = o.rejected !== undefined && o.rejected.key === key ? o.rejected : undefined;
  const configure: ConfigureTarget | undefined =
    !inForce && rejected === undefined && owner !== undefined && serving !== undefined
      ? { owner: owner.owner, address: serving.address, epoch: owner.epoch, spec, key }
      : undefined;

  // Counters: the newer of gossip's and the owner's configure answer.
  const fromApplied = o.applied === undefined ? undefined : o.applied;
  const counters =
    o.counters !== undefined &&
    (fromApplied === undefined || o.counters.version >= fromApplied.version)
      ? o.counters
      : fromApplied;
  const reserved = counters?.reserved;
  const capacity = pool.spec.capacity;

  let conditions: Condition[] = [...(pool.status?.conditions ?? [])];
  const generation = pool.metadata.generation;
  const ready = ((): Omit<Condition, "lastTransitionTime"> => {
    const g = generation === undefined ? {} : { observedGeneration: generation };
    if (deleting) {
      return {
        type: PoolConditionType.Ready,
        status: "False",
        reason: ConditionReason.Closing,
        message: "deleted: retiring the pool on its owner before the resource goes",
        ...g,
      };
    }
    if (rejected !== undefined) {
      return {
        type: PoolConditionType.Ready,
        status: "False",
        reason: ConditionReason.SpecRejected,
        message: `the owner refused this spec: ${rejected.message}`,
        ...g,
      };
    }
    if (owner === undefined) {
      return {
        type: PoolConditionType.Ready,
        status: "False",
        reason: ConditionReason.Unassigned,
        message:
          o.map === undefined
            ? "no ShardMap published yet"
            : "its shard has no active owner (being handed off, or below quorum)",
        ...g,
      };
    }
    if (!inForce) {
      return {
        type: PoolConditionType.Ready,
        status: "False",
        reason: ConditionReason.OwnerUnknown,
        message:
          serving === undefined
            ? `waiting for ${owner.owner} to serve shard ${owner.shard}`
            : `configuring on ${owner.owner}`,
        ...g,
      };
    }
    return {
      type: PoolConditionType.Ready,
      status: "True",
      reason: ConditionReason.Configured,
      message: `served by ${owner.owner}`,
      ...g,
    };
  })();
  conditions = setCondition(conditions, ready, o.now);
  if (reserved !== undefined) {
    conditions = setCondition(
      conditions,
      reserved > capacity
        ? {
            type: PoolConditionType.OverCommitted,
            status: "True",
            reason: ConditionReason.CapacityExceeded,
            message: `${reserved} units reserved, capacity ${capacity}: no new reservation until releases bring it below`,
          }
        : {
            type: PoolConditionType.OverCommitted,
            status: "False",
            reason: ConditionReason.WithinCapacity,
            message: `${reserved} of ${capacity} units reserved`,
          },
      o.now,
    );
  }
  const status: CapacityPoolStatus = {
    ...(o.map === undefined ? {} : { shard: shardOf(id, o.map.shardCount) }),
    ...(owner === undefined ? {} : { owner: owner.owner, epoch: owner.epoch }),
    ...(reserved === undefined
      ? {}
      : { reserved, available: Math.max(0, deleting || spec.closed ? 0 : capacity - reserved) }),
    ...(inForce && generation !== undefined
      ? { observedGeneration: generation }
      : pool.status?.observedGeneration === undefined
        ? {}
        : { observedGeneration: pool.status.observedGeneration }),
    conditions,
  };
  return {
    addFinalizer: !deleting && !hasFinalizer,
    removeFinalizer: deleting && inForce,
    configure,
    status: sameJson(pool.status, status) ? undefined : status,
  };
}

function sameJson(a: unknown, b: unknown): boolean {
  return a !== undefined && canonical(a) === canonical(b);
}

/** JSON with object keys sorted, so equal values compare equal. */
export function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>).sort(([p], [q]) => (p < q ? -1 : 1)),
        )
      : x,
  );
}
