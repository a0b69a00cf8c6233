// What the local cluster's control endpoint answers, wired to the cluster's parts.
import { internal, poolIdProblem, shardOf } from "@berth/proto";
import type { ControlHandlers } from "./control-server.js";
import type { ShardMapPublisher } from "./shard-map-publisher.js";
import type { ShardMover } from "./shard-mover.js";
import type { Supervisor } from "./supervisor.js";

/** The handlers of the control endpoint (see control-server.ts) for one local cluster. */
export function controlHandlers(parts: {
  readonly publisher: ShardMapPublisher;
  readonly mover: ShardMover;
  readonly supervisor: Supervisor;
}): ControlHandlers {
  const { publisher, mover, supervisor } = parts;
  return {
    shardMap: () => internal.ShardMap.toJSON(publisher.map),
    moveShard: (shard, to) => mover.move(shard, to),
    processes: () => supervisor.processes(),
    shardOf: (pool) => {
      const problem = poolIdProblem(pool);
      if (problem !== undefined) {
        throw Object.assign(new Error(`pool: ${problem}`), { name: "ShardMoveError" });
      }
      const map = publisher.map;
      const shard = shardOf(pool, map.shardCount);
      const a = map.shards[shard];
      return { pool, shard, owner: a?.owner ?? "", epoch: a?.epoch ?? 0 };
    },
  };
}
