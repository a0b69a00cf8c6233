// Planning and editing the local cluster's ShardMap. Pure.
import { assignOwners, internal, planShardMap } from "@berth/proto";

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

/** Thrown when the data directory holds a ShardMap made for another shard count. */
export class ShardCountMismatchError extends Error {
  override readonly name = "ShardCountMismatchError";
  readonly previous: number;
  readonly requested: number;
  constructor(previous: number, requested: number, path: string) {
    super(
      `${path} was written for ${previous} shards, but ${requested} were asked for: the shard count is fixed when a data directory is first used (use --shards ${previous}, or another --data-dir)`,
    );
    this.previous = previous;
    this.requested = requested;
  }
}

/** Majority of `workers`: the static quorum local mode uses. */
export function majority(workers: number): number {
  return Math.floor(workers / 2) + 1;
}

/**
 * Plans the map for a (re)started local cluster. Epochs continue from the map the
 * data directory already holds, so a restarted cluster never reuses an epoch its
 * journal has seen. When the workers are the same as last time, the previous
 * assignment is kept (manual moves survive a restart; only the addresses, the
 * revision and the state of a shard left DRAINING by an interrupted move, which is
 * ACTIVE again, change); otherwise the shards are planned afresh.
 */
export function planLocalShardMap(input: {
  readonly members: readonly internal.Member[];
  readonly shardCount: number;
  readonly previous?: internal.ShardMap | undefined;
  readonly previousPath?: string;
}): internal.ShardMap {
  const { previous } = input;
  if (previous !== undefined && previous.shardCount !== input.shardCount) {
    throw new ShardCountMismatchError(
      previous.shardCount,
      input.shardCount,
      input.previousPath ?? "the previous ShardMap",
    );
  }
  if (previous !== undefined && sameMemberIds(previous.members, input.members)) {
    return {
      ...previous,
      revision: previous.revision + 1,
      members: input.members.map((m) => ({ ...m })),
      quorum: majority(input.members.length),
      shards: previous.shards.map((s) =>
        s.state === internal.ShardState.SHARD_STATE_DRAINING
          ? { ...s, state: internal.ShardState.SHARD_STATE_ACTIVE }
          : s,
      ),
    };
  }
  return planShardMap({
    members: input.members,
    shardCount: input.shardCount,
    quorum: majority(input.members.length),
    previous,
  });
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

function sameMemberIds(a: readonly internal.Member[], b: readonly internal.Member[]): boolean {
  const ids = (ms: readonly internal.Member[]) => JSON.stringify(ms.map((m) => m.id).sort());
  return ids(a) === ids(b);
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
