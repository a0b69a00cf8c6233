// The operator process: parses flags, loads the kubeconfig (in-cluster in a pod),
// serves /metrics, /healthz and /readyz, runs leader election and, while leading,
// the controllers; stops on SIGTERM/SIGINT, giving up its lease so the standby
// takes over at once.
import { hostname } from "node:os";
import { parseArgs } from "node:util";
import {
  createLogger,
  createRegistry,
  INTERNAL_TLS_USAGE,
  InternalTlsError,
  type InternalTlsFlags,
  type InternalTransport,
  loadInternalTls,
  parseHostPort,
  parseInternalTlsFlags,
  startObservabilityServer,
  UsageError,
} from "@berth/common";
import { loadKubeConfig, MAX_SHARD_COUNT } from "@berth/kubernetes";
import { clusterIdProblem, DEFAULT_SHARD_COUNT } from "@berth/proto";
import { type OperatorOptions, startOperator } from "./operator.js";

/** The usage text printed with a usage error and for --help. */
export const USAGE = `usage: berth-operator [--namespace NS] [--pool-namespace NS] [--shard-map berth]
                      [--shards 256] [--quorum N] [--identity ID] [--cluster-id ID]
                      [--kubeconfig FILE] [--http 127.0.0.1:9300]
                      [--lease-duration-ms 15000] [--renew-deadline-ms 10000] [--retry-period-ms 2000]
                      [--max-moves 32] [--status-writes-per-second 50] [--membership-stable-ms 1000]
                      [--internal-tls-dir DIR [--internal-tls-server-name NAME]]
                      [--lease-owner-pod NAME]

  --namespace       the install's namespace: ShardMap, worker Leases, leader Lease
                    (default: $POD_NAMESPACE, else the kubeconfig's namespace, else "default")
  --pool-namespace  serve CapacityPools of this namespace only (default: every namespace)
  --shard-map       name of the ShardMap object (default berth)
  --shards          shard count the ShardMap is created with; fixed once created (default ${DEFAULT_SHARD_COUNT})
  --quorum          live workers needed to reassign shards when the ShardMap's spec sets
                    none (default: a majority of the workers known)
  --identity        this replica's name in leader election (default: $POD_NAME, else the hostname)
  --cluster-id      sent with every call to workers; the same id as theirs (default: none)
  --kubeconfig      kubeconfig file (default: in-cluster config in a pod, else $KUBECONFIG or ~/.kube/config)
  --http            /metrics, /healthz and /readyz listen address
  --lease-duration-ms, --renew-deadline-ms, --retry-period-ms
                    leader election timing (client-go's defaults)
  --lease-owner-pod the pod this replica runs in ($(POD_NAME)); while leading, it adds its
                    controller (the ReplicaSet) to the leader Lease's owners, so deleting
                    the Deployment deletes the Lease (default: no owner)
  --max-moves       start no drain while this many shards are draining or recovering
                    (a dead worker's shards are taken over at once, whatever the bound)
  --status-writes-per-second
                    CapacityPool status writes to kube-apiserver, in total
  --membership-stable-ms
                    after a worker joins, the live set must be unchanged this long
                    before shards move; after one is lost, shards move at once unless
                    a live worker has not been seen to renew for this long (it may be
                    dying too). Keep it above the workers' --lease-renew-ms and below
                    their Lease duration minus that: workers that die together must be
                    seen dead together, or a majority could be lost one by one
${INTERNAL_TLS_USAGE}`;

/** What the command line asks for. */
export interface OperatorArgs {
  readonly namespace: string | undefined;
  readonly poolNamespace: string | undefined;
  readonly shardMapName: string;
  readonly shardCount: number;
  readonly quorum: number | undefined;
  readonly identity: string;
  readonly clusterId: string;
  readonly kubeconfig: string | undefined;
  readonly http: string;
  readonly leaseDurationMs: number;
  readonly renewDeadlineMs: number;
  readonly retryPeriodMs: number;
  readonly maxMoves: number;
  readonly statusWritesPerSecond: number;
  readonly membershipStableMs: number;
  /** Mutual TLS to the workers; absent: plaintext. */
  readonly internalTls: InternalTlsFlags | undefined;
  readonly leaseOwnerPod: string | undefined;
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/**
 * Parses the operator's command line.
 *
 * @param env the environment (POD_NAME, POD_NAMESPACE)
 * @throws UsageError naming the flag that is wrong
 */
export function parseOperatorArgs(
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): OperatorArgs | "help" {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...args],
      strict: true,
      allowPositionals: false,
      options: {
        namespace: { type: "string" },
        "pool-namespace": { type: "string" },
        "shard-map": { type: "string", default: "berth" },
        shards: { type: "string", default: String(DEFAULT_SHARD_COUNT) },
        quorum: { type: "string" },
        identity: { type: "string" },
        "cluster-id": { type: "string", default: "" },
        kubeconfig: { type: "string" },
        http: { type: "string", default: "127.0.0.1:9300" },
        "lease-duration-ms": { type: "string", default: "15000" },
        "renew-deadline-ms": { type: "string", default: "10000" },
        "retry-period-ms": { type: "string", default: "2000" },
        "max-moves": { type: "string", default: "32" },
        "status-writes-per-second": { type: "string", default: "50" },
        "membership-stable-ms": { type: "string", default: "1000" },
        "internal-tls-dir": { type: "string" },
        "internal-tls-server-name": { type: "string" },
        "lease-owner-pod": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    }));
  } catch (e: unknown) {
    throw new UsageError(`${(e as Error).message} (see --help)`, { cause: e });
  }
  if (values.help === true) return "help";
  const int = (flag: string, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const text = values[flag] as string;
    const n = Number(text);
    if (!/^\d+$/.test(text) || n < min || n > max) {
      throw new UsageError(
        `--${flag} ${JSON.stringify(text)} must be an integer from ${min} to ${max}`,
      );
    }
    return n;
  };
  const name = (flag: string, value: string | undefined): string | undefined => {
    if (value === undefined) return undefined;
    if (!DNS_LABEL.test(value)) {
      throw new UsageError(
        `--${flag} ${JSON.stringify(value)} is not a DNS label (lowercase letters, digits, '-', at most 63)`,
      );
    }
    return value;
  };
  const http = values.http as string;
  try {
    parseHostPort(http);
  } catch {
    throw new UsageError(`--http ${JSON.stringify(http)} is not host:port (port 0-65535)`);
  }
  const clusterId = values["cluster-id"] as string;
  const problem = clusterIdProblem(clusterId);
  if (problem !== undefined) throw new UsageError(`--cluster-id: ${problem}`);
  const leaseDurationMs = int("lease-duration-ms", 1_000);
  const renewDeadlineMs = int("renew-deadline-ms", 500);
  if (renewDeadlineMs >= leaseDurationMs) {
    throw new UsageError("--renew-deadline-ms must be shorter than --lease-duration-ms");
  }
  const leaseOwnerPod = values["lease-owner-pod"] as string | undefined;
  if (leaseOwnerPod !== undefined && !DNS_SUBDOMAIN.test(leaseOwnerPod)) {
    throw new UsageError(
      `--lease-owner-pod ${JSON.stringify(leaseOwnerPod)} is not a pod name (a DNS subdomain: lowercase letters, digits, '-', '.')`,
    );
  }
  const identity = (values.identity as string | undefined) ?? env.POD_NAME ?? hostname();
  if (identity === "") throw new UsageError("--identity must not be empty");
  const internalTls = parseInternalTlsFlags(
    values["internal-tls-dir"] as string | undefined,
    values["internal-tls-server-name"] as string | undefined,
  );
  if (typeof internalTls === "string") throw new UsageError(internalTls);
  return {
    namespace: name("namespace", (values.namespace as string | undefined) ?? env.POD_NAMESPACE),
    poolNamespace: name("pool-namespace", values["pool-namespace"] as string | undefined),
    shardMapName: name("shard-map", values["shard-map"] as string) as string,
    shardCount: int("shards", 1, MAX_SHARD_COUNT),
    quorum: values.quorum === undefined ? undefined : int("quorum", 1),
    identity,
    clusterId,
    kubeconfig: values.kubeconfig as string | undefined,
    http,
    leaseDurationMs,
    renewDeadlineMs,
    retryPeriodMs: int("retry-period-ms", 100),
    maxMoves: int("max-moves", 1),
    statusWritesPerSecond: int("status-writes-per-second", 1),
    membershipStableMs: int("membership-stable-ms", 0),
    internalTls,
    leaseOwnerPod,
  };
}

async function main(): Promise<void> {
  let args: OperatorArgs | "help";
  try {
    args = parseOperatorArgs(process.argv.slice(2));
  } catch (e: unknown) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`berth-operator: ${e.message}\n`);
    process.exit(2);
  }
  if (args === "help") {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const logger = createLogger("operator", { identity: args.identity });
  let transport: InternalTransport | undefined;
  if (args.internalTls !== undefined) {
    try {
      transport = loadInternalTls({ ...args.internalTls, logger: logger.child({ part: "tls" }) });
    } catch (e: unknown) {
      if (!(e instanceof InternalTlsError)) throw e;
      process.stderr.write(`berth-operator: --internal-tls-dir: ${e.message}\n`);
      process.exit(2);
    }
  }
  const kubeConfig = loadKubeConfig(args.kubeconfig);
  const namespace =
    args.namespace ??
    kubeConfig.getContextObject(kubeConfig.getCurrentContext())?.namespace ??
    "default";
  const registry = createRegistry("operator");
  const options: OperatorOptions = {
    kubeConfig,
    namespace,
    ...(args.poolNamespace === undefined ? {} : { poolNamespace: args.poolNamespace }),
    shardMapName: args.shardMapName,
    shardCount: args.shardCount,
    ...(args.quorum === undefined ? {} : { quorum: args.quorum }),
    identity: args.identity,
    clusterId: args.clusterId,
    ...(transport === undefined ? {} : { transport }),
    logger,
    registry,
    leaderElection: {
      leaseDurationMs: args.leaseDurationMs,
      renewDeadlineMs: args.renewDeadlineMs,
      retryPeriodMs: args.retryPeriodMs,
      ...(args.leaseOwnerPod === undefined ? {} : { leaseOwnerPod: args.leaseOwnerPod }),
    },
    maxMovesInProgress: args.maxMoves,
    statusWritesPerSecond: args.statusWritesPerSecond,
    membershipStableMs: args.membershipStableMs,
  };
  const operator = startOperator(options);
  const http = await startObservabilityServer({
    listen: args.http,
    registry,
    readiness: () => operator.readiness(),
    logger,
  });
  logger.info({ namespace, http: http.address, shardMap: args.shardMapName }, "operator started");
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, "signal received; giving up the lease and stopping");
    Promise.all([operator.stop(), http.close()]).then(
      () => {
        transport?.close();
        process.exit(0);
      },
      (e: unknown) => {
        logger.error({ err: e }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
  process.on("unhandledRejection", (e: unknown) => {
    logger.error({ err: e }, "unhandled promise rejection");
  });
}

if (import.meta.main) {
  main().catch((e: unknown) => {
    process.stderr.write(`berth-operator: failed to start: ${(e as Error)?.stack ?? String(e)}\n`);
    process.exit(1);
  });
}
