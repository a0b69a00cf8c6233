// The gateway process: parses flags, starts the gateway, stops it on SIGTERM/SIGINT.
import { isAbsolute } from "node:path";
import { parseArgs } from "node:util";
import {
  createLogger,
  INTERNAL_TLS_USAGE,
  InternalTlsError,
  type InternalTlsFlags,
  type InternalTransport,
  loadInternalTls,
  parseHostPort,
  parseInternalTlsFlags,
  setServerV8Flags,
  UsageError,
  writeAddressFile,
} from "@berth/common";
import type { ShardMapResourceSource } from "@berth/kubernetes";
import { clusterIdProblem } from "@berth/proto";
import { type GatewayConfig, startGateway } from "./gateway.js";

/** The usage text printed with a usage error and for --help. */
export const USAGE = `usage: gateway (--shard-map-file /abs/path/shard-map.json | --shard-map-resource NS/NAME)
               [--grpc 127.0.0.1:50051] [--gossip 127.0.0.1:50060] [--http 127.0.0.1:9100]
               [--shard-map-wait-ms 10000] [--node-id gateway-0] [--cluster-id <id>]
               [--kubeconfig FILE] [--gossip-pull-ms 1000]
               [--internal-tls-dir DIR [--internal-tls-server-name NAME]]
               [--address-file /abs/path/addresses.json]

  --grpc               public gRPC listen address (CapacityService, health, reflection)
  --gossip             GossipService listen address (workers push counters here)
  --http               /metrics, /healthz and /readyz listen address
  --shard-map-file     ShardMap JSON file written by the supervisor (absolute path; watched)
  --shard-map-resource Kubernetes mode: watch the ShardMap object NAMESPACE/NAME (written by
                       the operator); workers are the map's members
  --kubeconfig         Kubernetes mode: kubeconfig file (default: in-cluster config in a pod,
                       else $KUBECONFIG or ~/.kube/config)
  --gossip-pull-ms     pull pool counters from a worker this often (default: 1000 in
                       Kubernetes mode, where workers do not push to gateways; else off)
  --shard-map-wait-ms  how long startup waits for a first ShardMap (default 10000)
  --node-id            id sent with gossip messages (default gateway-<hostname>-<pid>)
  --address-file       once --grpc, --gossip and --http are bound, write the addresses they
                       listen on to this file (absolute path), atomically, as JSON:
                       {"version":1,"pid":…,"addresses":{"grpc":…,"gossip":…,"http":…}}
                       (with port 0: the ports the OS chose). Startup first waits up to
                       --shard-map-wait-ms for a ShardMap; give 0 to bind at once
  --cluster-id         the cluster this gateway belongs to (lowercase letters, digits, '-'):
                       sent with every call to workers; gossip from another cluster is
                       refused. The same id as the workers' (default: none)
${INTERNAL_TLS_USAGE}
                    (the gateway: its worker and gossip clients and its --gossip port;
                    the public --grpc port stays plaintext)`;

/** What the command line asks for: the gateway's config, and where its ShardMap comes from. */
export type GatewayArgs = Omit<GatewayConfig, "shardMapSource" | "transport"> & {
  /** Mutual TLS on internal connections; absent: plaintext. */
  readonly internalTls?: InternalTlsFlags;
  /** Where to write the bound addresses once listening (`--address-file`). */
  readonly addressFile?: string;
  /** Kubernetes mode: the ShardMap object to watch. */
  readonly shardMapResource?: {
    readonly namespace: string;
    readonly name: string;
    readonly kubeconfig?: string;
  };
};

const DNS_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/**
 * Parses the gateway's command line.
 *
 * @param args the arguments after the script name
 * @returns the config, or "help" when --help was given
 * @throws UsageError naming the flag that is wrong
 */
export function parseGatewayArgs(args: readonly string[]): GatewayArgs | "help" {
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
        "shard-map-resource": { type: "string" },
        kubeconfig: { type: "string" },
        "gossip-pull-ms": { type: "string" },
        "shard-map-wait-ms": { type: "string", default: "10000" },
        "node-id": { type: "string" },
        "cluster-id": { type: "string", default: "" },
        "internal-tls-dir": { type: "string" },
        "internal-tls-server-name": { type: "string" },
        "address-file": { type: "string" },
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
  const resource = values["shard-map-resource"];
  if ((file === undefined) === (resource === undefined)) {
    throw new UsageError("give exactly one of --shard-map-file and --shard-map-resource");
  }
  if (typeof file === "string" && !isAbsolute(file)) {
    throw new UsageError(`--shard-map-file ${JSON.stringify(file)} must be an absolute path`);
  }
  const addressFile = values["address-file"];
  if (typeof addressFile === "string" && !isAbsolute(addressFile)) {
    throw new UsageError(`--address-file ${JSON.stringify(addressFile)} must be an absolute path`);
  }
  let shardMapResource: GatewayArgs["shardMapResource"];
  if (typeof resource === "string") {
    const [namespace, name, ...rest] = resource.split("/");
    if (rest.length > 0 || !DNS_NAME.test(namespace ?? "") || !DNS_NAME.test(name ?? "")) {
      throw new UsageError(
        `--shard-map-resource ${JSON.stringify(resource)} must be NAMESPACE/NAME (DNS labels)`,
      );
    }
    const kubeconfig = values.kubeconfig;
    shardMapResource = {
      namespace: namespace as string,
      name: name as string,
      ...(typeof kubeconfig === "string" ? { kubeconfig } : {}),
    };
  } else if (values.kubeconfig !== undefined) {
    throw new UsageError("--kubeconfig is only for --shard-map-resource");
  }
  const pullText = values["gossip-pull-ms"] as string | undefined;
  const pullMs = pullText === undefined ? undefined : Number(pullText);
  if (pullText !== undefined && (!/^\d+$/.test(pullText) || (pullMs as number) < 10)) {
    throw new UsageError(`--gossip-pull-ms ${JSON.stringify(pullText)} must be an integer ≥ 10`);
  }
  const gossipPullIntervalMs = pullMs ?? (shardMapResource === undefined ? undefined : 1_000);
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
  const internalTls = parseInternalTlsFlags(
    values["internal-tls-dir"] as string | undefined,
    values["internal-tls-server-name"] as string | undefined,
  );
  if (typeof internalTls === "string") throw new UsageError(internalTls);
  return {
    grpc: values.grpc as string,
    gossip: values.gossip as string,
    http: values.http as string,
    ...(typeof file === "string" ? { shardMapFile: file } : {}),
    ...(shardMapResource === undefined ? {} : { shardMapResource }),
    ...(gossipPullIntervalMs === undefined ? {} : { gossipPullIntervalMs }),
    shardMapWaitMs: waitMs,
    ...(typeof nodeId === "string" ? { nodeId } : {}),
    ...(clusterId === "" ? {} : { clusterId }),
    ...(internalTls === undefined ? {} : { internalTls }),
    ...(typeof addressFile === "string" ? { addressFile } : {}),
  };
}

async function main(): Promise<void> {
  let config: GatewayArgs | "help";
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
  setServerV8Flags();
  const logger = createLogger("gateway");
  const { shardMapResource, internalTls, addressFile, ...gatewayConfig } = config;
  let transport: InternalTransport | undefined;
  if (internalTls !== undefined) {
    try {
      transport = loadInternalTls({ ...internalTls, logger: logger.child({ part: "tls" }) });
    } catch (e: unknown) {
      if (!(e instanceof InternalTlsError)) throw e;
      process.stderr.write(`gateway: --internal-tls-dir: ${e.message}\n`);
      process.exit(2);
    }
  }
  let source: ShardMapResourceSource | undefined;
  if (shardMapResource !== undefined) {
    // Loaded only in Kubernetes mode: the client library takes about a second to load.
    const { loadKubeConfig, ShardMapResourceSource } = await import("@berth/kubernetes");
    const kubeConfig = loadKubeConfig(shardMapResource.kubeconfig);
    source = new ShardMapResourceSource({
      kubeConfig,
      namespace: shardMapResource.namespace,
      name: shardMapResource.name,
      logger: logger.child({ part: "shard-map" }),
    });
    source.start();
  }
  const gateway = await startGateway({
    ...gatewayConfig,
    ...(source === undefined ? {} : { shardMapSource: source }),
    ...(transport === undefined ? {} : { transport }),
    logger,
  });
  let stopping = false;
  const stop = (signal: string, code = 0): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "signal received; stopping");
    gateway
      .close()
      .finally(() => {
        source?.close();
        transport?.close();
      })
      .then(
        () => process.exit(code),
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
  if (addressFile !== undefined) {
    // Every listener is bound: a supervisor that gave port 0 learns the ports here.
    writeAddressFile(addressFile, {
      grpc: gateway.grpcAddress,
      gossip: gateway.gossipAddress,
      http: gateway.httpAddress,
    }).catch((e: unknown) => {
      logger.fatal({ err: e, file: addressFile }, "cannot write the address file");
      stop("address file", 1);
    });
  }
}

if (import.meta.main) {
  main().catch((e: unknown) => {
    process.stderr.write(`gateway: failed to start: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  });
}
