// The gateway process: parses flags, starts the gateway, stops it on SIGTERM/SIGINT.
import { isAbsolute } from "node:path";
import { parseArgs } from "node:util";
import { createLogger, parseHostPort } from "@berth/common";
import { clusterIdProblem } from "@berth/proto";
import { type GatewayConfig, startGateway } from "./gateway.js";

/** The usage text printed with a usage error and for --help. */
export const USAGE = `usage: gateway --shard-map-file /abs/path/shard-map.json
               [--grpc 127.0.0.1:50051] [--gossip 127.0.0.1:50060] [--http 127.0.0.1:9100]
               [--shard-map-wait-ms 10000] [--node-id gateway-0] [--cluster-id <id>]

  --grpc               public gRPC listen address (CapacityService, health, reflection)
  --gossip             GossipService listen address (workers push counters here)
  --http               /metrics, /healthz and /readyz listen address
  --shard-map-file     ShardMap JSON file written by the supervisor (absolute path; watched)
  --shard-map-wait-ms  how long startup waits for a first ShardMap (default 10000)
  --node-id            id sent with gossip messages (default gateway-<hostname>-<pid>)
  --cluster-id         the cluster this gateway belongs to (lowercase letters, digits, '-'):
                       sent with every call to workers; gossip from another cluster is
                       refused. The same id as the workers' (default: none)`;

/** Thrown when the command line is not valid; the message says which flag and why. */
export class UsageError extends Error {
  override readonly name = "UsageError";
}

/**
 * Parses the gateway's command line.
 *
 * @param args the arguments after the script name
 * @returns the config, or "help" when --help was given
 * @throws UsageError naming the flag that is wrong
 */
export function parseGatewayArgs(args: readonly string[]): GatewayConfig | "help" {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        grpc: { type: "string", default: "127.0.0.1:50051" },
        gossip: { type: "string", default: "127.0.0.1:50060" },
        http: { type: "string", default: "127.0.0.1:9100" },
        "shard-map-file": { type: "string" },
        "shard-map-wait-ms": { type: "string", default: "10000" },
        "node-id": { type: "string" },
        "cluster-id": { type: "string", default: "" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e: unknown) {
    throw new UsageError((e as Error).message, { cause: e });
  }
  if (values.help === true) return "help";
  for (const flag of ["grpc", "gossip", "http"] as const) {
    const address = values[flag] as string;
    try {
      parseHostPort(address);
    } catch {
      throw new UsageError(`--${flag} ${JSON.stringify(address)} is not host:port (port 0-65535)`);
    }
  }
  const file = values["shard-map-file"];
  if (typeof file !== "string" || file === "") {
    throw new UsageError("--shard-map-file is required");
  }
  if (!isAbsolute(file)) {
    throw new UsageError(`--shard-map-file ${JSON.stringify(file)} must be an absolute path`);
  }
  const waitText = values["shard-map-wait-ms"] as string;
  const waitMs = Number(waitText);
  if (!/^\d+$/.test(waitText) || !Number.isSafeInteger(waitMs)) {
    throw new UsageError(
      `--shard-map-wait-ms ${JSON.stringify(waitText)} is not a non-negative integer of milliseconds`,
    );
  }
  const nodeId = values["node-id"];
  if (nodeId === "") throw new UsageError("--node-id must not be empty");
  const clusterId = values["cluster-id"] as string;
  const clusterProblem = clusterIdProblem(clusterId);
  if (clusterProblem !== undefined) throw new UsageError(`--cluster-id: ${clusterProblem}`);
  return {
    grpc: values.grpc as string,
    gossip: values.gossip as string,
    http: values.http as string,
    shardMapFile: file,
    shardMapWaitMs: waitMs,
    ...(typeof nodeId === "string" ? { nodeId } : {}),
    ...(clusterId === "" ? {} : { clusterId }),
  };
}

async function main(): Promise<void> {
  let config: GatewayConfig | "help";
  try {
    config = parseGatewayArgs(process.argv.slice(2));
  } catch (e: unknown) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`gateway: ${e.message}\n${USAGE}\n`);
    process.exit(2);
  }
  if (config === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const logger = createLogger("gateway");
  const gateway = await startGateway({ ...config, logger });
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "signal received; stopping");
    gateway.close().then(
      () => process.exit(0),
      (e: unknown) => {
        logger.error({ err: e }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("unhandledRejection", (e: unknown) => {
    // Never crash on a stray rejection: log it loudly; requests keep being served.
    logger.error({ err: e }, "unhandled promise rejection");
  });
}

if (import.meta.main) {
  main().catch((e: unknown) => {
    process.stderr.write(`gateway: failed to start: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  });
}
