// One step of the operator's shard planning, pure. Given the published map, the
// live members and what owners have acknowledged, it returns the next map:
//
// - below quorum nothing moves (the map is frozen; QuorumLost is the caller's to set);
// - a shard whose owner is gone (its Lease expired) or that has no owner goes to its
//   rendezvous owner at once, with epoch + 1 (the journal fence stops the old one);
// - a shard whose live owner is no longer its rendezvous owner is first marked
//   DRAINING (same owner, same epoch); only once that owner acknowledged the drain
//   (in-flight appends finished, no new commands taken) does it move, with epoch + 1;
// - planned moves (drains, plus shards still recovering on their new owners) are
//   bounded, so rebalancing never outpaces recovery; dead owners' shards are not
//   bounded: nobody serves them, so all of them are taken over in one step (and count
//   towards the bound, holding planned moves back until they recover);
// - a live member that is leaving (shutting down) is given nothing: its shards drain
//   and move like any other live owner's.
//
// Applying a step to its own output with the same observations changes nothing.
import { assignOwners, internal } from "@berth/proto";

const { ShardState } = internal;

/** What the operator observed, besides the published map. */
export interface HandOffInput {
  /** The map currently published. */
  readonly previous: internal.ShardMap;
  /** Live members (Lease being renewed), with their addresses. */
  readonly live: readonly internal.Member[];
  /** Static quorum: live members needed to change anything. */
  readonly quorum: number;
  /**
   * What owners last reported per shard (through the worker status channel): the
   * epoch they report for, and whether they serve it or finished draining it. A
   * shard whose live owner has not reported serving its current epoch is recovering.
   */
  readonly reports: ReadonlyMap<number, ShardReport>;
  /**
   * Most shards draining or recovering at once (default 16) before another drain is
   * started. Take-overs of orphaned shards are never held back by it, but count.
   */
  readonly maxMovesInProgress?: number;
  /**
   * Live members that asked to leave (shutting down): they count towards the quorum
   * and keep serving what they own, but are given nothing, so their shards drain and
   * move away. Ignored when no other live member could take their shards.
   */
  readonly leaving?: ReadonlySet<string>;
}

/** An owner's report about one shard. */
export interface ShardReport {
  readonly owner: string;
  readonly epoch: number;
  readonly state: "serving" | "drained";
}

/** Why a shard changed in a step (for Kubernetes Events and logs). */
export type ShardChange =
  | {
      readonly kind: "assigned";
      readonly shard: number;
      readonly to: string;
      readonly epoch: number;
    }
  | {
      readonly kind: "taken-over";
      readonly shard: number;
      readonly from: string;
      readonly to: string;
      readonly epoch: number;
    }
  | {
      readonly kind: "draining";
      readonly shard: number;
      readonly from: string;
      readonly to: string;
    }
  | {
      readonly kind: "handed-off";
      readonly shard: number;
      readonly from: string;
      readonly to: string;
      readonly epoch: number;
    }
  | { readonly kind: "drain-cancelled"; readonly shard: number; readonly owner: string };

/** The next map, and what changed (empty when the map is unchanged). */
export interface HandOffStep {
  readonly map: internal.ShardMap;
  readonly changes: readonly ShardChange[];
  /** True when fewer live members than the quorum: nothing may move. */
  readonly quorumLost: boolean;
  /** Shards not yet on their rendezvous owner after this step. */
  readonly pending: number;
}

/**
 * Plans one step (see the file comment).
 *
 * @throws RangeError when the inputs contradict each other (duplicate members, a
 *   map whose shard list does not match its shard count)
 */
export function planHandOff(input: HandOffInput): HandOffStep {
  const { previous } = input;
  if (previous.shards.length !== previous.shardCount) {
    throw new RangeError(
      `the map lists ${previous.shards.length} shards; its shard count is ${previous.shardCount}`,
    );
  }
  const liveIds = new Set<string>();
  for (const m of input.live) {
    if (m.id === "" || liveIds.has(m.id)) {
      throw new RangeError(
        `live members must have unique non-empty ids, got ${JSON.stringify(m.id)}`,
      );
    }
    liveIds.add(m.id);
  }
  if (input.live.length < input.quorum) {
    return { map: previous, changes: [], quorumLost: true, pending: countPending(previous, []) };
  }
  const staying = [...liveIds].filter((id) => !(input.leaving?.has(id) ?? false));
  const target = assignOwners(staying.length > 0 ? staying : [...liveIds], previous.shardCount);
  const budget = input.maxMovesInProgress ?? 16;
  const reported = (s: internal.ShardAssignment, state: ShardReport["state"]): boolean => {
    const r = input.reports.get(s.shard);
    return r !== undefined && r.owner === s.owner && r.epoch === s.epoch && r.state === state;
  };
  // In progress: draining, or assigned to a live owner that does not serve it yet.
  let inProgress = previous.shards.filter(
    (s) =>
      liveIds.has(s.owner) &&
      (s.state === ShardState.SHARD_STATE_DRAINING || !reported(s, "serving")),
  ).length;
  const shards = previous.shards.map((s, shard) => ({ ...s, shard }));
  const changes: ShardChange[] = [];

  // First: shards nobody serves (no owner, or an owner that is gone). Availability first.
  for (const s of shards) {
    const to = target[s.shard] ?? "";
    if (to === "" || s.owner === to) continue;
    const orphaned = s.owner === "" || !liveIds.has(s.owner);
    if (!orphaned) continue;
    changes.push(
      s.owner === ""
        ? { kind: "assigned", shard: s.shard, to, epoch: s.epoch + 1 }
        : { kind: "taken-over", shard: s.shard, from: s.owner, to, epoch: s.epoch + 1 },
    );
    s.owner = to;
    s.epoch += 1;
    s.state = ShardState.SHARD_STATE_ACTIVE;
    // Its old owner is gone, so it was not counted; it recovers from now on.
    inProgress++;
  }

  // Then: live owners that should hand off.
  for (const s of shards) {
    const to = target[s.shard] ?? "";
    if (s.owner === "" || !liveIds.has(s.owner)) continue;
    if (s.owner === to) {
      if (s.state === ShardState.SHARD_STATE_DRAINING) {
        // The target moved back to the current owner: it serves again (and counts as
        // in progress until it reports serving).
        s.state = ShardState.SHARD_STATE_ACTIVE;
        changes.push({ kind: "drain-cancelled", shard: s.shard, owner: s.owner });
      }
      continue;
    }
    if (s.state === ShardState.SHARD_STATE_DRAINING) {
      if (!reported(s, "drained")) continue;
      changes.push({ kind: "handed-off", shard: s.shard, from: s.owner, to, epoch: s.epoch + 1 });
      s.owner = to;
      s.epoch += 1;
      s.state = ShardState.SHARD_STATE_ACTIVE;
      // Still in progress: it now recovers on its new owner.
      continue;
    }
    if (inProgress >= budget) continue;
    changes.push({ kind: "draining", shard: s.shard, from: s.owner, to });
    s.state = ShardState.SHARD_STATE_DRAINING;
    inProgress++;
  }

  for (const s of shards) {
    if (s.owner === "" && s.state !== ShardState.SHARD_STATE_UNASSIGNED) {
      s.state = ShardState.SHARD_STATE_UNASSIGNED;
    }
  }
  if (changes.length === 0) {
    return { map: previous, changes, quorumLost: false, pending: countPending(previous, target) };
  }
  const map: internal.ShardMap = {
    revision: previous.revision + 1,
    shardCount: previous.shardCount,
    quorum: input.quorum,
    members: membersOf(shards, input.live, previous.members),
    shards,
  };
  return { map, changes, quorumLost: false, pending: countPending(map, target) };
}

/** Live members, plus any member that still owns a shard (a dead owner below quorum, a drainer). */
function membersOf(
  shards: readonly internal.ShardAssignment[],
  live: readonly internal.Member[],
  before: readonly internal.Member[],
): internal.Member[] {
  const byId = new Map(live.map((m) => [m.id, { id: m.id, address: m.address }]));
  const owners = new Set(shards.map((s) => s.owner));
  for (const m of before) {
    if (owners.has(m.id) && !byId.has(m.id)) byId.set(m.id, { id: m.id, address: m.address });
  }
  return [...byId.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function countPending(map: internal.ShardMap, target: readonly string[]): number {
  if (target.length === 0) return map.shards.filter((s) => s.owner === "").length;
  return map.shards.filter(
    (s, i) => s.owner !== target[i] || s.state !== ShardState.SHARD_STATE_ACTIVE,
  ).length;
}
