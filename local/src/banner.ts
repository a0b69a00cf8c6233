// The text `npm start` prints once the cluster is up. Pure.
import { type internal, shardOf } from "@berth/proto";

/** What the banner shows. */
export interface BannerInfo {
  readonly gateway: { readonly grpc: string; readonly http: string; readonly gossip: string };
  readonly workers: readonly {
    readonly id: string;
    readonly grpc: string;
    readonly http: string;
    readonly shards: number;
  }[];
  readonly control: string;
  readonly dataDir: string;
  readonly journal: string;
  readonly shardCount: number;
  readonly revision: number;
  readonly pools: number;
  readonly manifests: readonly string[];
  /** A pool to use in examples, with its shard and a worker that does not own it. */
  readonly example?: { readonly pool: string; readonly shard: number; readonly moveTo: string };
  readonly watching: boolean;
}

/** The banner: where everything listens and how to call it. */
export function banner(info: BannerInfo): string {
  const addressFlag = info.gateway.grpc.endsWith(":50051") ? "" : ` --address ${info.gateway.grpc}`;
  const pool = info.example?.pool ?? "default/my-pool";
  const lines = [
    "",
    `Berth local cluster is up: ${info.workers.length} worker${info.workers.length === 1 ? "" : "s"}, ${info.shardCount} shards (ShardMap revision ${info.revision}), ${info.pools} pool${info.pools === 1 ? "" : "s"} configured from ${info.manifests.join(", ")}`,
    "",
    `  gateway    grpc ${info.gateway.grpc}   metrics http://${info.gateway.http}/metrics   gossip ${info.gateway.gossip}`,
    ...info.workers.map(
      (w) =>
        `  ${w.id.padEnd(9)}  grpc ${w.grpc}   metrics http://${w.http}/metrics   ${w.shards} shards`,
    ),
    `  control    http://${info.control}   (GET /shardmap, GET /processes, POST /shards/N/move?to=worker-I)`,
    `  data       ${info.dataDir}   (journal ${info.journal}, shard-map.json, logs/)`,
    "",
    "Try:",
    `  npm run berth --${addressFlag} availability --selector 'zone=north'`,
    `  npm run berth --${addressFlag} reserve ${pool} 2`,
    `  npm run berth --${addressFlag} pool ${pool}`,
    `  grpcurl -plaintext -d '{"pool":"${pool}"}' ${info.gateway.grpc} berth.v1.CapacityService/GetPool`,
    `  grpcurl -plaintext ${info.gateway.grpc} list        # server reflection`,
  ];
  if (info.example !== undefined) {
    lines.push(
      `  curl -X POST 'http://${info.control}/shards/${info.example.shard}/move?to=${info.example.moveTo}'   # move ${pool}'s shard`,
    );
  }
  lines.push(
    "",
    `${info.watching ? "Manifests are watched: edit them and changes are applied. " : ""}Ctrl-C stops everything.`,
    "",
  );
  return lines.join("\n");
}

/**
 * The banner's example: the first open pool of the manifests, its shard in `map`,
 * and a worker that does not own that shard (to move it to); none without an open pool.
 */
export function bannerExample(
  specs: readonly internal.PoolSpec[],
  map: internal.ShardMap,
  workerIds: readonly string[],
): BannerInfo["example"] {
  const pool = specs.find((s) => !s.closed)?.pool;
  if (pool === undefined) return undefined;
  const shard = shardOf(pool, map.shardCount);
  const owner = map.shards[shard]?.owner;
  const moveTo = workerIds.find((id) => id !== owner) ?? workerIds[0] ?? "worker-0";
  return { pool, shard, moveTo };
}
