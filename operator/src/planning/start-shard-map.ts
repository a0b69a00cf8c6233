// The ShardMap of a cluster (re)started with a fixed set of members (local mode's
// workers), planned before any of them runs. Pure.
import { internal, planShardMap } from "@berth/proto";
import { majority } from "./quorum.js";

/** Thrown when the previous ShardMap was made for another shard count. */
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

/** Input of {@link planShardMapAtStart}. */
export interface StartShardMapInput {
  /** Every member of the cluster, with the addresses they will serve on. */
  readonly members: readonly internal.Member[];
  readonly shardCount: number;
  /** The map the previous run published, if any. */
  readonly previous?: internal.ShardMap | undefined;
  /** Where `previous` was read from, for the error message. */
  readonly previousPath?: string;
}

/**
 * Plans the map of a (re)started cluster, with a majority quorum. Epochs continue
 * from the previous map, so a restarted cluster never reuses an epoch its journal
 * has seen. When the members are the same as last time, the previous assignment is
 * kept (manual moves survive a restart; only the addresses, the revision and the
 * state of a shard left DRAINING by an interrupted move, which is ACTIVE again,
 * change); otherwise the shards are planned afresh.
 *
 * @throws ShardCountMismatchError when `previous` has another shard count
 */
export function planShardMapAtStart(input: StartShardMapInput): internal.ShardMap {
  const { previous } = input;
  if (previous !== undefined && previous.shardCount !== input.shardCount) {
    throw new ShardCountMismatchError(
      previous.shardCount,
      input.shardCount,
      input.previousPath ?? "the previous ShardMap",
    );
  }
  const quorum = majority(input.members.length);
  if (previous !== undefined && sameMemberIds(previous.members, input.members)) {
    return {
      ...previous,
      revision: previous.revision + 1,
      members: input.members.map((m) => ({ ...m })),
      quorum,
      shards: previous.shards.map((s) =>
        s.state === internal.ShardState.SHARD_STATE_DRAINING
          ? { ...s, state: internal.ShardState.SHARD_STATE_ACTIVE }
          : s,
      ),
    };
  }
  return planShardMap({ members: input.members, shardCount: input.shardCount, quorum, previous });
}

function sameMemberIds(a: readonly internal.Member[], b: readonly internal.Member[]): boolean {
  const ids = (ms: readonly internal.Member[]) => JSON.stringify(ms.map((m) => m.id).sort());
  return ids(a) === ids(b);
}
