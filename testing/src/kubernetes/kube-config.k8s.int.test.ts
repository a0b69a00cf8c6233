// PooledKubeConfig against a real kube-apiserver: API calls share kept-alive
// connections instead of opening one TCP + TLS connection each (what
// @kubernetes/client-node 2.0.1 does with a plain KubeConfig, measured here as the
// baseline so the test shows the difference and cannot pass by counting nothing), also
// with calls in flight at once; a ResourceInformer on it still lists and watches, and
// after close() no connection is left.
import assert from "node:assert/strict";
import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { after, before, describe, test } from "node:test";
import { type KubeObject, loadKubeConfig, ResourceInformer } from "@berth/kubernetes";
import { CoordinationV1Api, type KubeConfig } from "@kubernetes/client-node";
import { pino } from "pino";
import { goMissingReason } from "./build.js";
import { type ControlPlane, startControlPlane } from "./control-plane.js";

const skip = goMissingReason();
if (skip) console.log(`# SKIP PooledKubeConfig tests: ${skip}`);

const logger = pino({ level: process.env.BERTH_TEST_LOG_LEVEL ?? "silent" });
const CALLS = 20;

/** Counts the TCP connections undici opens while `run` runs. */
async function connectionsDuring(run: () => Promise<void>): Promise<number> {
  let opened = 0;
  const onConnected = (): void => {
    opened++;
  };
  subscribe("undici:client:connected", onConnected);
  try {
    await run();
  } finally {
    unsubscribe("undici:client:connected", onConnected);
  }
  return opened;
}

async function sequentialLists(kc: KubeConfig): Promise<void> {
  const api = kc.makeApiClient(CoordinationV1Api);
  for (let i = 0; i < CALLS; i++) await api.listNamespacedLease({ namespace: "default" });
}

describe("PooledKubeConfig on a real kube-apiserver", { skip }, () => {
  let cp: ControlPlane;

  before(async () => {
    cp = await startControlPlane();
  });
  after(async () => {
    await cp?.stop();
  });

  test("a plain KubeConfig opens a connection per call (the baseline)", async () => {
    const opened = await connectionsDuring(() => sequentialLists(cp.kubeConfig()));
    assert.equal(opened, CALLS, `${CALLS} calls opened ${opened} connections`);
  });

  test("a PooledKubeConfig reuses one connection for sequential calls", async () => {
    const kc = loadKubeConfig(cp.adminKubeconfig);
    try {
      const opened = await connectionsDuring(() => sequentialLists(kc));
      assert.equal(opened, 1, `${CALLS} calls opened ${opened} connections`);
    } finally {
      await kc.close();
    }
  });

  test("calls in flight at once all succeed and open at most one connection each", async () => {
    const kc = loadKubeConfig(cp.adminKubeconfig);
    try {
      const api = kc.makeApiClient(CoordinationV1Api);
      const opened = await connectionsDuring(async () => {
        for (let round = 0; round < 3; round++) {
          const lists = await Promise.all(
            Array.from({ length: 8 }, () => api.listNamespacedLease({ namespace: "default" })),
          );
          assert.equal(lists.length, 8);
        }
      });
      // The first round may open up to 8; later rounds reuse them.
      assert.ok(opened >= 1 && opened <= 8, `24 calls in rounds of 8 opened ${opened}`);
    } finally {
      await kc.close();
    }
  });

  test("an informer on it lists and watches, and close() leaves no connection", async () => {
    const sockets = (): number =>
      process.getActiveResourcesInfo().filter((r) => r === "TCPSocketWrap" || r === "TLSSocketWrap")
        .length;
    const before = sockets();
    const kc = loadKubeConfig(cp.adminKubeconfig);
    const informer = new ResourceInformer<KubeObject>({
      kubeConfig: kc,
      path: "/api/v1/namespaces/default/configmaps",
      logger,
    });
    const seen = new Set<string>();
    informer.onChange((e) => {
      if (e.type !== "deleted") seen.add(e.key);
    });
    const opened = await connectionsDuring(async () => {
      informer.start();
      await informer.synced();
      const created = await cp.kubectl([
        "create",
        "configmap",
        "pooled-probe",
        "--from-literal=a=b",
      ]);
      assert.equal(created.code, 0, created.stderr);
      await until("the informer sees the new ConfigMap", () => seen.has("default/pooled-probe"));
    });
    // One for the list, one for the watch that stays open beside it.
    assert.ok(opened <= 2, `list + watch opened ${opened} connections`);
    informer.stop();
    await kc.close();
    await until("no socket of the informer is left", () => sockets() <= before);
  });
});

async function until(what: string, ok: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
