// WorkerLease on a real kube-apiserver, watched the way the operator watches worker
// Leases (a ResourceInformer on the worker label selector): the Lease is created with
// its holder, duration, labels and address; every renewal shows as a new renewTime;
// the worker repairs its Lease when someone else changes or deletes it; it keeps
// trying through a kube-apiserver restart and a hung kube-apiserver; release deletes it.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  type KubeObject,
  ResourceInformer,
  WORKER_ADDRESS_ANNOTATION,
  WORKER_LEASE_LABELS,
  WORKER_LEASE_SELECTOR,
  WorkerLease,
} from "@berth/kubernetes";
import { type ControlPlane, goMissingReason, startControlPlane } from "@berth/testing/kubernetes";
import { ApiException, CoordinationV1Api, CoreV1Api } from "@kubernetes/client-node";
import { pino } from "pino";

const skip = goMissingReason();
if (skip) console.log(`# SKIP worker Lease tests: ${skip}`);

const logger = pino({ level: process.env.BERTH_TEST_LOG_LEVEL ?? "silent" });
const NS = "berth-workers";
const ADDRESS = "10.1.2.3:7000";

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Lease extends KubeObject {
  spec?: { holderIdentity?: string; renewTime?: string; leaseDurationSeconds?: number };
}

describe("WorkerLease on a real kube-apiserver", { skip }, () => {
  let cp: ControlPlane;
  let api: CoordinationV1Api;
  /** What the operator sees: every worker Lease in the namespace. */
  let observed: ResourceInformer<Lease>;
  /** Per Lease name, every renewTime observed, in order. */
  const renewTimes = new Map<string, string[]>();

  const worker = (name: string, extra: { leaseDurationMs?: number } = {}) =>
    new WorkerLease({
      api,
      namespace: NS,
      name,
      address: ADDRESS,
      leaseDurationMs: extra.leaseDurationMs ?? 3_000,
      renewIntervalMs: 200,
      logger,
    });
  const seen = (name: string) => renewTimes.get(name) ?? [];
  const exists = async (name: string) => {
    try {
      await api.readNamespacedLease({ namespace: NS, name });
      return true;
    } catch (e: unknown) {
      if (e instanceof ApiException && e.code === 404) return false;
      throw e;
    }
  };

  before(async () => {
    cp = await startControlPlane();
    api = cp.kubeConfig().makeApiClient(CoordinationV1Api);
    await cp
      .kubeConfig()
      .makeApiClient(CoreV1Api)
      .createNamespace({ body: { metadata: { name: NS } } });
    observed = new ResourceInformer<Lease>({
      kubeConfig: cp.kubeConfig(),
      path: `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases`,
      labelSelector: WORKER_LEASE_SELECTOR,
      logger,
      restartDelayMs: { initial: 100, max: 1_000 },
    });
    observed.onChange((e) => {
      const at = e.object.spec?.renewTime;
      if (e.type !== "deleted" && at !== undefined) {
        renewTimes.set(e.object.metadata?.name ?? "", [...seen(e.object.metadata?.name ?? ""), at]);
      }
    });
    observed.start();
    await observed.synced(AbortSignal.timeout(90_000));
  });
  after(async () => {
    observed?.stop();
    await cp?.stop();
  });

  test("creates its Lease with holder, duration, labels and address; each renewal shows a new renewTime", async () => {
    const lease = worker("berth-worker-0");
    assert.equal(lease.lastRenewedAt, undefined);
    const startedAt = performance.now();
    lease.start();
    lease.start();
    try {
      await until("5 renewals observed", () => seen("berth-worker-0").length >= 5);
      const times = seen("berth-worker-0");
      assert.equal(new Set(times).size, times.length, `renewTime repeated: ${times.join(", ")}`);
      for (const t of times) assert.match(t, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$/);

      const object = await api.readNamespacedLease({ namespace: NS, name: "berth-worker-0" });
      assert.equal(object.spec?.holderIdentity, "berth-worker-0");
      assert.equal(object.spec?.leaseDurationSeconds, 3);
      assert.deepEqual(object.metadata?.labels, WORKER_LEASE_LABELS);
      assert.equal(object.metadata?.annotations?.[WORKER_ADDRESS_ANNOTATION], ADDRESS);
      assert.ok(object.spec?.acquireTime, "acquireTime is set");

      const stats = lease.stats();
      assert.ok(stats.renewals >= 5);
      assert.equal(stats.failures, 0, stats.lastError);
      assert.ok((lease.lastRenewedAt ?? 0) >= startedAt);
    } finally {
      await lease.stop();
    }
  });

  test("puts its address back and re-creates its Lease when someone else changes or deletes it", async () => {
    const name = "berth-worker-1";
    const lease = worker(name);
    lease.start();
    try {
      await until("the Lease", () => observed.get(`${NS}/${name}`) !== undefined);
      const annotated = await cp.kubectl([
        "annotate",
        "-n",
        NS,
        `lease/${name}`,
        "--overwrite",
        `${WORKER_ADDRESS_ANNOTATION}=192.0.2.1:1`,
      ]);
      assert.equal(annotated.code, 0, annotated.stderr);
      await until(
        "the wrong address to be seen",
        () =>
          (observed.get(`${NS}/${name}`)?.metadata?.annotations as Record<string, string>)?.[
            WORKER_ADDRESS_ANNOTATION
          ] === "192.0.2.1:1",
      );
      await until(
        "the address to be put back",
        () =>
          (observed.get(`${NS}/${name}`)?.metadata?.annotations as Record<string, string>)?.[
            WORKER_ADDRESS_ANNOTATION
          ] === ADDRESS,
      );

      const uid = observed.get(`${NS}/${name}`)?.metadata?.uid;
      await api.deleteNamespacedLease({ namespace: NS, name });
      await until("a new Lease", () => {
        const now = observed.get(`${NS}/${name}`)?.metadata?.uid;
        return now !== undefined && now !== uid;
      });
      assert.equal(lease.stats().failures, 0, lease.stats().lastError);
    } finally {
      await lease.stop();
    }
  });

  test("keeps trying while kube-apiserver restarts, then renews again", async () => {
    const name = "berth-worker-2";
    const lease = worker(name);
    lease.start();
    try {
      await until("renewed", () => lease.stats().renewals >= 2);
      // Down for several renew periods, however quick the restart.
      await cp.restartApiServer({ downMs: 1_500 });
      const renewalsAfterRestart = lease.stats().renewals;
      const renewedBefore = lease.lastRenewedAt ?? 0;
      await until("renewed after the restart", () => lease.stats().renewals > renewalsAfterRestart);
      assert.ok((lease.lastRenewedAt ?? 0) > renewedBefore);
      assert.ok(lease.stats().failures >= 1, "some renewals failed during the outage");
      assert.ok(lease.stats().lastError !== undefined);
      const times = seen(name);
      await until("the operator to see renewals again", () => seen(name).length > times.length);
    } finally {
      await lease.stop();
    }
  });

  test("a hung kube-apiserver: each renewal gives up after the lease duration, and renewals resume once it answers", async () => {
    const name = "berth-worker-3";
    const lease = worker(name, { leaseDurationMs: 1_000 });
    const pid = cp.pids().apiServer;
    assert.ok(pid !== undefined);
    let frozen = false;
    lease.start();
    try {
      await until("renewed", () => lease.stats().renewals >= 1);
      process.kill(pid, "SIGSTOP");
      frozen = true;
      const { renewals } = lease.stats();
      await until("two renewals to time out", () => lease.stats().failures >= 2);
      assert.match(lease.stats().lastError ?? "", /abort|timeout/i);
      process.kill(pid, "SIGCONT");
      frozen = false;
      await until("renewed again", () => lease.stats().renewals > renewals);
    } finally {
      if (frozen) process.kill(pid, "SIGCONT");
      await lease.stop();
    }
  });

  test("stop() leaves the Lease to expire; stop({ release: true }) deletes it", async () => {
    const name = "berth-worker-4";
    const first = worker(name);
    first.start();
    await until("renewed", () => first.stats().renewals >= 1);
    await first.stop();
    assert.equal(await exists(name), true);

    const second = worker(name);
    second.start();
    await until("renewed by the next incarnation", () => second.stats().renewals >= 1);
    await second.stop({ release: true });
    assert.equal(await exists(name), false);
    await until("the operator to see it go", () => observed.get(`${NS}/${name}`) === undefined);
  });

  test("a renew interval not shorter than the lease duration is refused", () => {
    assert.throws(
      () =>
        new WorkerLease({
          api,
          namespace: NS,
          name: "x",
          address: ADDRESS,
          leaseDurationMs: 1_000,
          renewIntervalMs: 1_000,
        }),
      {
        name: "RangeError",
        message: "renewIntervalMs must be positive and shorter than leaseDurationMs",
      },
    );
  });
});
