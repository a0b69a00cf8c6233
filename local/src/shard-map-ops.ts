// Manual edits of the local cluster's ShardMap (the control endpoint's moves), pure.
// Planning the map at start is the operator's (planShardMapAtStart in @berth/operator).
import { assignOwners, internal } from "@berth/proto";

/** Thrown when a shard move names a shard or worker that does not exist. */
export class ShardMoveError extends Error {
  override readonly name = "ShardMoveError";
  readonly shard: number;
  readonly to: string;
  constructor(message: string, shard: number, to: string) {
    super(message);
    this.shard = shard;
    this.to = to;
  }
}

/**
 * The first half of a hand-off: the next revision with `shard` DRAINING, same owner,
 * same epoch (its owner finishes in-flight appends and takes no new command).
 *
 * @throws ShardMoveError for a shard out of range or without an owner
 */
export function drainShardInMap(map: internal.ShardMap, shard: number): internal.ShardMap {
  const current = map.shards[shard];
  if (!Number.isSafeInteger(shard) || current === undefined || current.owner === "") {
    throw new ShardMoveError(`shard ${String(shard)} has no owner to drain it`, shard, "");
  }
  const shards = map.shards.map((s) =>
    s === current ? { ...s, state: internal.ShardState.SHARD_STATE_DRAINING } : s,
  );
  return { ...map, revision: map.revision + 1, shards };
}

/**
 * The map after moving one shard to another member: the next revision, the
 * shard's epoch one higher (fencing its old owner), state ACTIVE. Moving a shard
 * to its current owner returns the map unchanged.
 *
 * @throws ShardMoveError for a shard out of range or a worker that is not a member
 */
export function moveShardInMap(
  map: internal.ShardMap,
  shard: number,
  to: string,
): internal.ShardMap {
  if (!Number.isSafeInteger(shard) || shard < 0 || shard >= map.shardCount) {
    throw new ShardMoveError(
      `shard must be an integer from 0 to ${map.shardCount - 1}, got ${String(shard)}`,
      shard,
      to,
    );
  }
  if (!map.members.some((m) => m.id === to)) {
    throw new ShardMoveError(
      `no worker ${JSON.stringify(to)}; members are ${map.members.map((m) => m.id).join(", ")}`,
      shard,
      to,
    );
  }
  const current = map.shards[shard];
  if (current?.owner === to) return map;
  const shards = map.shards.map((s) =>
    s.shard === shard || s === current
      ? {
          shard,
          owner: to,
          epoch: (current?.epoch ?? 0) + 1,
          state: internal.ShardState.SHARD_STATE_ACTIVE,
        }
      : s,
  );
  return { ...map, revision: map.revision + 1, shards };
}

/** Shards whose owner is not the one the default plan (rendezvous over the members) gives. */
export function manualMoves(map: internal.ShardMap): number {
  const planned = assignOwners(
    map.members.map((m) => m.id),
    map.shardCount,
  );
  return map.shards.filter((s) => s.owner !== planned[s.shard]).length;
}

/** How many shards each member owns. */
export function shardsPerMember(map: internal.ShardMap): Map<string, number> {
  const counts = new Map<string, number>(map.members.map((m) => [m.id, 0]));
  for (const s of map.shards) {
    if (s.owner !== "") counts.set(s.owner, (counts.get(s.owner) ?? 0) + 1);
  }
  return counts;
}
