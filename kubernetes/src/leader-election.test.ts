// The timing rules of LeaderElector that a real kube-apiserver cannot be made to hit on
// cue: a round whose requests answer only after the renew deadline. The API is a
// Lease store in memory whose answers the test releases; the clock is the test's.
// Elections against a real kube-apiserver are in e2e/src/operator/leader-election.k8s.int.test.ts.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ApiException, type CoordinationV1Api, type V1Lease } from "@kubernetes/client-node";
import { LeaderElector } from "./leader-election.js";

/** A Lease store whose every answer waits until the test calls `answer()`. */
function heldApi() {
  let lease: V1Lease | undefined;
  let version = 0;
  const waiting: (() => void)[] = [];
  const calls: string[] = [];
  const later = <T>(name: string, result: () => T): Promise<T> => {
    calls.push(name);
    return new Promise<T>((resolve, reject) => {
      waiting.push(() => {
        try {
          resolve(result());
        } catch (e: unknown) {
          reject(e);
        }
      });
    });
  };
  const store = (body: V1Lease): V1Lease => {
    version++;
    lease = { ...body, metadata: { ...body.metadata, resourceVersion: String(version) } };
    return lease;
  };
  const api = {
    readNamespacedLease: () =>
      later("read", () => {
        if (lease === undefined) throw new ApiException(404, "not found", "{}", {});
        return lease;
      }),
    createNamespacedLease: ({ body }: { body: V1Lease }) => later("create", () => store(body)),
    replaceNamespacedLease: ({ body }: { body: V1Lease }) => later("replace", () => store(body)),
  } as unknown as CoordinationV1Api;
  return {
    api,
    calls,
    holder: () => lease?.spec?.holderIdentity,
    /** Answers the oldest request; resolves once the elector has taken the answer. */
    async answer(): Promise<void> {
      await until(() => waiting.length > 0);
      waiting.shift()?.();
      await new Promise((r) => setImmediate(r));
    },
    /** Answers every request until `done` settles. */
    async drain(done: Promise<unknown>): Promise<void> {
      let settled = false;
      void done.finally(() => {
        settled = true;
      });
      while (!settled) {
        await until(() => settled || waiting.length > 0);
        waiting.shift()?.();
      }
    },
  };
}

async function until(ok: () => boolean): Promise<void> {
  while (!ok()) await new Promise((r) => setTimeout(r, 1));
}

describe("LeaderElector timing", () => {
  test("a round whose write succeeds only after the renew deadline starts no term; the next round does", async () => {
    const held = heldApi();
    let clock = 0;
    const log: string[] = [];
    const elector = new LeaderElector({
      api: held.api,
      namespace: "default",
      name: "berth-operator",
      identity: "operator-a",
      leaseDurationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 1,
      now: () => clock,
      onStartedLeading: () => log.push("leads"),
      onStoppedLeading: () => log.push("stops"),
    });
    elector.start();
    try {
      await held.answer(); // read: 404
      clock = 2_500; // the create is answered 2.5 s after the round began
      await held.answer(); // create: the Lease is ours, but too late to count
      assert.equal(held.holder(), "operator-a");
      assert.equal(elector.isLeader, false);
      assert.deepEqual(log, []);

      // The next round renews its own Lease at once and leads.
      await held.answer(); // read
      await held.answer(); // replace
      assert.equal(elector.isLeader, true);
      assert.deepEqual(log, ["leads"]);

      // A leader whose renewal comes back late steps down without a new term.
      await held.answer(); // read
      clock += 2_001;
      await held.answer(); // replace, late
      assert.equal(elector.isLeader, false);
      assert.deepEqual(log, ["leads", "stops"]);
      assert.deepEqual(held.calls.slice(0, 6), [
        "read",
        "create",
        "read",
        "replace",
        "read",
        "replace",
      ]);
    } finally {
      const stopped = elector.stop({ release: false });
      await held.drain(stopped);
      await stopped;
    }
  });
});
