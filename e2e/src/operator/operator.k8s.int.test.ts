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
import { DEFAULT_SERVICE_ACCOUNTS, LAST_APPLIED_ANNOTATION, rbacObjects } from "@berth/kubernetes";
import {
  applyList,
  type BerthOnHost,
  type ControlPlane,
  goMissingReason,
  installCrds,
  startBerthOnHost,
  startControlPlane,
  until,
} from "@berth/testing/kubernetes";
import * as grpc from "@grpc/grpc-js";
import { CapacityApi, failureOf } from "../acceptance/clients.js";

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

describe("Berth on Kubernetes: operator, workers and gateway on a real API server", {
  skip,
}, () => {
  let cp: ControlPlane;
  let dir: string;
  let api: CapacityApi;
  let berth: BerthOnHost;

  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await cp.kubectl(args);
    assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  const pools = async (): Promise<PoolItem[]> =>
    (JSON.parse(await kubectl("get", "capacitypools", "-A", "-o", "json")) as { items: PoolItem[] })
      .items;
  const ready = (p: PoolItem) =>
    p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
  const explain = async () =>
    `pools: ${JSON.stringify((await pools()).map((p) => [p.metadata.name, p.status]))}\n${await berth.explain()}`;

  before(async () => {
    cp = await startControlPlane();
    dir = mkdtempSync(join(tmpdir(), "berth-operator-e2e-"));
    await installCrds(cp);
    for (const ns of [NS, "delivery", "riverside-hall", "shop"])
      await kubectl("create", "namespace", ns);
    // Each component with its own ServiceAccount token and only the rights rbac.ts
    // grants it (the chart's roles); workers' tokens are bound to their Pod objects
    // (Pending here: no kubelet), which the worker Lease policy checks.
    await applyList(cp, dir, rbacObjects({ namespace: NS }));
    const sa = DEFAULT_SERVICE_ACCOUNTS;
    const operatorKubeconfig = await cp.serviceAccountKubeconfig({
      namespace: NS,
      name: sa.operator,
    });
    const gatewayKubeconfig = await cp.serviceAccountKubeconfig({
      namespace: NS,
      name: sa.gateway,
    });
    await applyList(cp, dir, [
      { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: sa.worker, namespace: NS } },
    ]);
    const workerKubeconfigs = new Map<string, string>();
    for (const id of ["worker-0", "worker-1", "worker-2"]) {
      await applyList(cp, dir, [
        {
          apiVersion: "v1",
          kind: "Pod",
          metadata: { name: id, namespace: NS },
          spec: { serviceAccountName: sa.worker, containers: [{ name: "worker", image: "none" }] },
        },
      ]);
      const uid = (
        await kubectl("get", "pod", id, "-n", NS, "-o", "jsonpath={.metadata.uid}")
      ).trim();
      workerKubeconfigs.set(
        id,
        await cp.serviceAccountKubeconfig({
          namespace: NS,
          name: sa.worker,
          boundPod: { name: id, uid },
        }),
      );
    }
    berth = await startBerthOnHost({
      kubectl: (args) => cp.kubectl(args),
      kubeconfigs: {
        operator: () => operatorKubeconfig,
        worker: (id) => workerKubeconfigs.get(id) as string,
        gateway: gatewayKubeconfig,
      },
      dir,
      namespace: NS,
      clusterId: CLUSTER_ID,
      shards: SHARDS,
    });
    api = new CapacityApi(berth.gatewayAddress);
  });

  after(async () => {
    api?.close();
    await berth?.stop();
    await cp?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
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
      // The operator caches pools without kubectl's last-applied copy, and its writes
      // (finalizer and status PATCHes) leave the server's untouched.
      assert.ok(
        (p.metadata as { annotations?: Record<string, string> }).annotations?.[
          LAST_APPLIED_ANNOTATION
        ],
        `${p.metadata.name} keeps kubectl's last-applied annotation`,
      );
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

  test("deleting a pool retires it on its owner first (NOT_FOUND, not listed); the resource then goes", async () => {
    const all = await pools();
    const last = all[all.length - 1] as PoolItem;
    const id = `${last.metadata.namespace}/${last.metadata.name}`;
    const listed = async () =>
      (await api.getAvailability({ includeClosed: true })).pools.some((p) => p.pool === id);
    await until(`${id} to be listed by GetAvailability`, listed);
    await kubectl(
      "delete",
      "capacitypool",
      last.metadata.name,
      "-n",
      last.metadata.namespace,
      "--wait=true",
      "--timeout=60s",
    );
    const reserve = await failureOf(
      api.reserve({ pool: id, units: 1, requestId: "after-delete" }),
      `Reserve on the deleted ${id}`,
    );
    assert.equal(reserve.code, grpc.status.NOT_FOUND, reserve.message);
    assert.equal(reserve.reason, "POOL_NOT_FOUND");
    const get = await failureOf(api.getPool(id), `GetPool of the deleted ${id}`);
    assert.equal(get.code, grpc.status.NOT_FOUND, get.message);
    assert.equal(get.reason, "POOL_NOT_FOUND");
    await until(`${id} to leave GetAvailability`, async () => !(await listed()));
  });
});
