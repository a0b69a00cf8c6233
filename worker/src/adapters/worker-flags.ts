// Command-line flags of the worker process.
import { isAbsolute } from "node:path";
import { parseArgs } from "node:util";
import {
  INTERNAL_TLS_USAGE,
  type InternalTlsFlags,
  InvalidAddressError,
  parseHostPort,
  parseInternalTlsFlags,
  UsageError,
} from "@berth/common";
import { clusterIdProblem } from "@berth/proto";

/** The worker's usage text. */
export const USAGE = `usage: worker --id <member-id> --grpc <host:port> --http <host:port>
              --journal <sqlite:///abs/path/journal.db | cassandra://host:port/keyspace>
              (--shard-map-file /abs/path/shard-map.json | --shard-map-resource NS/NAME)
              [--gossip-peer <host:port>]... [--snapshot-every <n>] [--cluster-id <id>]
              [--idempotency-retention <duration, e.g. 24h>]
              [--hand-off-timeout-ms <ms>] [--address-file /abs/path/addresses.json]
              [--advertise <host:port>] [--kubeconfig FILE]
              [--lease-duration-ms 6000] [--lease-renew-ms 1000] [--lease-owner-pod NAME]
              [--internal-tls-dir DIR [--internal-tls-server-name NAME]]

  --id              this worker's member id in the shard map, e.g. worker-0
  --grpc            gRPC listen address (WorkerService, GossipService, health, reflection)
  --http            HTTP listen address for /metrics, /healthz, /readyz
  --journal         journal URL, one of:
                      sqlite:///absolute/path.db[?synchronous=FULL|NORMAL]
                      cassandra://host:port[,host:port]/keyspace[?dc=…&rf=…&consistency=…&timeoutMs=…]
                    (a Cassandra journal that is not up yet is retried; not ready meanwhile;
                    no user:password@ in the URL: see the environment below)
  --shard-map-file  JSON ShardMap file to follow (written by the supervisor/operator)
  --shard-map-resource
                    Kubernetes mode: follow the ShardMap object NAMESPACE/NAME (written by
                    the operator) and hold a Lease named after --id in that namespace,
                    renewed every --lease-renew-ms, annotated with --advertise
  --advertise       the gRPC address other processes dial (Kubernetes: the pod's stable
                    DNS name, e.g. worker-0.berth-worker.berth.svc:7000); default --grpc
  --kubeconfig      Kubernetes mode: kubeconfig file (default: in-cluster config in a pod,
                    else $KUBECONFIG or ~/.kube/config)
  --lease-duration-ms, --lease-renew-ms
                    Kubernetes mode: the Lease's duration and renewal period; the operator
                    moves a worker's shards once it has not seen a renewal for a duration
  --lease-owner-pod Kubernetes mode: the pod this worker runs in ($(POD_NAME)); its
                    controller (the StatefulSet) becomes the Lease's owner, so deleting
                    the StatefulSet deletes the Lease (default: no owner)
  --address-file    once --grpc and --http are bound, write the addresses they listen on
                    to this file (absolute path), atomically, as JSON:
                    {"version":1,"pid":…,"addresses":{"grpc":"host:port","http":"host:port"}}
                    (with port 0 in --grpc or --http: the ports the OS chose)
  --gossip-peer     GossipService address of a gateway; repeatable
  --snapshot-every  save a pool snapshot every n events (default 100)
  --idempotency-retention
                    how long a released reservation is remembered after its release:
                    within it a retried request_id returns the first answer and a repeated
                    release answers already released; after it the request_id is new again
                    and the reservation id is unknown (it is never released twice).
                    Reservations not released are always remembered. A number with a unit
                    ms, s, m, h or d (default 24h); memory and snapshots grow with the
                    releases inside it
  --cluster-id      the cluster this worker belongs to (lowercase letters, digits, '-');
                    internal calls from nodes of another cluster are refused. Give every
                    worker and gateway of one install the same id (default: none)
  --hand-off-timeout-ms
                    on SIGTERM/SIGINT, first report "leaving" to the ShardMap publisher
                    and keep serving until it has moved every shard away, for at most
                    this long, then stop (Kubernetes: keep it below the pod's grace
                    period). Default 0: stop at once (local mode)
${INTERNAL_TLS_USAGE}

environment:
  BERTH_CASSANDRA_USERNAME, BERTH_CASSANDRA_PASSWORD
                    Cassandra login (PasswordAuthenticator); both or neither; never logged
  BERTH_LOG_LEVEL   pino level (default info)
`;

/** The worker's parsed flags. */
export interface WorkerFlags {
  readonly id: string;
  readonly grpc: string;
  readonly http: string;
  readonly journal: string;
  /** Local mode: the ShardMap file to follow. */
  readonly shardMapFile?: string;
  /** Kubernetes mode: the ShardMap object to follow, and this worker's Lease. */
  readonly kubernetes?: {
    readonly namespace: string;
    readonly shardMap: string;
    readonly kubeconfig?: string;
    readonly advertise: string;
    readonly leaseDurationMs: number;
    readonly leaseRenewMs: number;
    /** The worker's own pod, whose controller owns the Lease. */
    readonly leaseOwnerPod?: string;
  };
  readonly gossipPeers: readonly string[];
  readonly snapshotEvery: number;
  /** Idempotency retention window, in ms (`--idempotency-retention`; default 24 h). */
  readonly idempotencyRetentionMs: number;
  /** "" when not given. */
  readonly clusterId: string;
  /** Longest graceful leave on SIGTERM/SIGINT, in ms; 0 (the default): none. */
  readonly handOffTimeoutMs: number;
  /** Mutual TLS on the gRPC port and the gossip clients; absent: plaintext. */
  readonly internalTls?: InternalTlsFlags;
  /** Where to write the bound addresses once listening (`--address-file`); absent: nowhere. */
  readonly addressFile?: string;
}

const RETENTION_UNITS_MS: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_SUBDOMAIN =
  /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** Parses and checks the worker's command line. @throws UsageError */
export function parseWorkerFlags(args: readonly string[]): WorkerFlags | "help" {
  let values: ReturnType<typeof parse>["values"];
  try {
    values = parse(args).values;
  } catch (e: unknown) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return "help";
  const required = (name: "id" | "grpc" | "http" | "journal"): string => {
    const v = values[name];
    if (v === undefined || v === "") throw new UsageError(`missing required flag --${name}`);
    return v;
  };
  const id = required("id");
  const grpc = required("grpc");
  const http = required("http");
  const journal = required("journal");
  const shardMapFile = values["shard-map-file"];
  const resource = values["shard-map-resource"];
  if ((shardMapFile === undefined) === (resource === undefined)) {
    throw new UsageError("give exactly one of --shard-map-file and --shard-map-resource");
  }
  const advertise = values.advertise ?? grpc;
  for (const [flag, address] of [
    ["grpc", grpc],
    ["http", http],
    ["advertise", advertise],
    ...(values["gossip-peer"] ?? []).map((p) => ["gossip-peer", p] as const),
  ] as const) {
    try {
      parseHostPort(address);
    } catch (e: unknown) {
      if (e instanceof InvalidAddressError) throw new UsageError(`--${flag}: ${e.message}`);
      throw e;
    }
  }
  if (shardMapFile !== undefined && !isAbsolute(shardMapFile)) {
    throw new UsageError(`--shard-map-file must be an absolute path, got "${shardMapFile}"`);
  }
  const addressFile = values["address-file"];
  if (addressFile !== undefined && !isAbsolute(addressFile)) {
    throw new UsageError(`--address-file must be an absolute path, got "${addressFile}"`);
  }
  const kubernetesOnly = [
    "kubeconfig",
    "advertise",
    "lease-duration-ms",
    "lease-renew-ms",
    "lease-owner-pod",
  ] as const;
  let kubernetes: WorkerFlags["kubernetes"];
  if (resource !== undefined) {
    const [namespace, name, ...rest] = resource.split("/");
    if (rest.length > 0 || !DNS_LABEL.test(namespace ?? "") || !DNS_LABEL.test(name ?? "")) {
      throw new UsageError(
        `--shard-map-resource must be NAMESPACE/NAME (DNS labels), got "${resource}"`,
      );
    }
    if (!DNS_SUBDOMAIN.test(id)) {
      throw new UsageError(
        `--id names this worker's Lease in Kubernetes mode: it must be a DNS subdomain (lowercase letters, digits, '-', '.'), got "${id}"`,
      );
    }
    if (/^(0\.0\.0\.0|\[::\]|::):/.test(advertise) || advertise.endsWith(":0")) {
      throw new UsageError(
        `--advertise must be an address other processes can dial, got "${advertise}" (give --advertise when --grpc listens on all interfaces or port 0)`,
      );
    }
    const ms = (flag: "lease-duration-ms" | "lease-renew-ms", fallback: number): number => {
      const text = values[flag] ?? String(fallback);
      if (!/^[1-9][0-9]{0,8}$/.test(text) || Number(text) < 100) {
        throw new UsageError(`--${flag} must be an integer ≥ 100 (milliseconds), got "${text}"`);
      }
      return Number(text);
    };
    const leaseDurationMs = ms("lease-duration-ms", 6_000);
    const leaseRenewMs = ms("lease-renew-ms", 1_000);
    if (leaseRenewMs * 2 > leaseDurationMs) {
      throw new UsageError(
        `--lease-renew-ms (${leaseRenewMs}) must be at most half of --lease-duration-ms (${leaseDurationMs}): one missed renewal must not expire the Lease`,
      );
    }
    const ownerPod = values["lease-owner-pod"];
    if (ownerPod !== undefined && !DNS_SUBDOMAIN.test(ownerPod)) {
      throw new UsageError(
        `--lease-owner-pod must be a pod name (a DNS subdomain: lowercase letters, digits, '-', '.'), got "${ownerPod}"`,
      );
    }
    kubernetes = {
      namespace: namespace as string,
      shardMap: name as string,
      ...(values.kubeconfig === undefined ? {} : { kubeconfig: values.kubeconfig }),
      advertise,
      leaseDurationMs,
      leaseRenewMs,
      ...(ownerPod === undefined ? {} : { leaseOwnerPod: ownerPod }),
    };
  } else {
    const given = kubernetesOnly.find((f) => values[f] !== undefined);
    if (given !== undefined) throw new UsageError(`--${given} is only for --shard-map-resource`);
  }
  const every = values["snapshot-every"] ?? "100";
  if (!/^[1-9][0-9]{0,8}$/.test(every)) {
    throw new UsageError(`--snapshot-every must be a positive integer, got "${every}"`);
  }
  const retention = values["idempotency-retention"] ?? "24h";
  const retentionMatch = /^([1-9][0-9]{0,11})(ms|s|m|h|d)$/.exec(retention);
  const retentionMs =
    retentionMatch === null
      ? Number.NaN
      : Number(retentionMatch[1]) * (RETENTION_UNITS_MS[retentionMatch[2] as string] ?? Number.NaN);
  if (!Number.isSafeInteger(retentionMs) || retentionMs <= 0) {
    throw new UsageError(
      `--idempotency-retention must be a positive number with a unit ms, s, m, h or d (e.g. 24h), got "${retention}"`,
    );
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
  const internalTls = parseInternalTlsFlags(
    values["internal-tls-dir"],
    values["internal-tls-server-name"],
  );
  if (typeof internalTls === "string") throw new UsageError(internalTls);
  return {
    clusterId,
    id,
    grpc,
    http,
    journal,
    ...(shardMapFile === undefined ? {} : { shardMapFile }),
    ...(kubernetes === undefined ? {} : { kubernetes }),
    gossipPeers: values["gossip-peer"] ?? [],
    snapshotEvery: Number(every),
    idempotencyRetentionMs: retentionMs,
    handOffTimeoutMs: Number(handOff),
    ...(internalTls === undefined ? {} : { internalTls }),
    ...(addressFile === undefined ? {} : { addressFile }),
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
      "shard-map-resource": { type: "string" },
      advertise: { type: "string" },
      kubeconfig: { type: "string" },
      "lease-duration-ms": { type: "string" },
      "lease-renew-ms": { type: "string" },
      "lease-owner-pod": { type: "string" },
      "gossip-peer": { type: "string", multiple: true },
      "snapshot-every": { type: "string" },
      "idempotency-retention": { type: "string" },
      "cluster-id": { type: "string" },
      "hand-off-timeout-ms": { type: "string" },
      "address-file": { type: "string" },
      "internal-tls-dir": { type: "string" },
      "internal-tls-server-name": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
  });
}
