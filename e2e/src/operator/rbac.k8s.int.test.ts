// Least privilege on a real kube-apiserver: the Roles, ClusterRole, bindings and the
// worker Lease admission policy from @berth/kubernetes's rbac.ts, applied as the chart
// would, then exercised with each component's own ServiceAccount token. Worker tokens
// are bound to (Pending) Pod objects, as the kubelet's projected tokens are: that is
// what puts the pod name in the user's extra info, which the policy checks. The worker
// Pods name a StatefulSet object as their controller and an operator Pod a ReplicaSet
// (objects only: no controller-manager runs here), so each component can be seen
// reading its own Pod and giving its Lease that owner.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  API_VERSION,
  CAPACITY_POOL_FINALIZER,
  CAPACITY_POOL_KIND,
  CAPACITY_POOL_PLURAL,
  DEFAULT_LEADER_LEASE,
  DEFAULT_SERVICE_ACCOUNTS,
  GROUP,
  LeaderElector,
  PodControllerOwner,
  rbacObjects,
  SHARD_MAP_KIND,
  SHARD_MAP_PLURAL,
  ShardMapResourceSource,
  VERSION,
  WorkerLease,
} from "@berth/kubernetes";
import { type ControlPlane, goMissingReason, startControlPlane } from "@berth/testing/kubernetes";
import {
  ApiException,
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  EventsV1Api,
  type KubeConfig,
  RbacAuthorizationV1Api,
  type V1Lease,
  V1MicroTime,
  type V1OwnerReference,
} from "@kubernetes/client-node";
import { pino } from "pino";

const skip = goMissingReason();
if (skip) console.log(`# SKIP RBAC tests: ${skip}`);

const root = new URL("../../../", import.meta.url).pathname;
const logger = pino({ level: process.env.BERTH_TEST_LOG_LEVEL ?? "silent" });
/** The install namespace. */
const NS = "berth";
/** A user namespace holding CapacityPools. */
const SHOP = "shop";
const POLICY_MESSAGE = /may write only the Lease named after its own pod/;
const RBAC_MESSAGE = /forbidden: User "system:serviceaccount:berth:/;

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** `value` as plain JSON data (the client returns class instances). */
const json = (value: unknown): unknown =>
  value === undefined ? undefined : JSON.parse(JSON.stringify(value));

/** Asserts that `call` is refused with 403, its message matching `why`. */
async function forbidden(what: string, call: Promise<unknown>, why: RegExp): Promise<void> {
  try {
    await call;
  } catch (e: unknown) {
    assert.ok(e instanceof ApiException, `${what}: ${String(e)}`);
    const message = statusMessage(e.body);
    assert.equal(e.code, 403, `${what}: HTTP ${e.code} ${message}`);
    assert.match(message, why, what);
    return;
  }
  assert.fail(`${what}: allowed, should be forbidden`);
}

/** The message of the Status an ApiException carries (its body is the response text). */
function statusMessage(body: unknown): string {
  try {
    const status = (typeof body === "string" ? JSON.parse(body) : body) as { message?: unknown };
    return String(status.message);
  } catch {
    return String(body);
  }
}

/** The API clients of one identity. */
function clients(kc: KubeConfig) {
  return {
    kc,
    objects: kc.makeApiClient(CustomObjectsApi),
    leases: kc.makeApiClient(CoordinationV1Api),
    core: kc.makeApiClient(CoreV1Api),
    events: kc.makeApiClient(EventsV1Api),
    rbac: kc.makeApiClient(RbacAuthorizationV1Api),
    apps: kc.makeApiClient(AppsV1Api),
  };
}
type Clients = ReturnType<typeof clients>;

const shardMaps = (namespace = NS) => ({
  group: GROUP,
  version: VERSION,
  namespace,
  plural: SHARD_MAP_PLURAL,
});
const pools = (namespace = SHOP) => ({
  group: GROUP,
  version: VERSION,
  namespace,
  plural: CAPACITY_POOL_PLURAL,
});
const shardMap = (name: string) => ({
  apiVersion: API_VERSION,
  kind: SHARD_MAP_KIND,
  metadata: { name },
  spec: { shardCount: 2 },
});
const shardMapStatus = {
  revision: 1,
  quorum: 1,
  members: [{ id: "berth-worker-0", address: "10.0.0.7:7000", live: true }],
  shards: [0, 1].map((shard) => ({ shard, owner: "berth-worker-0", epoch: 1, state: "Active" })),
};
const lease = (name: string): V1Lease => ({
  metadata: { name, namespace: NS },
  spec: { holderIdentity: name, leaseDurationSeconds: 6, renewTime: new V1MicroTime() },
});

describe("Berth's least-privilege RBAC and worker Lease policy on a real kube-apiserver", {
  skip,
}, () => {
  let cp: ControlPlane;
  let scratch: string;
  let admin: Clients;
  let operator: Clients;
  let gateway: Clients;
  /** Tokens bound to the Pods berth-worker-0 and berth-worker-1. */
  let worker0: Clients;
  let worker1: Clients;
  /** A worker ServiceAccount token bound to no Pod. */
  let unboundWorker: Clients;
  /** The worker Pods' controller, as a plain owner reference. */
  let workerStatefulSet: V1OwnerReference;
  /** The operator Pod's controller, as a plain owner reference. */
  let operatorReplicaSet: V1OwnerReference;

  const kubectl = async (...args: string[]) => {
    const r = await cp.kubectl(args);
    assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
  };
  const applyAll = async (items: readonly object[]) => {
    const file = join(scratch, `objects-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(file, JSON.stringify({ apiVersion: "v1", kind: "List", items }));
    await kubectl("apply", "-f", file);
  };

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), "berth-rbac-"));
    cp = await startControlPlane();
    admin = clients(cp.kubeConfig());
    await kubectl("apply", "-f", join(root, "charts/berth/crds"));
    await kubectl(
      "wait",
      "--for=condition=Established",
      "--timeout=60s",
      `crd/${SHARD_MAP_PLURAL}.${GROUP}`,
      `crd/${CAPACITY_POOL_PLURAL}.${GROUP}`,
    );
    for (const name of [NS, SHOP, "elsewhere"]) {
      await admin.core.createNamespace({ body: { metadata: { name } } });
    }
    await applyAll(rbacObjects({ namespace: NS }));

    const sa = DEFAULT_SERVICE_ACCOUNTS;
    const tokenOf = async (name: string, boundPod?: { name: string; uid: string }) =>
      clients(
        cp.kubeConfig(
          await cp.serviceAccountKubeconfig({
            namespace: NS,
            name,
            ...(boundPod ? { boundPod } : {}),
          }),
        ),
      );
    operator = await tokenOf(sa.operator);
    gateway = await tokenOf(sa.gateway);
    unboundWorker = await tokenOf(sa.worker);
    const template = (app: string) => ({
      selector: { matchLabels: { app } },
      template: {
        metadata: { labels: { app } },
        spec: { containers: [{ name: app, image: "none" }] },
      },
    });
    const controllerOf = (
      o: { apiVersion: string; kind: string },
      made: { metadata?: { name?: string; uid?: string } },
    ): V1OwnerReference => ({
      apiVersion: o.apiVersion,
      kind: o.kind,
      name: made.metadata?.name ?? "",
      uid: made.metadata?.uid ?? "",
    });
    workerStatefulSet = controllerOf(
      { apiVersion: "apps/v1", kind: "StatefulSet" },
      await admin.apps.createNamespacedStatefulSet({
        namespace: NS,
        body: {
          metadata: { name: "berth-worker" },
          spec: { serviceName: "berth-worker", ...template("berth-worker") },
        },
      }),
    );
    operatorReplicaSet = controllerOf(
      { apiVersion: "apps/v1", kind: "ReplicaSet" },
      await admin.apps.createNamespacedReplicaSet({
        namespace: NS,
        body: { metadata: { name: "berth-operator-6b7f9" }, spec: template("berth-operator") },
      }),
    );
    await admin.core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: {
          name: "berth-operator-6b7f9-x2kq4",
          labels: { app: "berth-operator" },
          ownerReferences: [{ ...operatorReplicaSet, controller: true, blockOwnerDeletion: true }],
        },
        spec: { serviceAccountName: sa.operator, containers: [{ name: "o", image: "none" }] },
      },
    });
    const pod = async (name: string) => {
      const created = await admin.core.createNamespacedPod({
        namespace: NS,
        body: {
          metadata: {
            name,
            labels: { app: "berth-worker" },
            ownerReferences: [{ ...workerStatefulSet, controller: true, blockOwnerDeletion: true }],
          },
          // No kubelet here: the Pod stays Pending, which is all a bound token needs.
          spec: { serviceAccountName: sa.worker, containers: [{ name: "worker", image: "none" }] },
        },
      });
      return tokenOf(sa.worker, { name, uid: created.metadata?.uid ?? "" });
    };
    worker0 = await pod("berth-worker-0");
    worker1 = await pod("berth-worker-1");

    await admin.objects.createNamespacedCustomObject({
      ...pools(),
      body: {
        apiVersion: API_VERSION,
        kind: CAPACITY_POOL_KIND,
        metadata: { name: "cart" },
        spec: { capacity: 5 },
      },
    });
    await admin.objects.createNamespacedCustomObject({ ...shardMaps(), body: shardMap("berth") });
    await admin.leases.createNamespacedLease({ namespace: NS, body: lease("berth-worker-9") });

    // RBAC and the policy take effect once kube-apiserver's caches have them: wait
    // until a worker is refused a Lease that is not its own (a dry run writes nothing).
    await until("the worker Lease policy to be in force", async () => {
      try {
        await worker0.leases.createNamespacedLease({
          namespace: NS,
          body: lease("probe"),
          dryRun: "All",
        });
        return false;
      } catch (e: unknown) {
        return e instanceof ApiException && e.code === 403 && POLICY_MESSAGE.test(String(e.body));
      }
    });
  });
  after(async () => {
    await cp?.stop();
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  });

  test("a worker's pod-bound token creates, renews and releases the Lease named after its pod, owned by the pod's StatefulSet", async () => {
    const owner = new PodControllerOwner({
      api: worker0.core,
      namespace: NS,
      pod: "berth-worker-0",
      logger,
    });
    owner.start();
    await owner.whenResolved();
    assert.equal(owner.failures, 0);
    const own = new WorkerLease({
      api: worker0.leases,
      namespace: NS,
      name: "berth-worker-0",
      address: "10.0.0.7:7000",
      renewIntervalMs: 200,
      logger,
      owner,
    });
    own.start();
    try {
      await until("3 renewals", () => own.stats().renewals >= 3);
      assert.equal(own.stats().failures, 0, own.stats().lastError);
      // The admission policy lets the worker write its Lease with an owner, and RBAC
      // needs no right on the StatefulSet (no blockOwnerDeletion).
      const written = await admin.leases.readNamespacedLease({
        namespace: NS,
        name: "berth-worker-0",
      });
      assert.deepEqual(json(written.metadata?.ownerReferences), [workerStatefulSet]);
    } finally {
      await own.stop({ release: true });
    }
    await until("the Lease to be gone", async () => {
      try {
        await admin.leases.readNamespacedLease({ namespace: NS, name: "berth-worker-0" });
        return false;
      } catch (e: unknown) {
        return e instanceof ApiException && e.code === 404;
      }
    });
  });

  test("a worker cannot create, renew or delete another worker's Lease, nor the operator's", async () => {
    const own = await worker1.leases.createNamespacedLease({
      namespace: NS,
      body: lease("berth-worker-1"),
    });
    await admin.leases.createNamespacedLease({ namespace: NS, body: lease(DEFAULT_LEADER_LEASE) });
    const w0 = worker0.leases;
    await forbidden(
      "worker-0 creates berth-worker-2",
      w0.createNamespacedLease({ namespace: NS, body: lease("berth-worker-2") }),
      POLICY_MESSAGE,
    );
    await forbidden(
      "worker-0 renews berth-worker-1",
      w0.replaceNamespacedLease({
        namespace: NS,
        name: "berth-worker-1",
        body: { ...own, spec: { ...own.spec, renewTime: new V1MicroTime() } },
      }),
      POLICY_MESSAGE,
    );
    await forbidden(
      "worker-0 deletes berth-worker-1",
      w0.deleteNamespacedLease({ namespace: NS, name: "berth-worker-1" }),
      POLICY_MESSAGE,
    );
    const leader = await w0.readNamespacedLease({ namespace: NS, name: DEFAULT_LEADER_LEASE });
    await forbidden(
      "worker-0 takes the operator's leader Lease",
      w0.replaceNamespacedLease({
        namespace: NS,
        name: DEFAULT_LEADER_LEASE,
        body: { ...leader, spec: { ...leader.spec, holderIdentity: "berth-worker-0" } },
      }),
      POLICY_MESSAGE,
    );
    // worker-1's own Lease is untouched.
    const after = await admin.leases.readNamespacedLease({ namespace: NS, name: "berth-worker-1" });
    assert.equal(after.metadata?.resourceVersion, own.metadata?.resourceVersion);
  });

  test("a worker token bound to no pod can write no Lease at all", async () => {
    await forbidden(
      "an unbound worker token creates berth-worker-5",
      unboundWorker.leases.createNamespacedLease({ namespace: NS, body: lease("berth-worker-5") }),
      POLICY_MESSAGE,
    );
  });

  test("a worker reads and watches the ShardMap, cannot write it, and cannot touch CapacityPools", async () => {
    const read = (await worker0.objects.getNamespacedCustomObject({
      ...shardMaps(),
      name: "berth",
    })) as { metadata: { resourceVersion: string } };
    await worker0.objects.listNamespacedCustomObject(shardMaps());
    const source = new ShardMapResourceSource({
      kubeConfig: worker0.kc,
      namespace: NS,
      name: "berth",
      logger,
    });
    source.start();
    try {
      await source.synced(AbortSignal.timeout(90_000));
    } finally {
      source.close();
    }
    const o = worker0.objects;
    await forbidden(
      "worker writes the ShardMap's status",
      o.replaceNamespacedCustomObjectStatus({
        ...shardMaps(),
        name: "berth",
        body: { ...shardMap("berth"), metadata: read.metadata, status: shardMapStatus },
      }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "worker writes the ShardMap's spec",
      o.replaceNamespacedCustomObject({
        ...shardMaps(),
        name: "berth",
        body: { ...shardMap("berth"), metadata: read.metadata },
      }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "worker creates a ShardMap",
      o.createNamespacedCustomObject({ ...shardMaps(), body: shardMap("mine") }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "worker deletes the ShardMap",
      o.deleteNamespacedCustomObject({ ...shardMaps(), name: "berth" }),
      RBAC_MESSAGE,
    );
    await forbidden("worker lists pools", o.listNamespacedCustomObject(pools()), RBAC_MESSAGE);
    // Pods: get (its own, to find its controller) and nothing more.
    await worker0.core.readNamespacedPod({ namespace: NS, name: "berth-worker-0" });
    await forbidden(
      "worker lists Pods",
      worker0.core.listNamespacedPod({ namespace: NS }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "worker reads a Pod elsewhere",
      worker0.core.readNamespacedPod({ namespace: "elsewhere", name: "x" }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "worker deletes a Pod",
      worker0.core.deleteNamespacedPod({ namespace: NS, name: "berth-worker-1" }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "worker reads a Secret",
      worker0.core.readNamespacedSecret({ namespace: NS, name: "x" }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "worker lists Secrets",
      worker0.core.listNamespacedSecret({ namespace: NS }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "worker reads its StatefulSet",
      worker0.apps.readNamespacedStatefulSet({ namespace: NS, name: "berth-worker" }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "worker reads a pool",
      o.getNamespacedCustomObject({ ...pools(), name: "cart" }),
      RBAC_MESSAGE,
    );
  });

  test("the gateway reads and watches ShardMaps and nothing else", async () => {
    const read = (await gateway.objects.getNamespacedCustomObject({
      ...shardMaps(),
      name: "berth",
    })) as { metadata: { resourceVersion: string } };
    const source = new ShardMapResourceSource({
      kubeConfig: gateway.kc,
      namespace: NS,
      name: "berth",
      logger,
    });
    source.start();
    try {
      await source.synced(AbortSignal.timeout(90_000));
    } finally {
      source.close();
    }
    await forbidden(
      "gateway writes the ShardMap's status",
      gateway.objects.replaceNamespacedCustomObjectStatus({
        ...shardMaps(),
        name: "berth",
        body: { ...shardMap("berth"), metadata: read.metadata, status: shardMapStatus },
      }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "gateway lists Leases",
      gateway.leases.listNamespacedLease({ namespace: NS }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "gateway creates a Lease",
      gateway.leases.createNamespacedLease({ namespace: NS, body: lease("gateway") }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "gateway lists pools",
      gateway.objects.listNamespacedCustomObject(pools()),
      RBAC_MESSAGE,
    );
    await forbidden(
      "gateway lists Secrets",
      gateway.core.listNamespacedSecret({ namespace: NS }),
      RBAC_MESSAGE,
    );
  });

  test("the operator manages pools in any namespace, the ShardMap's status, its leader Lease and Events", async () => {
    const o = operator.objects;
    const all = (await o.listClusterCustomObject({
      group: GROUP,
      version: VERSION,
      plural: CAPACITY_POOL_PLURAL,
    })) as { items: { metadata: { namespace: string; name: string } }[] };
    assert.deepEqual(
      all.items.map((p) => `${p.metadata.namespace}/${p.metadata.name}`),
      [`${SHOP}/cart`],
    );
    const cart = (await o.getNamespacedCustomObject({ ...pools(), name: "cart" })) as {
      metadata: Record<string, unknown>;
    };
    const finalized = (await o.replaceNamespacedCustomObject({
      ...pools(),
      name: "cart",
      body: { ...cart, metadata: { ...cart.metadata, finalizers: [CAPACITY_POOL_FINALIZER] } },
    })) as { metadata: Record<string, unknown> };
    await o.replaceNamespacedCustomObjectStatus({
      ...pools(),
      name: "cart",
      body: { ...finalized, status: { owner: "berth-worker-0", reserved: 0, available: 5 } },
    });

    const regarding = {
      apiVersion: API_VERSION,
      kind: CAPACITY_POOL_KIND,
      namespace: SHOP,
      name: "cart",
      uid: String(cart.metadata.uid),
    };
    await operator.core.createNamespacedEvent({
      namespace: SHOP,
      body: {
        metadata: { generateName: "cart-" },
        involvedObject: regarding,
        reason: "Configured",
        message: "configured on berth-worker-0",
        type: "Normal",
        source: { component: "berth-operator" },
      },
    });
    await operator.events.createNamespacedEvent({
      namespace: SHOP,
      body: {
        metadata: { generateName: "cart-" },
        eventTime: new V1MicroTime(),
        reportingController: "berth.dev/operator",
        reportingInstance: "berth-operator-0",
        action: "Configure",
        reason: "Configured",
        regarding,
        note: "configured on berth-worker-0",
        type: "Normal",
      },
    });

    const created = (await o.createNamespacedCustomObject({
      ...shardMaps(),
      body: shardMap("operator-made"),
    })) as { metadata: Record<string, unknown> };
    await o.replaceNamespacedCustomObjectStatus({
      ...shardMaps(),
      name: "operator-made",
      body: { ...created, status: shardMapStatus },
    });

    const workers = await operator.leases.listNamespacedLease({ namespace: NS });
    assert.ok(workers.items.some((l) => l.metadata?.name === "berth-worker-9"));
    const leading: string[] = [];
    const elector = new LeaderElector({
      api: operator.leases,
      namespace: NS,
      name: "berth-operator-rbac-test",
      identity: "berth-operator-0",
      leaseDurationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 200,
      onStartedLeading: () => leading.push("leads"),
      onError: (e) => leading.push(`error: ${String(e)}`),
    });
    // A leader Lease under another name than the Role grants: create works (RBAC cannot
    // restrict create by name; see rbac.ts), renewing it does not.
    elector.start();
    await until("a renewal to be refused", () => leading.length >= 2);
    await elector.stop({ release: false });
    assert.equal(leading[0], "leads");
    assert.match(leading[1] ?? "", /403/);

    const owner = new PodControllerOwner({
      api: operator.core,
      namespace: NS,
      pod: "berth-operator-6b7f9-x2kq4",
      logger,
    });
    owner.start();
    await owner.whenResolved();
    assert.equal(owner.failures, 0);
    const own = new LeaderElector({
      api: operator.leases,
      namespace: NS,
      name: DEFAULT_LEADER_LEASE,
      identity: "berth-operator-0",
      leaseDurationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 200,
      owner,
    });
    // The admin made this Lease in another test, or no one did: it is free either way
    // once its holder has not renewed for a duration.
    await admin.leases
      .deleteNamespacedLease({ namespace: NS, name: DEFAULT_LEADER_LEASE })
      .catch(() => undefined);
    own.start();
    try {
      await until("the operator to lead", () => own.isLeader);
      const renewed = await admin.leases.readNamespacedLease({
        namespace: NS,
        name: DEFAULT_LEADER_LEASE,
      });
      await until("a renewal", async () => {
        const now = await admin.leases.readNamespacedLease({
          namespace: NS,
          name: DEFAULT_LEADER_LEASE,
        });
        return now.metadata?.resourceVersion !== renewed.metadata?.resourceVersion;
      });
      const written = await admin.leases.readNamespacedLease({
        namespace: NS,
        name: DEFAULT_LEADER_LEASE,
      });
      assert.deepEqual(json(written.metadata?.ownerReferences), [operatorReplicaSet]);
    } finally {
      await own.stop();
    }
  });

  test("the operator can do nothing else: no spec writes, no other Leases, nothing elsewhere", async () => {
    const o = operator.objects;
    const map = (await o.getNamespacedCustomObject({ ...shardMaps(), name: "berth" })) as {
      metadata: Record<string, unknown>;
    };
    await forbidden(
      "operator writes the ShardMap's spec",
      o.replaceNamespacedCustomObject({
        ...shardMaps(),
        name: "berth",
        body: { ...shardMap("berth"), metadata: map.metadata },
      }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator deletes the ShardMap",
      o.deleteNamespacedCustomObject({ ...shardMaps(), name: "berth" }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator creates a ShardMap in another namespace",
      o.createNamespacedCustomObject({ ...shardMaps("elsewhere"), body: shardMap("berth") }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator lists ShardMaps in all namespaces",
      o.listClusterCustomObject({ group: GROUP, version: VERSION, plural: SHARD_MAP_PLURAL }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator creates a pool",
      o.createNamespacedCustomObject({
        ...pools(),
        body: {
          apiVersion: API_VERSION,
          kind: CAPACITY_POOL_KIND,
          metadata: { name: "x" },
          spec: { capacity: 1 },
        },
      }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator deletes a pool",
      o.deleteNamespacedCustomObject({ ...pools(), name: "cart" }),
      RBAC_MESSAGE,
    );
    const worker9 = await operator.leases.readNamespacedLease({
      namespace: NS,
      name: "berth-worker-9",
    });
    await forbidden(
      "operator renews a worker's Lease",
      operator.leases.replaceNamespacedLease({
        namespace: NS,
        name: "berth-worker-9",
        body: worker9,
      }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator deletes a worker's Lease",
      operator.leases.deleteNamespacedLease({ namespace: NS, name: "berth-worker-9" }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator lists Leases in kube-system",
      operator.leases.listNamespacedLease({ namespace: "kube-system" }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator lists Leases in all namespaces",
      operator.leases.listLeaseForAllNamespaces(),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator lists Secrets in its namespace",
      operator.core.listNamespacedSecret({ namespace: NS }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator lists Pods in its namespace",
      operator.core.listNamespacedPod({ namespace: NS }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator reads a Pod elsewhere",
      operator.core.readNamespacedPod({ namespace: "elsewhere", name: "x" }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator reads its ReplicaSet",
      operator.apps.readNamespacedReplicaSet({ namespace: NS, name: "berth-operator-6b7f9" }),
      RBAC_MESSAGE,
    );
    await forbidden(
      "operator lists Pods in all namespaces",
      operator.core.listPodForAllNamespaces(),
      RBAC_MESSAGE,
    );
    await forbidden("operator lists Namespaces", operator.core.listNamespace(), RBAC_MESSAGE);
    await forbidden(
      "operator creates a ClusterRole",
      operator.rbac.createClusterRole({
        body: {
          metadata: { name: "escalate" },
          rules: [{ apiGroups: ["*"], resources: ["*"], verbs: ["*"] }],
        },
      }),
      RBAC_MESSAGE,
    );
  });
});
