// `helm install` the way users meet Berth: the chart in charts/berth, Berth's own image
// (built from the Dockerfile), a real single-node cluster whose kubelet runs it in
// containers, and Cassandra outside the cluster. Then what a user does with it:
// `helm test`, `kubectl apply -f examples/pools.yaml`, calls through the gateway
// Service, a rolling restart and a lost pod under load, scaling 3 → 5 workers, and
// `helm uninstall`.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { ClientLoad } from "@berth/bench";
import { assignOwners } from "@berth/proto";
import { type CassandraNode, javaAvailable, startCassandra } from "@berth/testing/cassandra";
import {
  type Cluster,
  clusterUnavailableReason,
  ensureKubernetesBinaries,
  goMissingReason,
  startCluster,
  until,
} from "@berth/testing/kubernetes";
import { parse as parseYaml } from "yaml";
import { CapacityApi } from "../acceptance/clients.js";
import { REPO_ROOT } from "../image/base-image.js";
import { buildBerthImage } from "../image/build.js";

const run = promisify(execFile);

const javaMissingReason = (): string | undefined =>
  javaAvailable()
    ? undefined
    : "java is not runnable: Cassandra, the journal of the installed workers, needs Java 17";

const skip = goMissingReason() ?? clusterUnavailableReason() ?? javaMissingReason();
if (skip) console.log(`# SKIP helm install tests: ${skip}`);

const RELEASE = "berth";
const NS = "berth";
const TAG = "localhost/berth:install-test";
const POOL_NS = "load";
const LOAD_POOLS = 12;
const SHARDS = 64;

describe("helm install on a real node", { skip, concurrency: false }, () => {
  let cluster: Cluster;
  let cassandra: CassandraNode;
  let helm: string;
  let dir: string;
  let gateway: string;
  let api: CapacityApi;
  let cassandraForPods: { host: string; port: number };

  const kubectl = async (...args: string[]): Promise<string> => {
    const r = await cluster.kubectl(args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr || r.stdout}`);
    return r.stdout;
  };
  const helmRun = async (...args: string[]): Promise<string> => {
    try {
      const r = await run(helm, [...args, "--kubeconfig", cluster.kubeconfigPath], {
        cwd: REPO_ROOT,
        maxBuffer: 32 << 20,
      });
      return r.stdout;
    } catch (e: unknown) {
      const x = e as { stdout?: string; stderr?: string; message: string };
      throw new Error(`helm ${args.join(" ")}: ${x.stderr || x.stdout || x.message}`);
    }
  };
  const chartValues = (workers: number) => [
    "--set",
    `image.repository=${TAG.split(":")[0]}`,
    "--set",
    `image.tag=${TAG.split(":")[1]}`,
    "--set",
    "image.pullPolicy=Never",
    "--set",
    `cassandra.hosts[0]=${cassandraForPods.host}:${cassandraForPods.port}`,
    "--set",
    `shardMap.shards=${SHARDS}`,
    "--set",
    `worker.replicas=${workers}`,
    // One node: the soft anti-affinity would still schedule, but say what we mean.
    "--set",
    "worker.podAntiAffinity=none",
    // A small machine: keep the requests schedulable on one node.
    "--set",
    "worker.resources.requests.cpu=10m",
    "--set",
    "gateway.resources.requests.cpu=10m",
    "--set",
    "operator.resources.requests.cpu=10m",
  ];
  const podsReady = async (selector: string, n: number) => {
    const pods = JSON.parse(await kubectl("get", "pods", "-n", NS, "-l", selector, "-o", "json"))
      .items as {
      metadata: { deletionTimestamp?: string };
      status: { conditions?: { type: string; status: string }[] };
    }[];
    const ready = pods.filter(
      (p) =>
        p.metadata.deletionTimestamp === undefined &&
        p.status.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
    );
    return ready.length === n && pods.length === n;
  };
  const explain = async () =>
    (await cluster.kubectl(["get", "pods,shardmaps,leases", "-n", NS, "-o", "wide"])).stdout;
  const shardOwners = async (): Promise<string[]> => {
    const sm = JSON.parse(await kubectl("get", "shardmap", "-n", NS, "-o", "json")).items[0] as {
      status?: { shards?: { owner?: string; state?: string }[] };
    };
    return (sm?.status?.shards ?? []).map((s) => s.owner ?? "");
  };
  // Settled: every shard active on its rendezvous owner among the first `workers`
  // workers (so no hand-off is still to come), and every worker pod Ready.
  const settled = async (workers: number) => {
    const sm = JSON.parse(await kubectl("get", "shardmap", "-n", NS, "-o", "json")).items[0] as {
      status?: { shards?: { owner?: string; state?: string }[] };
    };
    const shards = sm?.status?.shards ?? [];
    const target = assignOwners(
      Array.from({ length: workers }, (_, i) => `${RELEASE}-worker-${i}`),
      SHARDS,
    );
    return (
      shards.length === SHARDS &&
      shards.every((s, i) => s.owner === target[i] && (s.state ?? "Active") === "Active") &&
      (await podsReady("app.kubernetes.io/component=worker", workers))
    );
  };
  // Each load gets pools of its own, so its ledger is all that was ever reserved on them.
  const loadPoolsFor = (tag: string) =>
    Array.from({ length: LOAD_POOLS }, (_, i) => ({
      id: `${POOL_NS}/${tag}-${i}`,
      capacity: 1_000_000,
    }));

  // Generous bounds: the image build, Cassandra and the cluster start together, and the
  // cluster may first wait for another test file's cluster on this machine to stop.
  before(
    async () => {
      dir = await mkdtemp(join(tmpdir(), "berth-install-"));
      const [image, built, node] = await Promise.all([
        buildBerthImage({ tag: TAG }),
        ensureKubernetesBinaries({ commands: ["helm"] }),
        startCassandra(),
      ]);
      cassandra = node;
      helm = built.paths.helm as string;
      cluster = await startCluster({ images: [image.ociArchive] });
      cassandraForPods = await cluster.exposeHostPort(cassandra.port);
    },
    { timeout: 40 * 60_000 },
  );

  after(async () => {
    api?.close();
    await cluster?.stop();
    await cassandra?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  test("helm install: every pod Ready, the ShardMap settled, and helm test passes", {
    timeout: 20 * 60_000,
  }, async () => {
    await helmRun(
      "install",
      RELEASE,
      "charts/berth",
      "--namespace",
      NS,
      "--create-namespace",
      ...chartValues(3),
      "--wait",
      "--timeout",
      "10m",
    );
    await until(
      "all pods Ready",
      async () =>
        (await podsReady("app.kubernetes.io/component=worker", 3)) &&
        (await podsReady("app.kubernetes.io/component=gateway", 2)) &&
        (await podsReady("app.kubernetes.io/component=operator", 2)),
      300_000,
      explain,
    );
    await until("the ShardMap assigns every shard", () => settled(3), 120_000, explain);
    const svc = await cluster.serviceAddress(NS, `${RELEASE}-gateway`, "grpc");
    gateway = `${svc.host}:${svc.port}`;
    api = new CapacityApi(gateway);
    // Not `--logs`: Helm 3 then asks for the logs of every test hook, the test
    // CapacityPool included, and fails. A test pod that passed is deleted.
    try {
      await helmRun("test", RELEASE, "--namespace", NS, "--timeout", "5m");
    } catch (e: unknown) {
      const logs = await cluster.kubectl(["logs", `${RELEASE}-test`, "-n", NS]);
      throw new Error(`${(e as Error).message}
test pod logs:
${logs.stdout}${logs.stderr}`);
    }
  });

  test("kubectl apply -f examples/pools.yaml: every pool Ready with an owner; reserve and release through the gateway Service", {
    timeout: 20 * 60_000,
  }, async () => {
    const docs = (await readFile(join(REPO_ROOT, "examples/pools.yaml"), "utf8"))
      .split(/^---$/m)
      .map((d) => parseYaml(d) as { metadata?: { namespace?: string; name?: string } } | null)
      .filter((d) => d?.metadata?.name !== undefined);
    const namespaces = [...new Set(docs.map((d) => d?.metadata?.namespace ?? "default"))];
    for (const ns of namespaces) {
      await cluster.kubectl(["create", "namespace", ns]);
    }
    await kubectl("apply", "-f", join(REPO_ROOT, "examples/pools.yaml"));
    await until(
      "every example pool Ready with an owner",
      async () => {
        const items = JSON.parse(await kubectl("get", "capacitypools", "-A", "-o", "json"))
          .items as {
          metadata: { name: string };
          status?: { owner?: string; conditions?: { type: string; status: string }[] };
        }[];
        const examples = items.filter((p) =>
          docs.some((d) => d?.metadata?.name === p.metadata.name),
        );
        return (
          examples.length === docs.length &&
          examples.every(
            (p) =>
              (p.status?.owner ?? "") !== "" &&
              p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
          )
        );
      },
      120_000,
      explain,
    );
    const first = docs[0]?.metadata;
    assert.ok(first?.name !== undefined);
    const pool = `${first.namespace ?? "default"}/${first.name}`;
    const r = await api.reserve({ pool, units: 2, requestId: "install-test-1" }, 10_000);
    assert.equal(r.replayed, false);
    const again = await api.reserve({ pool, units: 2, requestId: "install-test-1" }, 10_000);
    assert.equal(again.replayed, true);
    assert.equal(again.reservationId, r.reservationId);
    await until(
      "kubectl get capacitypool shows the reservation",
      async () => {
        const p = JSON.parse(
          await kubectl(
            "get",
            "capacitypool",
            first.name as string,
            "-n",
            first.namespace ?? "default",
            "-o",
            "json",
          ),
        ) as { status?: { reserved?: number } };
        return p.status?.reserved === 2;
      },
      30_000,
      explain,
    );
    await api.release(r.reservationId, 10_000);
  });

  const applyLoadPools = async (loadPools: readonly { id: string; capacity: number }[]) => {
    await cluster.kubectl(["create", "namespace", POOL_NS]);
    const list = {
      apiVersion: "v1",
      kind: "List",
      items: loadPools.map((p) => ({
        apiVersion: "berth.dev/v1alpha1",
        kind: "CapacityPool",
        metadata: { name: p.id.split("/")[1], namespace: POOL_NS },
        spec: { capacity: p.capacity },
      })),
    };
    const file = join(dir, `load-pools-${Date.now()}.json`);
    await writeFile(file, JSON.stringify(list));
    await kubectl("apply", "-f", file);
    await until(
      "load pools Ready",
      async () => {
        const items = JSON.parse(await kubectl("get", "capacitypools", "-n", POOL_NS, "-o", "json"))
          .items as {
          metadata: { name: string };
          status?: { conditions?: { type: string; status: string }[] };
        }[];
        const ours = items.filter((p) =>
          loadPools.some((l) => l.id === `${POOL_NS}/${p.metadata.name}`),
        );
        return (
          ours.length === LOAD_POOLS &&
          ours.every((p) =>
            p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True"),
          )
        );
      },
      120_000,
      explain,
    );
  };

  // Per pool: the longest time without a definitive answer that ended after `since`.
  const waitsPerPool = (load: ClientLoad, since: number): number[] => {
    const gaps: number[] = [];
    for (const pool of new Set(load.answers.map((a) => a.pool))) {
      const times = load.answers.filter((a) => a.pool === pool).map((a) => a.at);
      let gap = 0;
      for (let i = 1; i < times.length; i++) {
        const t0 = times[i - 1] as number;
        const t1 = times[i] as number;
        if (t1 >= since && gap < t1 - t0) gap = t1 - t0;
      }
      gaps.push(gap);
    }
    return gaps.sort((x, y) => x - y);
  };
  const report = (what: string, gaps: readonly number[]) => {
    const q = (p: number) =>
      ((gaps[Math.min(gaps.length - 1, Math.floor(p * gaps.length))] ?? 0) / 1000).toFixed(1);
    console.log(
      `# ${what}: longest wait for an answer per pool p50 ${q(0.5)} s, max ${q(1)} s over ${gaps.length} pools`,
    );
  };
  // The pid (on this host) of a worker container's main process, found by its command line.
  const workerPid = async (pod: string): Promise<number | undefined> => {
    for (const entry of await readdir("/proc")) {
      if (!/^\d+$/.test(entry)) continue;
      const args = await readFile(`/proc/${entry}/cmdline`, "utf8")
        .then((c) => c.split("\0"))
        .catch(() => [] as string[]);
      const id = args.indexOf("--id");
      if (args.some((a) => a.endsWith("berth-worker")) && id >= 0 && args[id + 1] === pod) {
        return Number(entry);
      }
    }
    return undefined;
  };
  const restarts = async (pod: string): Promise<number> => {
    const p = JSON.parse(await kubectl("get", "pod", pod, "-n", NS, "-o", "json")) as {
      status: { containerStatuses?: { restartCount: number }[] };
    };
    return p.status.containerStatuses?.[0]?.restartCount ?? 0;
  };

  const underLoad = async (tag: string, during: () => Promise<void>) => {
    const loadPools = loadPoolsFor(tag);
    await applyLoadPools(loadPools);
    const load = new ClientLoad({
      gateway,
      pools: loadPools,
      concurrency: 8,
      ratePerSecond: 40,
      callDeadlineMs: 10_000,
      operationDeadlineMs: 60_000,
      releaseProbability: 0.3,
      tag: `${tag}-${Date.now()}`,
    });
    load.start();
    try {
      await new Promise((r) => setTimeout(r, 3_000));
      await during();
      await new Promise((r) => setTimeout(r, 3_000));
    } finally {
      await load.stop();
    }
    await load.settle();
    const verification = await load.verify();
    load.close();
    return { load, verification };
  };

  test("kubectl rollout restart statefulset under load: zero failed client requests, nothing lost", {
    timeout: 20 * 60_000,
  }, async () => {
    const { load, verification } = await underLoad("rollout", async () => {
      await kubectl("rollout", "restart", "statefulset", `${RELEASE}-worker`, "-n", NS);
      await kubectl(
        "rollout",
        "status",
        "statefulset",
        `${RELEASE}-worker`,
        "-n",
        NS,
        "--timeout=10m",
      );
      await until("the map settled after the restart", () => settled(3), 120_000, explain);
    });
    const failures = [...load.failuresBetween(0)].map(([k, n]) => `${k}×${n}`);
    assert.deepEqual(failures, [], `failed calls during the rolling restart`);
    assert.ok(load.operations > 0);
    assert.deepEqual(verification.mismatched, []);
    assert.deepEqual(verification.oversold, []);
    assert.equal(verification.falseReplays, 0);
    assert.equal(verification.unresolved, 0);
    assert.equal(verification.lostReleases, 0);
  });

  test("kubectl delete pod of a worker under load: its pools serve again, nothing lost or oversold", {
    timeout: 20 * 60_000,
  }, async () => {
    let deletedAt = 0;
    const { load, verification } = await underLoad("delete", async () => {
      // --grace-period=0 --force: the kubelet kills the container (SIGKILL), no hand-off;
      // the operator moves its shards once it stops seeing Lease renewals.
      deletedAt = Date.now();
      await kubectl(
        "delete",
        "pod",
        `${RELEASE}-worker-1`,
        "-n",
        NS,
        "--grace-period=0",
        "--force",
      );
      await until("worker-1 back and the map settled", () => settled(3), 180_000, explain);
    });
    report("delete pod (force)", waitsPerPool(load, deletedAt));
    assert.deepEqual(verification.mismatched, []);
    assert.deepEqual(verification.oversold, []);
    assert.equal(verification.falseReplays, 0);
    assert.equal(verification.unresolved, 0);
    assert.equal(verification.lostReleases, 0);
  });

  test("kill -9 of a worker's container process under load: the kubelet restarts it, its pools serve again, nothing lost", {
    timeout: 20 * 60_000,
  }, async () => {
    const pod = `${RELEASE}-worker-2`;
    const pid = await workerPid(pod);
    assert.ok(pid !== undefined, `the process of ${pod} is on this host`);
    const before = await restarts(pod);
    let killedAt = 0;
    const { load, verification } = await underLoad("kill", async () => {
      killedAt = Date.now();
      process.kill(pid, "SIGKILL");
      await until(
        "the container restarted",
        async () => (await restarts(pod)) > before,
        120_000,
        explain,
      );
      await until("the map settled", () => settled(3), 180_000, explain);
    });
    report("kill -9 of the container process", waitsPerPool(load, killedAt));
    assert.deepEqual(verification.mismatched, []);
    assert.deepEqual(verification.oversold, []);
    assert.equal(verification.falseReplays, 0);
    assert.equal(verification.unresolved, 0);
    assert.equal(verification.lostReleases, 0);
  });

  test("helm upgrade from 3 to 5 workers moves about 2/5 of the shards, each to a new worker", {
    timeout: 20 * 60_000,
  }, async () => {
    const before = await shardOwners();
    await helmRun(
      "upgrade",
      RELEASE,
      "charts/berth",
      "--namespace",
      NS,
      ...chartValues(5),
      "--wait",
      "--timeout",
      "10m",
    );
    await until("5 workers own the shards", () => settled(5), 180_000, explain);
    const afterOwners = await shardOwners();
    const moved = afterOwners.filter((o, i) => o !== before[i]);
    const newWorkers = new Set([`${RELEASE}-worker-3`, `${RELEASE}-worker-4`]);
    assert.ok(
      moved.every((o) => newWorkers.has(o)),
      `moved only to the new workers: ${[...new Set(moved)]}`,
    );
    const share = moved.length / SHARDS;
    console.log(
      `# helm upgrade 3 → 5: ${moved.length} of ${SHARDS} shards moved (${(share * 100).toFixed(0)} %)`,
    );
    assert.ok(share > 0.25 && share < 0.55, `about 2/5 moved, got ${moved.length}/${SHARDS}`);
  });

  test("helm uninstall leaves no Berth object but the CRDs and the ShardMap", {
    timeout: 20 * 60_000,
  }, async () => {
    await kubectl("delete", "capacitypools", "--all", "-A", "--wait=true", "--timeout=120s");
    await helmRun("uninstall", RELEASE, "--namespace", NS, "--wait", "--timeout", "5m");
    const leftover = () =>
      kubectl(
        "get",
        "all,configmaps,secrets,serviceaccounts,roles,rolebindings,leases,shardmaps,poddisruptionbudgets,networkpolicies",
        "-n",
        NS,
        "-l",
        "app.kubernetes.io/instance=berth",
        "-o",
        "name",
      );
    // Worker pods drain their shards on the way out (the StatefulSet is gone at once,
    // its pods within their grace period).
    await until(
      "every Berth object in the namespace gone",
      async () => (await leftover()).trim() === "",
      120_000,
      leftover,
    );
    // The ShardMap stays (documented): it carries the epochs the journal fences with.
    const left = await kubectl("get", "shardmaps,leases", "-n", NS, "-o", "name");
    assert.equal(left.trim(), "shardmap.berth.dev/berth", `left behind:\n${left}`);
    const cluster_ = await kubectl(
      "get",
      "clusterroles,clusterrolebindings,validatingadmissionpolicies,validatingadmissionpolicybindings",
      "-l",
      "app.kubernetes.io/instance=berth",
      "-o",
      "name",
    );
    assert.equal(cluster_.trim(), "", `cluster-scoped objects left behind:\n${cluster_}`);
    const crds = await kubectl("get", "crd", "-o", "name");
    assert.match(crds, /capacitypools\.berth\.dev/);
    assert.match(crds, /shardmaps\.berth\.dev/);
  });
});
