// The pools the acceptance scenarios use, and a helper that starts a local cluster
// with them in a fresh temporary data directory. The scenarios themselves
// (acceptance-scenarios.ts) take any `() => Promise<LocalCluster>` that starts a
// NEW cluster with these pools on each call, so the same scenarios run on the
// SQLite journal and, later, on Cassandra (`journal: "cassandra://…"`).
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type LocalCluster, type LocalClusterOptions, startLocalCluster } from "@berth/local";
import { assignOwners, DEFAULT_SHARD_COUNT, shardOf } from "@berth/proto";

/** Namespace of every acceptance pool. */
export const ACCEPTANCE_NAMESPACE = "acceptance";
/** Workers of an acceptance cluster. */
export const ACCEPTANCE_WORKERS = 3;
/** Worker ids local mode gives {@link ACCEPTANCE_WORKERS} workers. */
export const ACCEPTANCE_WORKER_IDS: readonly string[] = Array.from(
  { length: ACCEPTANCE_WORKERS },
  (_, i) => `worker-${i}`,
);

/** Capacity 100: 500 concurrent single-unit reserves, exactly 100 may succeed. */
export const OVERSELL_POOL = `${ACCEPTANCE_NAMESPACE}/oversell`;
export const OVERSELL_CAPACITY = 100;
/** A pool bad requests are aimed at (and a good one afterwards). */
export const BAD_INPUT_POOL = `${ACCEPTANCE_NAMESPACE}/bad-input`;
/** A pool whose reservation is watched propagating to every node. */
export const VISIBILITY_POOL = `${ACCEPTANCE_NAMESPACE}/visible`;
export const VISIBILITY_CAPACITY = 10;
/** Label selector matching only {@link VISIBILITY_POOL}. */
export const VISIBILITY_SELECTOR = "suite=acceptance,scenario=visibility";
/** A pool whose shard is moved to another worker. */
export const MOVING_POOL = `${ACCEPTANCE_NAMESPACE}/moving`;
/** Capacity of each pool of the kill -9 stream: never the limit. */
export const CRASH_CAPACITY = 1_000_000;
/** Pools of the kill -9 stream owned by each worker (in the initial ShardMap). */
export const CRASH_POOLS_PER_WORKER = 4;

/**
 * Pools for the kill -9 stream: {@link CRASH_POOLS_PER_WORKER} per worker under the
 * initial assignment of a fresh data directory (rendezvous over worker-0..2, 256
 * shards), so every worker owns some. The scenario re-checks this against the
 * running cluster's ShardMap rather than trusting it.
 */
export const CRASH_POOLS: readonly string[] = (() => {
  const owners = assignOwners(ACCEPTANCE_WORKER_IDS, DEFAULT_SHARD_COUNT);
  const perWorker = new Map<string, string[]>(ACCEPTANCE_WORKER_IDS.map((id) => [id, []]));
  for (let i = 0; [...perWorker.values()].some((l) => l.length < CRASH_POOLS_PER_WORKER); i++) {
    const pool = `${ACCEPTANCE_NAMESPACE}/crash-${i}`;
    const list = perWorker.get(owners[shardOf(pool, DEFAULT_SHARD_COUNT)] ?? "");
    if (list !== undefined && list.length < CRASH_POOLS_PER_WORKER) list.push(pool);
  }
  return [...perWorker.values()].flat().sort();
})();

interface PoolDoc {
  readonly pool: string;
  readonly capacity: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly window?: { readonly start: string; readonly end: string };
}

function poolDocs(): PoolDoc[] {
  const labels = (scenario: string) => ({ suite: "acceptance", scenario });
  return [
    { pool: OVERSELL_POOL, capacity: OVERSELL_CAPACITY, labels: labels("oversell") },
    { pool: BAD_INPUT_POOL, capacity: 1000, labels: labels("bad-input") },
    {
      pool: VISIBILITY_POOL,
      capacity: VISIBILITY_CAPACITY,
      labels: labels("visibility"),
      window: { start: "2030-06-10T09:00:00Z", end: "2030-06-10T10:00:00Z" },
    },
    { pool: MOVING_POOL, capacity: 10, labels: labels("moving") },
    ...CRASH_POOLS.map((pool) => ({ pool, capacity: CRASH_CAPACITY, labels: labels("crash") })),
  ];
}

/** The CapacityPool manifests (one YAML stream) of every acceptance pool. */
export function acceptancePoolsYaml(): string {
  return poolDocs()
    .map((d) => {
      const [namespace, name] = d.pool.split("/") as [string, string];
      const lines = [
        "apiVersion: berth.dev/v1alpha1",
        "kind: CapacityPool",
        "metadata:",
        `  name: ${name}`,
        `  namespace: ${namespace}`,
        "  labels:",
        ...Object.entries(d.labels).map(([k, v]) => `    ${k}: ${v}`),
        "spec:",
        `  capacity: ${d.capacity}`,
      ];
      if (d.window !== undefined) {
        lines.push("  window:", `    start: ${d.window.start}`, `    end: ${d.window.end}`);
      }
      return lines.join("\n");
    })
    .join("\n---\n")
    .concat("\n");
}

/**
 * Starts a local cluster (3 workers, free ports, fast restarts) with the acceptance
 * pools in a new temporary data directory, removed when the cluster is stopped
 * (kept, and its path printed, when BERTH_ACCEPTANCE_KEEP=1: the process logs are in
 * `<dir>/logs`).
 *
 * @param options overrides, e.g. `{ journal: "cassandra://…" }`
 */
export async function startAcceptanceCluster(
  options: Partial<LocalClusterOptions> = {},
): Promise<LocalCluster> {
  const dataDir = mkdtempSync(join(tmpdir(), "berth-acceptance-"));
  const pools = join(dataDir, "acceptance-pools.yaml");
  writeFileSync(pools, acceptancePoolsYaml());
  const keep = process.env.BERTH_ACCEPTANCE_KEEP === "1";
  let cluster: LocalCluster;
  try {
    cluster = await startLocalCluster({
      port: 0,
      workers: ACCEPTANCE_WORKERS,
      dataDir,
      pools: [pools],
      restartBackoff: { initialMs: 100, maxMs: 1000 },
      stopTimeoutMs: 5000,
      ...options,
    });
  } catch (e: unknown) {
    if (!keep) rmSync(dataDir, { recursive: true, force: true });
    throw e;
  }
  const stop = cluster.stop;
  cluster.stop = async () => {
    await stop();
    if (keep) console.log(`acceptance cluster data kept in ${dataDir}`);
    else rmSync(dataDir, { recursive: true, force: true });
  };
  return cluster;
}
