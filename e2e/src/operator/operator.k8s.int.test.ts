// Berth on a real kube-apiserver, as a user meets it: `kubectl apply` of CapacityPools,
// two operator replicas (leader election), three workers in Kubernetes mode (Leases,
// the ShardMap resource) on one SQLite journal, a gateway routing by the ShardMap.
// Every process runs on the host; real pods come with the Helm chart.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { parseRichStatus } from "@berth/proto";
import { CapacityApi } from "../acceptance/clients.js";
import { goMissingReason } from "../kubernetes/build.js";
import { type ControlPlane, startControlPlane } from "../kubernetes/control-plane.js";
import { HostProcess, loopbackAddresses, until } from "./host-cluster.js";

const skip = goMissingReason();
if (skip) console.log(`# SKIP operator end-to-end tests: ${skip}`);

const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const NS = "berth";
const CLUSTER_ID = "e2e-operator";
const SHARDS = 32;

interface PoolItem {
  metadata: { name: string; namespace: string; generation?: number; finalizers?: string[] };
  spec: { capacity: number; closed?: boolean };
  status?: {
    owner?: string;
    epoch?: number;
    reserved?: number;
    available?: number;
    observedGeneration?: number;
    conditions?: { type: string; status: string; reason: string }[];
  };
}

interface ShardMapItem {
  status?: {
    revision?: number;
    liveMembers?: number;
    shards?: { shard: number; owner: string; epoch: number; state: string }[];
    conditions?: { type: string; status: string }[];
  };
}

describe("Berth on Kubernetes: operator, workers and gateway on a real API server", {
  skip,
}, () => {
  let cp: ControlPlane;
  let dir: string;
  let api: CapacityApi;
  const workers: HostProcess[] = [];
  const operators: HostProcess[] = [];
  let gateway: HostProcess;

  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await cp.kubectl(args);
    assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const pools = async (): Promise<PoolItem[]> =>
    (JSON.parse(await kubectl("get", "capacitypools", "-A", "-o", "json")) as { items: PoolItem[] })
      .items;
  /** The ShardMap, or an empty one before the operator created it. */
  const shardMap = async (): Promise<ShardMapItem> => {
    const r = await cp.kubectl(["get", "shardmap", "berth", "-n", NS, "-o", "json"]);
    return r.code === 0 ? (JSON.parse(r.stdout) as ShardMapItem) : {};
  };
  const ready = (p: PoolItem) =>
    p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
  const explain = async () => {
    const lines = [
      `pools: ${JSON.stringify((await pools()).map((p) => [p.metadata.name, p.status]))}`,
    ];
    for (const p of [...operators, ...workers, gateway]) {
      if (p !== undefined) lines.push(`--- ${p.name}\n${p.tail(15)}`);
    }
    return lines.join("\n");
  };

  before(async () => {
    cp = await startControlPlane();
    dir = mkdtempSync(join(tmpdir(), "berth-operator-e2e-"));
    await kubectl("apply", "-f", resolve(REPO_ROOT, "charts/berth/crds"));
    await kubectl(
      "wait",
      "--for=condition=Established",
      "crd/capacitypools.berth.dev",
      "crd/shardmaps.berth.dev",
      "--timeout=60s",
    );
    for (const ns of [NS, "delivery", "riverside-hall", "shop"])
      await kubectl("create", "namespace", ns);
    const kubeconfig = cp.adminKubeconfig;
    const journal = `sqlite://${join(dir, "journal.db")}`;
    const addresses = await loopbackAddresses(3 * 2 + 2 * 1 + 3);
    const take = () => addresses.shift() as string;
    for (let i = 0; i < 3; i++) {
      const grpc = take();
      const http = take();
      workers.push(
        new HostProcess(
          `worker-${i}`,
          "worker/src/main.ts",
          [
            "--id",
            `worker-${i}`,
            "--grpc",
            grpc,
            "--http",
            http,
            "--journal",
            journal,
            "--shard-map-resource",
            `${NS}/berth`,
            "--kubeconfig",
            kubeconfig,
            "--cluster-id",
            CLUSTER_ID,
            "--hand-off-timeout-ms",
            "20000",
            "--lease-duration-ms",
            "3000",
            "--lease-renew-ms",
            "500",
          ],
          join(dir, "logs"),
          http,
        ),
      );
    }
    for (const id of ["operator-a", "operator-b"]) {
      const http = take();
      operators.push(
        new HostProcess(
          id,
          "operator/src/main.ts",
          [
            "--namespace",
            NS,
            "--shards",
            String(SHARDS),
            "--quorum",
            "2",
            "--identity",
            id,
            "--cluster-id",
            CLUSTER_ID,
            "--kubeconfig",
            kubeconfig,
            "--http",
            http,
            "--lease-duration-ms",
            "4000",
            "--renew-deadline-ms",
            "3000",
            "--retry-period-ms",
            "500",
          ],
          join(dir, "logs"),
          http,
        ),
      );
    }
    const [grpc, gossip, http] = [take(), take(), take()];
    gateway = new HostProcess(
      "gateway",
      "gateway/src/main.ts",
      [
        "--shard-map-resource",
        `${NS}/berth`,
        "--kubeconfig",
        kubeconfig,
        "--grpc",
        grpc,
        "--gossip",
        gossip,
        "--http",
        http,
        "--cluster-id",
        CLUSTER_ID,
        "--gossip-pull-ms",
        "200",
        "--shard-map-wait-ms",
        "0",
      ],
      join(dir, "logs"),
      http,
    );
    for (const p of [...operators, ...workers, gateway]) p.start();
    api = new CapacityApi(grpc);
    await until(
      "every shard served and the gateway ready",
      async () => {
        const m = await shardMap();
        const owned = m.status?.shards?.filter((s) => s.owner !== "" && s.state === "Active");
        return owned?.length === SHARDS && (await gateway.ready()) && m.status?.liveMembers === 3;
      },
      120_000,
      explain,
    );
  });

  after(async () => {
    api?.close();
    await Promise.all([...operators, ...workers, gateway].map((p) => p?.stop("SIGTERM", 10_000)));
    await cp?.stop();
    if (dir !== undefined && process.exitCode === undefined)
      rmSync(dir, { recursive: true, force: true });
  });

  test("kubectl apply of the example pools: every pool Ready with an owner, served through the gateway", async () => {
    await kubectl("apply", "-f", resolve(REPO_ROOT, "examples/pools.yaml"));
    const expected = (await pools()).length;
    assert.ok(expected >= 5, `examples/pools.yaml defines pools (${expected})`);
    await until("every pool Ready", async () => (await pools()).every(ready), 60_000, explain);
    for (const p of await pools()) {
      assert.match(p.status?.owner ?? "", /^worker-[0-2]$/);
      assert.ok((p.status?.epoch ?? 0) >= 1);
      assert.deepEqual(p.metadata.finalizers, ["berth.dev/close-pool"]);
      const served = await api.getPool(`${p.metadata.namespace}/${p.metadata.name}`);
      assert.equal(served.capacity, p.spec.capacity);
    }
    const columns = await kubectl("get", "capacitypools", "-n", "delivery");
    assert.match(
      columns.split("\n")[0] ?? "",
      /CAPACITY\s+RESERVED\s+AVAILABLE\s+OWNER\s+READY\s+AGE/,
    );
  });

  test("a reserve shows in kubectl get capacitypools within seconds", async () => {
    const first = (await pools()).find((p) => p.spec.closed !== true && p.spec.capacity >= 2);
    assert.ok(first !== undefined, "an open pool with room for 2");
    const id = `${first.metadata.namespace}/${first.metadata.name}`;
    const r = await api.reserve({ pool: id, units: 2, requestId: "e2e-status-1" });
    assert.equal(r.replayed, false);
    await until(
      `status.reserved of ${id} to be 2`,
      async () => {
        const p = (await pools()).find((x) => x.metadata.name === first.metadata.name);
        return p?.status?.reserved === 2 && p.status.available === first.spec.capacity - 2;
      },
      30_000,
      explain,
    );
  });

  test("editing a pool's capacity reaches its owner; observedGeneration follows", async () => {
    const [, second] = await pools();
    assert.ok(second !== undefined);
    const id = `${second.metadata.namespace}/${second.metadata.name}`;
    const capacity = second.spec.capacity + 7;
    await kubectl(
      "patch",
      "capacitypool",
      second.metadata.name,
      "-n",
      second.metadata.namespace,
      "--type",
      "merge",
      "-p",
      JSON.stringify({ spec: { capacity } }),
    );
    await until(`the owner of ${id} to serve capacity ${capacity}`, async () => {
      return (await api.getPool(id)).capacity === capacity;
    });
    await until("observedGeneration to follow", async () => {
      const p = (await pools()).find((x) => x.metadata.name === second.metadata.name);
      return p?.status?.observedGeneration === p?.metadata.generation && ready(p as PoolItem);
    });
  });

  test("deleting a pool closes it on its owner first; the resource then goes", async () => {
    const all = await pools();
    const last = all[all.length - 1] as PoolItem;
    const id = `${last.metadata.namespace}/${last.metadata.name}`;
    await kubectl(
      "delete",
      "capacitypool",
      last.metadata.name,
      "-n",
      last.metadata.namespace,
      "--wait=true",
      "--timeout=60s",
    );
    const failure = await api.reserve({ pool: id, units: 1, requestId: "after-delete" }).then(
      () => assert.fail("a deleted pool took a reservation"),
      (e: unknown) => parseRichStatus(e),
    );
    assert.equal(failure.reason, "POOL_CLOSED");
  });
});
