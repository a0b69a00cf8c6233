// Command-line flags of the worker process.
import { isAbsolute } from "node:path";
import { parseArgs } from "node:util";
import { InvalidAddressError, parseHostPort } from "@berth/common";
import { clusterIdProblem } from "@berth/proto";

/** The worker's usage text. */
export const USAGE = `usage: worker --id <member-id> --grpc <host:port> --http <host:port>
              --journal <sqlite:///abs/path/journal.db | cassandra://host:port/keyspace>
              --shard-map-file /abs/path/shard-map.json
              [--gossip-peer <host:port>]... [--snapshot-every <n>] [--cluster-id <id>]
              [--hand-off-timeout-ms <ms>]

  --id              this worker's member id in the shard map, e.g. worker-0
  --grpc            gRPC listen address (WorkerService, GossipService, health, reflection)
  --http            HTTP listen address for /metrics, /healthz, /readyz
  --journal         journal URL, one of:
                      sqlite:///absolute/path.db[?synchronous=FULL|NORMAL]
                      cassandra://host:port[,host:port]/keyspace[?dc=…&rf=…&consistency=…&timeoutMs=…]
                    (a Cassandra journal that is not up yet is retried; not ready meanwhile)
  --shard-map-file  JSON ShardMap file to follow (written by the supervisor/operator)
  --gossip-peer     GossipService address of a gateway; repeatable
  --snapshot-every  save a pool snapshot every n events (default 100)
  --cluster-id      the cluster this worker belongs to (lowercase letters, digits, '-');
                    internal calls from nodes of another cluster are refused. Give every
                    worker and gateway of one install the same id (default: none)
  --hand-off-timeout-ms
                    on SIGTERM/SIGINT, first report "leaving" to the ShardMap publisher
                    and keep serving until it has moved every shard away, for at most
                    this long, then stop (Kubernetes: keep it below the pod's grace
                    period). Default 0: stop at once (local mode)
`;

/** The worker's parsed flags. */
export interface WorkerFlags {
  readonly id: string;
  readonly grpc: string;
  readonly http: string;
  readonly journal: string;
  readonly shardMapFile: string;
  readonly gossipPeers: readonly string[];
  readonly snapshotEvery: number;
  /** "" when not given. */
  readonly clusterId: string;
  /** Longest graceful leave on SIGTERM/SIGINT, in ms; 0 (the default): none. */
  readonly handOffTimeoutMs: number;
}

/** Thrown when the command line is not valid; the message says precisely why. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/** Parses and checks the worker's command line. @throws UsageError */
export function parseWorkerFlags(args: readonly string[]): WorkerFlags | "help" {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(args).values;
  } catch (e: unknown) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return "help";
  const required = (name: "id" | "grpc" | "http" | "journal" | "shard-map-file"): string => {
    const v = values[name];
    if (v === undefined || v === "") throw new UsageError(`missing required flag --${name}`);
    return v;
  };
  const id = required("id");
  const grpc = required("grpc");
  const http = required("http");
  const journal = required("journal");
  const shardMapFile = required("shard-map-file");
  for (const [flag, address] of [
    ["grpc", grpc],
    ["http", http],
    ...(values["gossip-peer"] ?? []).map((p) => ["gossip-peer", p] as const),
  ] as const) {
    try {
      parseHostPort(address);
    } catch (e: unknown) {
      if (e instanceof InvalidAddressError) throw new UsageError(`--${flag}: ${e.message}`);
      throw e;
    }
  }
  if (!isAbsolute(shardMapFile)) {
    throw new UsageError(`--shard-map-file must be an absolute path, got "${shardMapFile}"`);
  }
  const every = values["snapshot-every"] ?? "100";
  if (!/^[1-9][0-9]{0,8}$/.test(every)) {
    throw new UsageError(`--snapshot-every must be a positive integer, got "${every}"`);
  }
  const handOff = values["hand-off-timeout-ms"] ?? "0";
  if (!/^(0|[1-9][0-9]{0,8})$/.test(handOff)) {
    throw new UsageError(
      `--hand-off-timeout-ms must be a non-negative integer (milliseconds), got "${handOff}"`,
    );
  }
  const clusterId = values["cluster-id"] ?? "";
  const clusterProblem = clusterIdProblem(clusterId);
  if (clusterProblem !== undefined) throw new UsageError(`--cluster-id: ${clusterProblem}`);
  return {
    clusterId,
    id,
    grpc,
    http,
    journal,
    shardMapFile,
    gossipPeers: values["gossip-peer"] ?? [],
    snapshotEvery: Number(every),
    handOffTimeoutMs: Number(handOff),
  };
}

function parse(args: readonly string[]) {
  return parseArgs({
    args: [...args],
    strict: true,
    allowPositionals: false,
    options: {
      id: { type: "string" },
      grpc: { type: "string" },
      http: { type: "string" },
      journal: { type: "string" },
      "shard-map-file": { type: "string" },
      "gossip-peer": { type: "string", multiple: true },
      "snapshot-every": { type: "string" },
      "cluster-id": { type: "string" },
      "hand-off-timeout-ms": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}
