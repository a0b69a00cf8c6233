// Lease owners on a real kube-apiserver: a StatefulSet object and Pod objects whose
// controller it is (no controller-manager runs here, so nothing acts on them and the
// garbage collector itself is not exercised: the real-node install test covers that).
// A WorkerLease or LeaderElector given the pod's PodControllerOwner writes its Lease
// with the StatefulSet (or ReplicaSet) as a plain owner, adds it to a Lease it adopts,
// keeps other owners, adds it later when the pod could not be read at first, and adds a
// new controller the pod names on a later read; a pod without a controller gives no
// owner and breaks nothing; without an owner nothing changes. The worker process with
// --lease-owner-pod does the same.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { LeaderElector, PodControllerOwner, WorkerLease } from "@berth/kubernetes";
import {
  type ControlPlane,
  goMissingReason,
  HostProcess,
  installCrds,
  loopbackAddresses,
  startControlPlane,
  until,
} from "@berth/testing/kubernetes";
import {
  AppsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  type V1Lease,
  type V1OwnerReference,
} from "@kubernetes/client-node";
import { pino } from "pino";

const skip = goMissingReason();
if (skip) console.log(`# SKIP Lease owner tests: ${skip}`);

const logger = pino({ level: process.env.BERTH_TEST_LOG_LEVEL ?? "silent" });
const NS = "berth";
const ADDRESS = "10.1.2.3:7000";

/** `value` as plain JSON data (the client returns class instances). */
const json = (value: unknown): unknown =>
  value === undefined ? undefined : JSON.parse(JSON.stringify(value));

describe("Lease owners on a real kube-apiserver", { skip }, () => {
  let cp: ControlPlane;
  let leases: CoordinationV1Api;
  let core: CoreV1Api;
  let apps: AppsV1Api;
  let scratch: string;
  /** The worker pods' controller, as the plain owner the Leases must get. */
  let statefulSet: V1OwnerReference;
  /** An operator pod's controller. */
  let replicaSet: V1OwnerReference;

  const template = (app: string) => ({
    selector: { matchLabels: { app } },
    template: {
      metadata: { labels: { app } },
      spec: { containers: [{ name: app, image: "none" }] },
    },
  });
  const plain = (
    kind: string,
    made: { metadata?: { name?: string; uid?: string } },
  ): V1OwnerReference => ({
    apiVersion: "apps/v1",
    kind,
    name: made.metadata?.name ?? "",
    uid: made.metadata?.uid ?? "",
  });
  /** A Pod object (Pending forever: no kubelet), controlled by `controller` if given. */
  const pod = async (name: string, controller?: V1OwnerReference) => {
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: {
          name,
          ...(controller === undefined
            ? {}
            : {
                ownerReferences: [{ ...controller, controller: true, blockOwnerDeletion: true }],
              }),
        },
        // No controller-manager makes a "default" ServiceAccount here.
        spec: { serviceAccountName: "berth", containers: [{ name: "c", image: "none" }] },
      },
    });
  };
  const ownerOf = (name: string, extra: { initialRetryMs?: number; refreshMs?: number } = {}) =>
    new PodControllerOwner({ api: core, namespace: NS, pod: name, logger, ...extra });
  const workerLease = (name: string, owner?: PodControllerOwner) =>
    new WorkerLease({
      api: leases,
      namespace: NS,
      name,
      address: ADDRESS,
      leaseDurationMs: 3_000,
      renewIntervalMs: 200,
      logger,
      ...(owner === undefined ? {} : { owner }),
    });
  const read = (name: string): Promise<V1Lease> =>
    leases.readNamespacedLease({ namespace: NS, name });

  before(async () => {
    scratch = mkdtempSync(join(tmpdir(), "berth-lease-owner-"));
    cp = await startControlPlane();
    const kc = cp.kubeConfig();
    leases = kc.makeApiClient(CoordinationV1Api);
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await core.createNamespacedServiceAccount({
      namespace: NS,
      body: { metadata: { name: "berth" } },
    });
    statefulSet = plain(
      "StatefulSet",
      await apps.createNamespacedStatefulSet({
        namespace: NS,
        body: {
          metadata: { name: "berth-worker" },
          spec: { serviceName: "berth-worker", ...template("berth-worker") },
        },
      }),
    );
    replicaSet = plain(
      "ReplicaSet",
      await apps.createNamespacedReplicaSet({
        namespace: NS,
        body: { metadata: { name: "berth-operator-6b7f9" }, spec: template("berth-operator") },
      }),
    );
    for (const i of [0, 1, 2, 3]) await pod(`berth-worker-${i}`, statefulSet);
    await pod("berth-operator-6b7f9-x2kq4", replicaSet);
    await pod("bare");
  });
  after(async () => {
    await cp?.stop();
    if (scratch !== undefined) rmSync(scratch, { recursive: true, force: true });
  });

  test("a worker Lease is created with the pod's StatefulSet as a plain owner", async () => {
    const owner = ownerOf("berth-worker-0");
    owner.start();
    await owner.whenResolved();
    assert.deepEqual(owner.reference, statefulSet);
    const lease = workerLease("berth-worker-0", owner);
    lease.start();
    try {
      await until("a renewal", () => lease.stats().renewals >= 2);
      const written = await read("berth-worker-0");
      // No controller, no blockOwnerDeletion: the worker needs no right on the StatefulSet.
      assert.deepEqual(json(written.metadata?.ownerReferences), [statefulSet]);
      assert.equal(lease.stats().failures, 0, lease.stats().lastError);
    } finally {
      await lease.stop({ release: true });
      owner.stop();
    }
  });

  test("an existing Lease without the owner gets it when adopted; other owners are kept", async () => {
    const other: V1OwnerReference = { ...statefulSet, name: "berth-worker-old", uid: "u-old" };
    const existing: [string, V1OwnerReference[] | undefined][] = [
      ["berth-worker-1", undefined],
      ["berth-worker-2", [other]],
    ];
    for (const [name, ownerReferences] of existing) {
      await leases.createNamespacedLease({
        namespace: NS,
        body: {
          metadata: { name, ...(ownerReferences === undefined ? {} : { ownerReferences }) },
          spec: { holderIdentity: name, leaseDurationSeconds: 3 },
        },
      });
    }
    const owners = [ownerOf("berth-worker-1"), ownerOf("berth-worker-2")];
    for (const o of owners) o.start();
    await Promise.all(owners.map((o) => o.whenResolved()));
    const held = [
      workerLease("berth-worker-1", owners[0]),
      workerLease("berth-worker-2", owners[1]),
    ];
    for (const l of held) l.start();
    try {
      await until("both renewed", () => held.every((l) => l.stats().renewals >= 2));
      assert.deepEqual(json((await read("berth-worker-1")).metadata?.ownerReferences), [
        statefulSet,
      ]);
      assert.deepEqual(json((await read("berth-worker-2")).metadata?.ownerReferences), [
        other,
        statefulSet,
      ]);
    } finally {
      for (const l of held) await l.stop({ release: true });
    }
  });

  test("a pod that cannot be read at first: the Lease is held without an owner, then gets it", async () => {
    const owner = ownerOf("berth-worker-late", { initialRetryMs: 50 });
    owner.start();
    const lease = workerLease("berth-worker-late", owner);
    lease.start();
    try {
      await until(
        "renewals and failed reads",
        () => lease.stats().renewals >= 2 && owner.failures >= 2,
      );
      assert.equal((await read("berth-worker-late")).metadata?.ownerReferences, undefined);
      assert.equal(owner.reference, undefined);
      await pod("berth-worker-late", statefulSet);
      await owner.whenResolved();
      await until("the owner on the Lease", async () => {
        const refs = (await read("berth-worker-late")).metadata?.ownerReferences;
        return refs !== undefined && refs.length > 0;
      });
      assert.deepEqual(json((await read("berth-worker-late")).metadata?.ownerReferences), [
        statefulSet,
      ]);
      assert.equal(lease.stats().failures, 0, lease.stats().lastError);
    } finally {
      await lease.stop({ release: true });
      owner.stop();
    }
  });

  test("the pod is read again: a new controller (a StatefulSet re-created after an orphaning delete) is added", async () => {
    const owner = ownerOf("berth-worker-4", { refreshMs: 100 });
    await pod("berth-worker-4", statefulSet);
    owner.start();
    await owner.whenResolved();
    const lease = workerLease("berth-worker-4", owner);
    lease.start();
    try {
      await until("a renewal", () => lease.stats().renewals >= 1);
      const recreated: V1OwnerReference = {
        ...statefulSet,
        uid: "3c0ffee0-0000-4000-8000-00000000000a",
      };
      const current = await core.readNamespacedPod({ namespace: NS, name: "berth-worker-4" });
      await core.replaceNamespacedPod({
        namespace: NS,
        name: "berth-worker-4",
        body: {
          ...current,
          metadata: { ...current.metadata, ownerReferences: [{ ...recreated, controller: true }] },
        },
      });
      await until("the new owner on the Lease", async () =>
        ((await read("berth-worker-4")).metadata?.ownerReferences ?? []).some(
          (r) => r.uid === recreated.uid,
        ),
      );
      // The old one stays until the garbage collector drops it (its owner is gone).
      assert.deepEqual(json((await read("berth-worker-4")).metadata?.ownerReferences), [
        statefulSet,
        recreated,
      ]);
    } finally {
      await lease.stop({ release: true });
      owner.stop();
    }
  });

  test("a pod without a controller: no owner, and the Lease is renewed as ever", async () => {
    const owner = ownerOf("bare");
    owner.start();
    await owner.whenResolved();
    assert.equal(owner.reference, undefined);
    assert.equal(owner.failures, 0);
    const lease = workerLease("bare", owner);
    lease.start();
    try {
      await until("renewals", () => lease.stats().renewals >= 3);
      assert.equal((await read("bare")).metadata?.ownerReferences, undefined);
      assert.equal(lease.stats().failures, 0, lease.stats().lastError);
    } finally {
      await lease.stop({ release: true });
    }
  });

  test("no owner given: the Lease has no ownerReferences (host mode, today's behaviour)", async () => {
    const lease = workerLease("berth-worker-3");
    lease.start();
    try {
      await until("renewals", () => lease.stats().renewals >= 2);
      assert.equal((await read("berth-worker-3")).metadata?.ownerReferences, undefined);
    } finally {
      await lease.stop({ release: true });
    }
  });

  test("the leader Lease gets the leader's ReplicaSet, created or taken over", async () => {
    const owner = ownerOf("berth-operator-6b7f9-x2kq4");
    owner.start();
    await owner.whenResolved();
    const elector = (name: string, withOwner: boolean) =>
      new LeaderElector({
        api: leases,
        namespace: NS,
        name,
        identity: "berth-operator-6b7f9-x2kq4",
        leaseDurationMs: 3_000,
        renewDeadlineMs: 2_000,
        retryPeriodMs: 200,
        ...(withOwner ? { owner } : {}),
      });
    // Created by this candidate.
    const fresh = elector("leader-fresh", true);
    fresh.start();
    try {
      await until("leading", () => fresh.isLeader);
      assert.deepEqual(json((await read("leader-fresh")).metadata?.ownerReferences), [replicaSet]);
    } finally {
      await fresh.stop();
    }
    // Written before without an owner (an older build, or no flag): the next leader adds it.
    const before = elector("leader-adopted", false);
    before.start();
    await until("leading", () => before.isLeader);
    await before.stop();
    assert.equal((await read("leader-adopted")).metadata?.ownerReferences, undefined);
    const adopting = elector("leader-adopted", true);
    adopting.start();
    try {
      await until("leading", () => adopting.isLeader);
      assert.deepEqual(json((await read("leader-adopted")).metadata?.ownerReferences), [
        replicaSet,
      ]);
    } finally {
      await adopting.stop();
      owner.stop();
    }
  });

  test("the worker process with --lease-owner-pod writes its Lease owned by its StatefulSet", async () => {
    await installCrds(cp);
    const [grpc, http] = await loopbackAddresses(2);
    const worker = new HostProcess(
      "berth-worker-0",
      "worker/src/main.ts",
      [
        ...["--id", "berth-worker-0", "--grpc", grpc as string, "--http", http as string],
        ...["--journal", `sqlite://${join(scratch, "journal.db")}`],
        ...["--shard-map-resource", `${NS}/berth`, "--kubeconfig", cp.adminKubeconfig],
        ...["--lease-duration-ms", "3000", "--lease-renew-ms", "500"],
        ...["--lease-owner-pod", "berth-worker-0"],
      ],
      join(scratch, "logs"),
      http as string,
    );
    worker.start();
    try {
      await until(
        "the worker's Lease with an owner",
        async () => {
          try {
            const refs = (await read("berth-worker-0")).metadata?.ownerReferences;
            return refs !== undefined && refs.length > 0;
          } catch {
            return false;
          }
        },
        90_000,
        () => worker.tail(),
      );
      assert.deepEqual(json((await read("berth-worker-0")).metadata?.ownerReferences), [
        statefulSet,
      ]);
    } finally {
      assert.equal(await worker.stop("SIGTERM"), 0, worker.tail());
    }
  });
});
