// The Kubernetes harness against its real etcd + kube-apiserver (the `.k8s.int.test.ts`
// suffix makes `npm test` build or reuse the binaries before running this file).
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { after, before, describe, test } from "node:test";
import {
  ApiException,
  ApiextensionsV1Api,
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  RbacAuthorizationV1Api,
  type V1Lease,
  V1MicroTime,
} from "@kubernetes/client-node";
import { goMissingReason } from "./build.js";
import { type ControlPlane, startControlPlane } from "./control-plane.js";

const skip = goMissingReason();
if (skip) console.log(`# SKIP kubernetes harness tests: ${skip}`);

const NS = "harness-test";
const GROUP = "harness.berth.dev";

/** Polls `fn` until it returns without throwing, or rethrows its last error after the deadline. */
async function eventually<T>(what: string, fn: () => Promise<T>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e: unknown) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}: ${e instanceof Error ? e.message : e}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/** Pids of processes whose command line mentions `needle` (Linux /proc). */
function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, "utf8").includes(needle))
        found.push(Number(entry));
    } catch {}
  }
  return found;
}

/** True while `pid` is a live process; a zombie (exited, not yet reaped) counts as gone. */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** The `message` of the Kubernetes Status in an ApiException's body. */
function statusMessage(e: ApiException<unknown>): string {
  try {
    return String((JSON.parse(String(e.body)) as { message?: unknown }).message);
  } catch {
    return String(e.body);
  }
}

function lease(name: string, holder: string): V1Lease {
  return {
    metadata: { name, namespace: NS },
    spec: { holderIdentity: holder, leaseDurationSeconds: 15, renewTime: new V1MicroTime() },
  };
}

describe("the Kubernetes control plane harness", { skip, concurrency: false }, () => {
  let plane: ControlPlane;
  let startSeconds = 0;

  before(async () => {
    const t0 = Date.now();
    plane = await startControlPlane();
    startSeconds = (Date.now() - t0) / 1000;
  });
  after(async () => {
    await plane?.stop();
  });

  test("starts etcd and kube-apiserver on loopback, ready, with the built version", async (t) => {
    const rss = plane.rssBytes();
    t.diagnostic(
      `start ${startSeconds.toFixed(1)} s; RSS etcd ${((rss.etcd ?? 0) / 2 ** 20).toFixed(0)} MB, ` +
        `kube-apiserver ${((rss.apiServer ?? 0) / 2 ** 20).toFixed(0)} MB`,
    );
    assert.match(plane.server, /^https:\/\/127\.0\.0\.1:\d+$/);
    const readyz = await plane.kubectl(["get", "--raw", "/readyz"]);
    assert.equal(readyz.code, 0, readyz.stderr);
    assert.equal(readyz.stdout.trim(), "ok");
    const version = await plane.kubectl(["version", "-o", "json"]);
    assert.equal(version.code, 0, version.stderr);
    const v = JSON.parse(version.stdout) as {
      clientVersion: { gitVersion: string };
      serverVersion: { gitVersion: string };
    };
    assert.equal(v.clientVersion.gitVersion, "v1.36.3");
    assert.equal(v.serverVersion.gitVersion, "v1.36.3");
  });

  test("a request with a bogus bearer token is refused as Unauthorized", async () => {
    const bogus = await plane.kubectl(
      [
        `--server=${plane.server}`,
        `--certificate-authority=${plane.caFile}`,
        "--token=not-a-valid-token",
        "get",
        "namespaces",
      ],
      { kubeconfig: "/dev/null" },
    );
    assert.notEqual(bogus.code, 0);
    assert.match(
      bogus.stderr,
      /error: You must be logged in to the server \(the server has asked for the client to provide credentials\)/,
    );
  });

  test("a namespace, a CRD with a status subresource and a custom resource work through client-node", async () => {
    const kc = plane.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    const ext = kc.makeApiClient(ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({
      body: {
        metadata: { name: `widgets.${GROUP}` },
        spec: {
          group: GROUP,
          scope: "Namespaced",
          names: { plural: "widgets", singular: "widget", kind: "Widget", shortNames: ["wd"] },
          versions: [
            {
              name: "v1",
              served: true,
              storage: true,
              subresources: { status: {} },
              schema: {
                openAPIV3Schema: {
                  type: "object",
                  properties: {
                    spec: {
                      type: "object",
                      required: ["size"],
                      properties: { size: { type: "integer", minimum: 1 } },
                    },
                    status: { type: "object", properties: { seen: { type: "integer" } } },
                  },
                },
              },
            },
          ],
        },
      },
    });
    await eventually("the CRD to be Established", async () => {
      const crd = await ext.readCustomResourceDefinition({ name: `widgets.${GROUP}` });
      const established = crd.status?.conditions?.find((c) => c.type === "Established");
      assert.equal(established?.status, "True");
    });
    const custom = kc.makeApiClient(CustomObjectsApi);
    const where = { group: GROUP, version: "v1", namespace: NS, plural: "widgets" };
    // A newly established CRD can take a moment to be served: retry only the first create.
    const created = (await eventually("the widgets endpoint", () =>
      custom.createNamespacedCustomObject({
        ...where,
        body: {
          apiVersion: `${GROUP}/v1`,
          kind: "Widget",
          metadata: { name: "w1" },
          spec: { size: 3 },
          status: { seen: 99 },
        },
      }),
    )) as { metadata: { generation: number }; status?: unknown };
    // With a status subresource, status written through the main resource is dropped.
    assert.equal(created.status, undefined);
    await assert.rejects(
      custom.createNamespacedCustomObject({
        ...where,
        body: {
          apiVersion: `${GROUP}/v1`,
          kind: "Widget",
          metadata: { name: "w2" },
          spec: { size: 0 },
        },
      }),
      (e: unknown) =>
        e instanceof ApiException && e.code === 422 && /spec\.size/.test(statusMessage(e)),
    );
    const current = (await custom.getNamespacedCustomObject({ ...where, name: "w1" })) as Record<
      string,
      unknown
    >;
    const updated = (await custom.replaceNamespacedCustomObjectStatus({
      ...where,
      name: "w1",
      body: { ...current, status: { seen: 1 } },
    })) as { metadata: { generation: number }; status: { seen: number } };
    assert.deepEqual(updated.status, { seen: 1 });
    assert.equal(updated.metadata.generation, created.metadata.generation);
  });

  test("a ServiceAccount token kubeconfig may not write a Lease until a Role grants it", async () => {
    const admin = plane.kubeConfig();
    const coordination = admin.makeApiClient(CoordinationV1Api);
    await coordination.createNamespacedLease({ namespace: NS, body: lease("shared", "admin") });

    const saFile = await plane.serviceAccountKubeconfig({ namespace: NS, name: "worker" });
    const asWorker = plane.kubeConfig(saFile).makeApiClient(CoordinationV1Api);
    const forbidden = (e: unknown): boolean =>
      e instanceof ApiException &&
      e.code === 403 &&
      /leases\.coordination\.k8s\.io "shared" is forbidden: User "system:serviceaccount:harness-test:worker"/.test(
        statusMessage(e),
      );
    const renew = async (): Promise<V1Lease> => {
      const l = await asWorker.readNamespacedLease({ namespace: NS, name: "shared" });
      return asWorker.replaceNamespacedLease({
        namespace: NS,
        name: "shared",
        body: { ...l, spec: { ...l.spec, holderIdentity: "worker", renewTime: new V1MicroTime() } },
      });
    };
    await assert.rejects(
      renew(),
      (e: unknown) =>
        e instanceof ApiException &&
        e.code === 403 &&
        /cannot get resource "leases"/.test(statusMessage(e)),
    );
    await assert.rejects(
      asWorker.replaceNamespacedLease({
        namespace: NS,
        name: "shared",
        body: lease("shared", "worker"),
      }),
      forbidden,
    );

    const rbac = admin.makeApiClient(RbacAuthorizationV1Api);
    await rbac.createNamespacedRole({
      namespace: NS,
      body: {
        metadata: { name: "lease-writer" },
        rules: [
          {
            apiGroups: ["coordination.k8s.io"],
            resources: ["leases"],
            resourceNames: ["shared"],
            verbs: ["get", "update"],
          },
        ],
      },
    });
    await rbac.createNamespacedRoleBinding({
      namespace: NS,
      body: {
        metadata: { name: "worker-lease-writer" },
        roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: "lease-writer" },
        subjects: [{ kind: "ServiceAccount", name: "worker", namespace: NS }],
      },
    });
    // The RBAC authorizer sees the binding through its informer: wait for it.
    const renewed = await eventually("the RoleBinding to take effect", renew);
    assert.equal(renewed.spec?.holderIdentity, "worker");
    // Still only what the Role says: no creating other Leases.
    await assert.rejects(
      asWorker.createNamespacedLease({ namespace: NS, body: lease("other", "worker") }),
      (e: unknown) => e instanceof ApiException && e.code === 403,
    );
  });

  test("the project-built kubectl reads what client-node wrote, with the admin kubeconfig", async () => {
    const ns = await plane.kubectl(["get", "namespaces", "-o", "name"]);
    assert.equal(ns.code, 0, ns.stderr);
    assert.ok(ns.stdout.split("\n").includes(`namespace/${NS}`), ns.stdout);
    const l = await plane.kubectl([
      "-n",
      NS,
      "get",
      "lease",
      "shared",
      "-o",
      "jsonpath={.spec.holderIdentity}",
    ]);
    assert.equal(l.code, 0, l.stderr);
    assert.equal(l.stdout, "worker");
    const w = await plane.kubectl(["-n", NS, "get", "wd", "w1", "-o", "jsonpath={.status.seen}"]);
    assert.equal(w.code, 0, w.stderr);
    assert.equal(w.stdout, "1");
  });

  test("restartApiServer() brings a new kube-apiserver up on the same port and etcd; clients carry on", async () => {
    const coordination = plane.kubeConfig().makeApiClient(CoordinationV1Api);
    const before = plane.pids();
    const server = plane.server;
    await plane.restartApiServer();
    const afterRestart = plane.pids();
    assert.ok(before.apiServer && !running(before.apiServer), "the old kube-apiserver is gone");
    assert.notEqual(afterRestart.apiServer, before.apiServer);
    assert.equal(afterRestart.etcd, before.etcd, "etcd kept running");
    assert.equal(plane.server, server);
    // The same client object (its connections went away with the old process) works again,
    // and the state is still there: it lives in etcd.
    const l = await coordination.readNamespacedLease({ namespace: NS, name: "shared" });
    assert.equal(l.spec?.holderIdentity, "worker");
  });

  test("stop() stops kube-apiserver and etcd and removes the data dir", async () => {
    const pids = plane.pids();
    const dir = plane.dataDir;
    assert.ok(pids.etcd && pids.apiServer);
    await plane.stop();
    assert.equal(running(pids.etcd), false, "etcd still running");
    assert.equal(running(pids.apiServer), false, "kube-apiserver still running");
    assert.deepEqual(plane.pids(), { etcd: undefined, apiServer: undefined });
    assert.equal(existsSync(dir), false, `${dir} still exists`);
    assert.deepEqual(
      processesMentioning(dir),
      [],
      "a watchdog or daemon still mentions the data dir",
    );
    await plane.stop(); // idempotent
  });
});

describe("when the test process is killed", { skip }, () => {
  test("SIGKILL of the process that started the control plane leaves no process and no data dir", async () => {
    const module = new URL("./control-plane.ts", import.meta.url).pathname;
    const child = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        "--input-type=module",
        "-e",
        `import { startControlPlane } from ${JSON.stringify(module)};
         const p = await startControlPlane({ log: () => undefined });
         console.log(JSON.stringify({ ...p.pids(), dataDir: p.dataDir }));
         setInterval(() => undefined, 1 << 30);`,
      ],
      { stdio: ["ignore", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (c: string) => {
      out += c;
    });
    const exited = new Promise((r) => child.once("exit", r));
    const started = await eventually(
      "the child to start a control plane",
      async () =>
        JSON.parse(out.split("\n")[0] ?? "") as {
          etcd: number;
          apiServer: number;
          dataDir: string;
        },
      180_000,
    );
    assert.ok(running(started.etcd) && running(started.apiServer));
    child.kill("SIGKILL");
    await exited;
    await eventually(
      "the watchdogs to stop kube-apiserver and etcd and remove the data dir",
      async () => {
        assert.equal(running(started.apiServer), false, "kube-apiserver still running");
        assert.equal(running(started.etcd), false, "etcd still running");
        assert.equal(existsSync(started.dataDir), false, "data dir still there");
        assert.deepEqual(processesMentioning(started.dataDir), []);
      },
    );
  });
});
