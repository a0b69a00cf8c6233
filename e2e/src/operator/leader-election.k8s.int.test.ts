// Operator leader election on a real kube-apiserver: one leader at a time among
// two candidates; a graceful stop hands over at once; a leader that vanishes
// without a word is replaced once its Lease has gone unrenewed for a duration.
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { LeaderElector } from "@berth/kubernetes";
import { type ControlPlane, goMissingReason, startControlPlane } from "@berth/testing/kubernetes";
import { CoordinationV1Api } from "@kubernetes/client-node";

const skip = goMissingReason();
if (skip) console.log(`# SKIP leader election tests: ${skip}`);

const NS = "default";

async function until(what: string, ok: () => boolean | Promise<boolean>, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("operator leader election on a Lease", { skip }, () => {
  let cp: ControlPlane;
  let api: CoordinationV1Api;

  before(async () => {
    cp = await startControlPlane();
    api = cp.kubeConfig().makeApiClient(CoordinationV1Api);
  });
  after(async () => {
    await cp?.stop();
  });

  const candidate = (identity: string, lease: string, log: string[]) =>
    new LeaderElector({
      api,
      namespace: NS,
      name: lease,
      identity,
      leaseDurationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 300,
      onStartedLeading: () => log.push(`${identity} leads`),
      onStoppedLeading: () => log.push(`${identity} stops`),
    });

  test("of two candidates exactly one leads, and a graceful stop hands over without waiting out the Lease", async () => {
    const log: string[] = [];
    const a = candidate("operator-a", "berth-operator-1", log);
    const b = candidate("operator-b", "berth-operator-1", log);
    let both = 0;
    const sampler = setInterval(() => {
      if (a.isLeader && b.isLeader) both++;
    }, 10);
    try {
      a.start();
      await until("a to lead", () => a.isLeader);
      b.start();
      // b has seen a renew several times by now and still follows.
      await new Promise((r) => setTimeout(r, 1_500));
      assert.equal(b.isLeader, false);
      const before = await api.readNamespacedLease({ namespace: NS, name: "berth-operator-1" });
      assert.equal(before.spec?.holderIdentity, "operator-a");
      await a.stop();
      assert.equal(a.isLeader, false);
      await until("b to lead", () => b.isLeader);
      const lease = await api.readNamespacedLease({ namespace: NS, name: "berth-operator-1" });
      assert.equal(lease.spec?.holderIdentity, "operator-b");
      assert.equal(lease.spec?.leaseTransitions, (before.spec?.leaseTransitions ?? 0) + 1);
      assert.equal(both, 0, "never two leaders at once");
      // On a starved machine a may miss its renew deadline and lead again before its
      // stop (a lost-and-regained term of its own): b leads only after a's last stop.
      assert.deepEqual(log.slice(-3), ["operator-a leads", "operator-a stops", "operator-b leads"]);
      assert.ok(
        log.slice(0, -1).every((line) => line.startsWith("operator-a")),
        `b led only once, last: ${log.join(", ")}`,
      );
    } finally {
      clearInterval(sampler);
      await a.stop();
      await b.stop();
    }
  });

  test("a leader that vanishes without releasing is replaced only after its Lease went unrenewed", async () => {
    const log: string[] = [];
    const a = candidate("operator-a", "berth-operator-2", log);
    const b = candidate("operator-b", "berth-operator-2", log);
    try {
      a.start();
      await until("a to lead", () => a.isLeader);
      b.start();
      await new Promise((r) => setTimeout(r, 1_000));
      // a crashes: it stops renewing and never releases.
      await a.stop({ release: false });
      const crashed = await api.readNamespacedLease({ namespace: NS, name: "berth-operator-2" });
      assert.equal(crashed.spec?.holderIdentity, "operator-a");
      const rvAtCrash = crashed.metadata?.resourceVersion;
      await until("b to lead", () => b.isLeader, 30_000);
      const lease = await api.readNamespacedLease({ namespace: NS, name: "berth-operator-2" });
      assert.equal(lease.spec?.holderIdentity, "operator-b");
      assert.notEqual(lease.metadata?.resourceVersion, rvAtCrash);
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  test("a hung kube-apiserver: the leader steps down by its renew deadline, and stop() does not wait for the hung request", async () => {
    const log: string[] = [];
    const a = candidate("operator-a", "berth-operator-4", log);
    const pid = cp.pids().apiServer;
    assert.ok(pid !== undefined);
    let frozen = false;
    try {
      a.start();
      await until("a to lead", () => a.isLeader);
      process.kill(pid, "SIGSTOP");
      frozen = true;
      await until("a to step down", () => !a.isLeader, 30_000);
      // Still frozen: a round is waiting on it. Before requests had a timeout and stop()
      // aborted them, this waited until kube-apiserver answered.
      await a.stop({ release: false });
      assert.deepEqual(log, ["operator-a leads", "operator-a stops"]);
    } finally {
      if (frozen) process.kill(pid, "SIGCONT");
      await a.stop();
    }
  });

  test("a leader that cannot reach the API server steps down; after the restart one leads again", async () => {
    const log: string[] = [];
    const a = candidate("operator-a", "berth-operator-3", log);
    try {
      a.start();
      await until("a to lead", () => a.isLeader);
      // Down for longer than the renew deadline (2 s), however quick the restart.
      await cp.restartApiServer({ downMs: 3_000 });
      await until("a to lead again", () => a.isLeader);
      // It stepped down while it could not renew, and leads again now. (Under load a
      // renewal slower than the renew deadline may make it step down more than once:
      // that is the safe answer; the log must still alternate.)
      assert.deepEqual(log.slice(0, 2), ["operator-a leads", "operator-a stops"]);
      for (const [i, entry] of log.entries()) {
        assert.equal(entry, i % 2 === 0 ? "operator-a leads" : "operator-a stops");
      }
      assert.equal(log.at(-1), "operator-a leads");
    } finally {
      await a.stop();
    }
  });
});
