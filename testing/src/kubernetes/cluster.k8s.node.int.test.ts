// The single-node test cluster against real containerd, kubelet, kube-proxy, kube-scheduler
// and kube-controller-manager: pods from a locally built image, Services, in-cluster API
// access, host listeners, SIGTERM grace, StatefulSet rollout restart, and a teardown that
// leaves nothing — after stop(), after the harness is SIGKILLed, and after a crash.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CoreV1Api } from "@kubernetes/client-node";
import { goMissingReason } from "./build.js";
import { type Cluster, clusterUnavailableReason, startCluster } from "./cluster.js";
import { POD_BRIDGE_IP, TESTBOX_IMAGE } from "./cluster-config.js";
import {
  type HostLeftovers,
  type HostState,
  hostLeftovers,
  hostStateFile,
  reaperOf,
} from "./node-host.js";
import { ensureImage, TESTBOX } from "./node-images.js";

const skip = goMissingReason() ?? clusterUnavailableReason();
if (skip) console.log(`# SKIP test cluster: ${skip}`);

const NS = "cluster-test";
const lines: string[] = [];
const log = (line: string): void => {
  lines.push(line);
  process.stderr.write(`[cluster] ${line}\n`);
};

function assertNothingLeft(l: HostLeftovers): void {
  assert.deepEqual(l.processes, [], "processes left");
  assert.deepEqual(l.mounts, [], "mounts left");
  assert.equal(l.bridge, false, "bridge left");
  assert.deepEqual(l.chains, [], "iptables chains left");
  assert.deepEqual(l.cgroups, [], "cgroups left");
  assert.deepEqual(l.sysctls, [], "sysctls not restored");
  assert.equal(l.dir, false, "cluster dir left");
}

/** Polls `fn` until it returns without throwing, or rethrows its last error after the deadline. */
async function eventually<T>(what: string, fn: () => Promise<T>, timeoutMs = 90_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e: unknown) {
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${what}: ${e instanceof Error ? e.message : e}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

const testbox = (name: string, args: string[], extra: Record<string, unknown> = {}) => ({
  apiVersion: "v1",
  kind: "Pod",
  metadata: { name, namespace: NS },
  spec: {
    restartPolicy: "Never",
    containers: [{ name: "c", image: TESTBOX_IMAGE, imagePullPolicy: "Never", args }],
    ...extra,
  },
});

describe("test cluster", { skip: skip ?? false }, () => {
  let cluster: Cluster;
  let core: CoreV1Api;

  const apply = async (...objects: unknown[]): Promise<void> => {
    const file = join(
      cluster.dir,
      `apply-${Date.now()}-${Math.random().toString(36).slice(2)}.json`,
    );
    await writeFile(file, JSON.stringify({ apiVersion: "v1", kind: "List", items: objects }));
    const r = await cluster.kubectl(["apply", "-f", file]);
    assert.equal(r.code, 0, r.stderr);
  };
  const kubectlOk = async (args: string[]): Promise<string> => {
    const r = await cluster.kubectl(args);
    assert.equal(r.code, 0, `kubectl ${args.join(" ")}: ${r.stderr}`);
    return r.stdout;
  };
  /** Runs a pod to completion and returns its log; fails unless it Succeeded. */
  const runPod = async (pod: ReturnType<typeof testbox>): Promise<string> => {
    await apply(pod);
    const phase = await eventually(`pod ${pod.metadata.name} to finish`, async () => {
      const p = await core.readNamespacedPod({ namespace: NS, name: pod.metadata.name });
      if (p.status?.phase !== "Succeeded" && p.status?.phase !== "Failed")
        throw new Error(p.status?.phase);
      return p.status.phase;
    });
    const out = await kubectlOk(["logs", "-n", NS, pod.metadata.name]);
    assert.equal(phase, "Succeeded", `pod ${pod.metadata.name} failed: ${out}`);
    return out;
  };

  before(async () => {
    const image = await ensureImage(TESTBOX, log);
    cluster = await startCluster({ log });
    assert.deepEqual(await cluster.importImage(image), [TESTBOX_IMAGE]);
    core = cluster.kubeConfig().makeApiClient(CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await eventually("the namespace's default ServiceAccount", () =>
      core.readNamespacedServiceAccount({ namespace: NS, name: "default" }),
    );
    const rss = Object.entries(cluster.rssBytes()).map(
      ([n, b]) => `${n} ${b === undefined ? "?" : (b / 2 ** 20).toFixed(0)} MB`,
    );
    console.log(`# bring-up ${JSON.stringify(cluster.timings)}; RSS: ${rss.join(", ")}`);
  });
  after(() => cluster?.stop());

  test("a Deployment of the test image reaches Ready through its readiness probe, and the test process reaches its Service", async () => {
    const labels = { app: "web" };
    await apply(
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "web", namespace: NS },
        spec: {
          replicas: 2,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              containers: [
                {
                  name: "web",
                  image: TESTBOX_IMAGE,
                  imagePullPolicy: "Never",
                  args: ["serve", "-port", "8080"],
                  readinessProbe: { httpGet: { path: "/healthz", port: 8080 }, periodSeconds: 1 },
                },
              ],
            },
          },
        },
      },
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "web", namespace: NS },
        spec: { selector: labels, ports: [{ name: "http", port: 80, targetPort: 8080 }] },
      },
    );
    await kubectlOk(["rollout", "status", "-n", NS, "deployment/web", "--timeout=120s"]);
    const pods = (await core.listNamespacedPod({ namespace: NS, labelSelector: "app=web" })).items;
    assert.equal(pods.length, 2);
    for (const p of pods) {
      assert.equal(p.status?.conditions?.find((c) => c.type === "Ready")?.status, "True");
      assert.match(p.status?.podIP ?? "", /^10\.244\.0\.\d+$/);
    }
    const { host, port } = await cluster.serviceAddress(NS, "web", "http");
    const seen = await eventually("the Service to answer", async () => {
      const res = await fetch(`http://${host}:${port}/`, { signal: AbortSignal.timeout(3000) });
      assert.equal(res.status, 200);
      return (await res.text()).trim();
    });
    assert.ok(
      pods.some((p) => p.metadata?.name === seen),
      `answer "${seen}" is one of ${pods.map((p) => p.metadata?.name)}`,
    );
    // A pod reaches the Service too (its backends are on the same bridge), and exec works.
    const fromPod = await runPod(testbox("svc-get", ["get", `http://${host}:${port}/`]));
    assert.match(fromPod, /^HTTP 200\nweb-/m);
    const routes = await kubectlOk([
      "exec",
      "-n",
      NS,
      "deployment/web",
      "--",
      "/testbox",
      "routes",
    ]);
    assert.match(routes, /^Iface\s+Destination/);
  });

  test("a pod reaches the API server in-cluster with its ServiceAccount token", async () => {
    const out = await runPod(testbox("whoami", ["whoami"]));
    assert.match(
      out,
      new RegExp(`^user=system:serviceaccount:${NS}:default via 10\\.0\\.0\\.1:443$`, "m"),
    );
  });

  test("a pod reaches a host listener on 127.0.0.1 through exposeHostPort(), and has no default route", async () => {
    const server = createServer((_req, res) => res.end("hello from the host\n"));
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    try {
      const hostPort = (server.address() as { port: number }).port;
      const exposed = await cluster.exposeHostPort(hostPort);
      assert.equal(exposed.host, POD_BRIDGE_IP);
      const out = await runPod(
        testbox("host-get", ["get", `http://${exposed.host}:${exposed.port}/`]),
      );
      assert.match(out, /^HTTP 200\nhello from the host$/m);
    } finally {
      server.close();
    }
    const routes = (await runPod(testbox("routes", ["routes"])))
      .split("\n")
      .slice(1)
      .filter((l) => l.trim())
      .map((l) => l.split(/\s+/));
    assert.ok(routes.length > 0, "the pod has routes");
    // /proc/net/route: Iface Destination Gateway … Mask (hex); a default route has destination 0.
    assert.deepEqual(
      routes.filter((r) => r[1] === "00000000"),
      [],
      "no default route",
    );
  });

  test("deleting a pod sends SIGTERM and lets it finish within its grace period", async () => {
    await apply(
      testbox("graceful", ["serve", "-term-delay", "3s"], { terminationGracePeriodSeconds: 30 }),
    );
    await kubectlOk(["wait", "-n", NS, "--for=condition=Ready", "pod/graceful", "--timeout=60s"]);
    // Follow the log while the pod terminates (the kubelet removes the log with the pod).
    const follow = spawn(
      cluster.controlPlane.binaries.kubectl,
      ["--kubeconfig", cluster.kubeconfigPath, "logs", "-f", "-n", NS, "graceful"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let followed = "";
    follow.stdout.setEncoding("utf8").on("data", (c: string) => {
      followed += c;
    });
    const ended = new Promise((r) => follow.once("close", r));
    await eventually("kubectl logs -f to start", async () => assert.match(followed, /serving on/));
    await kubectlOk(["delete", "pod", "-n", NS, "graceful", "--wait=true"]);
    await ended;
    assert.match(followed, /got terminated; exiting in 3s\nexiting\n/);
  });

  test("a StatefulSet becomes Ready and `kubectl rollout restart` replaces every pod", async () => {
    const labels = { app: "sts" };
    await apply(
      {
        apiVersion: "v1",
        kind: "Service",
        metadata: { name: "sts", namespace: NS },
        spec: { clusterIP: "None", selector: labels, ports: [{ port: 8080 }] },
      },
      {
        apiVersion: "apps/v1",
        kind: "StatefulSet",
        metadata: { name: "sts", namespace: NS },
        spec: {
          serviceName: "sts",
          replicas: 2,
          selector: { matchLabels: labels },
          template: {
            metadata: { labels },
            spec: {
              terminationGracePeriodSeconds: 10,
              containers: [
                {
                  name: "c",
                  image: TESTBOX_IMAGE,
                  imagePullPolicy: "Never",
                  args: ["serve", "-term-delay", "0s"],
                  readinessProbe: { httpGet: { path: "/healthz", port: 8080 }, periodSeconds: 1 },
                },
              ],
            },
          },
        },
      },
    );
    await kubectlOk(["rollout", "status", "-n", NS, "statefulset/sts", "--timeout=120s"]);
    const uids = async (): Promise<string[]> =>
      (await core.listNamespacedPod({ namespace: NS, labelSelector: "app=sts" })).items
        .map((p) => p.metadata?.uid ?? "")
        .sort();
    const before = await uids();
    assert.equal(before.length, 2);
    const t = Date.now();
    await kubectlOk(["rollout", "restart", "-n", NS, "statefulset/sts"]);
    await kubectlOk(["rollout", "status", "-n", NS, "statefulset/sts", "--timeout=180s"]);
    console.log(
      `# StatefulSet rollout restart of 2 pods: ${((Date.now() - t) / 1000).toFixed(1)} s`,
    );
    const afterRestart = await uids();
    assert.equal(afterRestart.length, 2);
    assert.deepEqual(
      afterRestart.filter((u) => before.includes(u)),
      [],
      "every pod was replaced",
    );
  });

  test("stop() deletes the workloads and leaves no process, mount, bridge, chain, cgroup, sysctl or dir", async () => {
    const pids = Object.values(cluster.pids()).filter((p): p is number => p !== undefined);
    assert.equal(pids.length, 7, "seven daemons ran");
    const t = Date.now();
    await cluster.stop();
    console.log(`# stop(): ${((Date.now() - t) / 1000).toFixed(1)} s`);
    assertNothingLeft(await cluster.leftovers());
    for (const pid of pids)
      assert.throws(() => process.kill(pid, 0), /ESRCH/, `pid ${pid} is gone`);
  });
});

describe("test cluster after a killed harness", { skip: skip ?? false }, () => {
  /** Starts `npm run k8s -- cluster up` in a child; resolves with it and its host state once ready. */
  const clusterUp = async (): Promise<{ pid: number; state: HostState }> => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", join(import.meta.dirname, "cli.ts"), "cluster", "up"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      out += c;
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      out += c;
    });
    const dir = await eventually(
      "cluster up to be ready",
      async () => {
        if (child.exitCode !== null) throw new Error(`cluster up exited: ${out}`);
        const m = /^cluster dir: (\S+)$/m.exec(out);
        if (!m) throw new Error("not ready yet");
        return m[1] as string;
      },
      300_000,
    );
    const state = JSON.parse(readFileSync(hostStateFile(dir), "utf8")) as HostState;
    return { pid: child.pid as number, state };
  };

  test("when the harness is SIGKILLed, its reaper removes everything", async () => {
    const { pid, state } = await clusterUp();
    assert.notEqual((await hostLeftovers(state)).processes.length, 0);
    process.kill(pid, "SIGKILL");
    // The reaper itself is among the processes until it is done.
    await eventually(
      "the reaper to clean up",
      async () => assertNothingLeft(await hostLeftovers(state)),
      120_000,
    );
  });

  test("when harness and reaper are both SIGKILLed, the next start cleans up first", async () => {
    const { pid, state } = await clusterUp();
    const reaper = reaperOf(state.clusterDir);
    assert.ok(reaper, "a reaper runs");
    process.kill(reaper, "SIGKILL");
    process.kill(pid, "SIGKILL");
    const seen: string[] = [];
    const next = await startCluster({ log: (l) => seen.push(l) });
    try {
      assert.ok(
        seen.some((l) =>
          l.includes(
            `cleaning up after a previous cluster that did not stop cleanly: ${state.clusterDir}`,
          ),
        ),
        seen.join("\n"),
      );
      const old = await hostLeftovers(state);
      assert.deepEqual(old.processes, []);
      assert.deepEqual(old.mounts, []);
      assert.equal(old.dir, false);
    } finally {
      await next.stop();
    }
    assertNothingLeft(await next.leftovers());
  });
});
