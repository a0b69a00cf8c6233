// Local mode: the whole cluster as supervised processes on one machine (`npm start`).
import { planShardMapAtStart } from "@berth/operator";

export * from "./local-cluster.js";
export * from "./ports.js";
export * from "./shard-map-ops.js";
export * from "./shard-watch.js";

/**
 * The ShardMap of a local cluster at start.
 *
 * @deprecated Import planShardMapAtStart from @berth/operator (kept for e2e/src/image).
 */
export const planLocalShardMap: typeof planShardMapAtStart = planShardMapAtStart;
