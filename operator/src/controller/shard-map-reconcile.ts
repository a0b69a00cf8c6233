// One reconcile of the install's ShardMap, pure: from what the operator observed
// (the resource, worker Leases, worker reports) to what it should write. The adapter
// (shard-map-controller.ts) reads the cache, calls this and writes the result.
import {
  API_VERSION,
  type Condition,
  ConditionReason,
  SHARD_MAP_KIND,
  ShardMapConditionType,
  type ShardMapObject,
  type ShardMapStatus,
  setCondition,
  shardMapOfResource,
  shardMapStatusOf,
} from "@berth/kubernetes";
import { internal } from "@berth/proto";
import { planHandOff, type ShardChange, type ShardReport } from "../planning/hand-off.js";
import { effectiveQuorum } from "../planning/quorum.js";
import type { ObservedMember } from "./membership.js";

const { ShardState } = internal;

/** What one reconcile of the ShardMap sees. */
export interface ShardMapObservation {
  /** The ShardMap resource from the cache; undefined when it does not exist yet. */
  readonly resource: ShardMapObject | undefined;
  /** Where to create it, and its spec when it must be created. */
  readonly namespace: string;
  readonly name: string;
  readonly shardCount: number;
  /** Quorum when the resource's spec states none (see {@link effectiveQuorum}). */
  readonly defaultQuorum: number | undefined;
  /** Workers, from their Leases. */
  readonly members: readonly ObservedMember[];
  /** What owners report, per shard (see WorkerReports.reportsFor). */
  readonly reports: ReadonlyMap<number, ShardReport>;
  /** Live members asking to leave. */
  readonly leaving: ReadonlySet<string>;
  /** Most shards moving at once. */
  readonly maxMovesInProgress: number;
  /** RFC 3339 time for condition transitions. */
  readonly now: string;
}

/** What to write, if anything. */
export type ShardMapAction =
  | { readonly kind: "create"; readonly object: ShardMapObject }
  | {
      readonly kind: "write-status";
      readonly status: ShardMapStatus;
      readonly map: internal.ShardMap;
      readonly changes: readonly ShardChange[];
      readonly quorumLost: boolean;
      readonly quorumChanged: boolean;
    }
  | {
      readonly kind: "none";
      readonly map: internal.ShardMap;
      readonly quorumLost: boolean;
    }
  | { readonly kind: "unusable"; readonly reason: string };

/** The map of a ShardMap resource whose status was never written: every shard unassigned. */
export function emptyShardMap(shardCount: number, quorum: number): internal.ShardMap {
  return {
    revision: 0,
    shardCount,
    quorum,
    members: [],
    shards: Array.from({ length: shardCount }, (_, shard) => ({
      shard,
      owner: "",
      epoch: 0,
      state: ShardState.SHARD_STATE_UNASSIGNED,
    })),
  };
}

/**
 * Decides the next write. Reconciling again with the result applied and the same
 * observations answers `none`.
 */
export function reconcileShardMap(o: ShardMapObservation): ShardMapAction {
  if (o.resource === undefined) {
    return {
      kind: "create",
      object: {
        apiVersion: API_VERSION,
        kind: SHARD_MAP_KIND,
        metadata: { name: o.name, namespace: o.namespace },
        spec: {
          shardCount: o.shardCount,
          ...(o.defaultQuorum === undefined ? {} : { quorum: o.defaultQuorum }),
        },
      },
    };
  }
  const resource = o.resource;
  const quorum = effectiveQuorum(resource.spec, o.defaultQuorum, o.members.length);
  let previous: internal.ShardMap;
  // Revision 0: no map planned yet (perhaps only conditions were written, below quorum).
  if ((resource.status?.revision ?? 0) < 1) {
    previous = emptyShardMap(resource.spec.shardCount, quorum);
  } else {
    const parsed = shardMapOfResource(resource);
    // Never overwrite a map the operator cannot read: its epochs fence the journal,
    // and planning from a guess could hand a shard to two owners.
    if (!parsed.ok) return { kind: "unusable", reason: parsed.reason };
    previous = parsed.map;
  }
  const live = o.members
    .filter((m) => m.live)
    .map((m): internal.Member => ({ id: m.id, address: m.address }));
  const step = planHandOff({
    previous,
    live,
    quorum,
    reports: o.reports,
    leaving: o.leaving,
    maxMovesInProgress: o.maxMovesInProgress,
  });
  // A quorum change alone is a new revision too: workers and gateways read it from the map.
  let map = step.map;
  if (step.changes.length === 0 && previous.quorum !== quorum && previous.revision > 0) {
    map = { ...previous, revision: previous.revision + 1, quorum };
  }
  const liveIds = new Set(live.map((m) => m.id));
  const moving = map.shards.filter(
    (s) =>
      s.owner !== "" &&
      (s.state === ShardState.SHARD_STATE_DRAINING || o.reports.get(s.shard)?.state !== "serving"),
  ).length;
  let status = withConditions(
    {
      ...shardMapStatusOf(map, {
        live: liveIds,
        ...(resource.status?.conditions === undefined
          ? {}
          : { conditions: [...resource.status.conditions] }),
        ...(resource.metadata.generation === undefined
          ? {}
          : { observedGeneration: resource.metadata.generation }),
      }),
      // Known workers include live ones that own nothing yet.
      memberCount: new Set([...map.members.map((m) => m.id), ...o.members.map((m) => m.id)]).size,
      liveMembers: liveIds.size,
      movingShards: moving,
    },
    { quorumLost: step.quorumLost, live: liveIds.size, quorum, moving, pending: step.pending },
    o.now,
  );
  // Nothing planned yet (below quorum from the start): publish no map, only why.
  if (map.revision === 0) {
    const { revision: _r, members: _m, shards: _s, ...rest } = status;
    status = rest;
  }
  const prevLost =
    resource.status?.conditions?.find((c) => c.type === ShardMapConditionType.QuorumLost)
      ?.status === "True";
  if (map === previous && sameStatus(resource.status, status)) {
    return { kind: "none", map, quorumLost: step.quorumLost };
  }
  return {
    kind: "write-status",
    status,
    map,
    changes: step.changes,
    quorumLost: step.quorumLost,
    quorumChanged: prevLost !== step.quorumLost,
  };
}

function withConditions(
  status: ShardMapStatus,
  f: { quorumLost: boolean; live: number; quorum: number; moving: number; pending: number },
  now: string,
): ShardMapStatus {
  let conditions: Condition[] = [...(status.conditions ?? [])];
  conditions = setCondition(
    conditions,
    f.quorumLost
      ? {
          type: ShardMapConditionType.QuorumLost,
          status: "True",
          reason: ConditionReason.BelowQuorum,
          message: `${f.live} of the ${f.quorum} live workers the quorum needs: the map is frozen, nothing is reassigned`,
        }
      : {
          type: ShardMapConditionType.QuorumLost,
          status: "False",
          reason: ConditionReason.QuorumMet,
          message: `${f.live} live workers, quorum ${f.quorum}`,
        },
    now,
  );
  const progressing = f.moving > 0 || f.pending > 0;
  conditions = setCondition(
    conditions,
    progressing
      ? {
          type: ShardMapConditionType.Progressing,
          status: "True",
          reason: ConditionReason.Moving,
          message: `${f.moving} shards draining or recovering, ${f.pending} not yet on their planned owner`,
        }
      : {
          type: ShardMapConditionType.Progressing,
          status: "False",
          reason: ConditionReason.Settled,
          message: "every shard is served by its planned owner",
        },
    now,
  );
  return { ...status, conditions };
}

/** Equal as JSON, ignoring key order. */
function sameStatus(a: ShardMapStatus | undefined, b: ShardMapStatus): boolean {
  return a !== undefined && canonical(a) === canonical(b);
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x !== null && typeof x === "object" && !Array.isArray(x)
      ? Object.fromEntries(
          Object.entries(x as Record<string, unknown>).sort(([p], [q]) => (p < q ? -1 : 1)),
        )
      : x,
  );
}
