// The whole Kubernetes-mode system on the host for `npm run bench:k8s`: a real etcd +
// kube-apiserver (testing/src/kubernetes), the CRDs, two operator replicas, N workers in
// Kubernetes mode on one SQLite journal and one gateway, as
// e2e/src/operator/operator.k8s.int.test.ts runs them (HostProcess from host-cluster.ts),
// with every Lease and operator setting taken from {@link SystemSettings} so the bench
// can print them beside its numbers. The bench process itself watches the ShardMap,
// the worker Leases and the CapacityPools through informers (never by polling kubectl),
// so it sees what the components see, when they see it.
import { readFileSync } from "node:fs";
import { request } from "node:https";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import {
  GROUP,
  type KubeObject,
  ResourceInformer,
  SHARD_MAP_PLURAL,
  type ShardMapObject,
  shardMapOfResource,
  VERSION,
} from "@berth/kubernetes";
import type { internal } from "@berth/proto";
import {
  type ControlPlane,
  HostProcess,
  loopbackAddresses,
  startControlPlane,
  until,
} from "@berth/testing/kubernetes";
import type { KubeConfig } from "@kubernetes/client-node";
import { ShardReportLog } from "./shard-report-log.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** Every Lease, operator and gateway setting the bench varies or reports. */
export interface SystemSettings {
  readonly workers: number;
  readonly shards: number;
  /** ShardMap quorum (operator --quorum). */
  readonly quorum: number;
  /** worker --lease-duration-ms / --lease-renew-ms. */
  readonly workerLeaseDurationMs: number;
  readonly workerLeaseRenewMs: number;
  /** worker --hand-off-timeout-ms (the SIGTERM drain). */
  readonly handOffTimeoutMs: number;
  /** operator leader election: --lease-duration-ms / --renew-deadline-ms / --retry-period-ms. */
  readonly operatorLeaseDurationMs: number;
  readonly operatorRenewDeadlineMs: number;
  readonly operatorRetryPeriodMs: number;
  /** operator --max-moves. */
  readonly maxMoves: number;
  /** operator --membership-stable-ms. */
  readonly membershipStableMs: number;
  /** operator --status-writes-per-second. */
  readonly statusWritesPerSecond: number;
  /** gateway --gossip-pull-ms. */
  readonly gatewayGossipPullMs: number;
}

/** The settings as the command-line flags each component got, for reports. */
export function describeSettings(s: SystemSettings): Record<string, string> {
  return {
    workers: `${s.workers} (one SQLite journal, synchronous=FULL)`,
    shards: String(s.shards),
    quorum: String(s.quorum),
    "worker Lease": `--lease-duration-ms ${s.workerLeaseDurationMs} --lease-renew-ms ${s.workerLeaseRenewMs} (leaseDurationSeconds ${Math.ceil(s.workerLeaseDurationMs / 1000)})`,
    "worker hand-off": `--hand-off-timeout-ms ${s.handOffTimeoutMs}`,
    "operator election": `--lease-duration-ms ${s.operatorLeaseDurationMs} --renew-deadline-ms ${s.operatorRenewDeadlineMs} --retry-period-ms ${s.operatorRetryPeriodMs}`,
    "operator planning": `--max-moves ${s.maxMoves} --status-writes-per-second ${s.statusWritesPerSecond} --membership-stable-ms ${s.membershipStableMs}`,
    gateway: `--gossip-pull-ms ${s.gatewayGossipPullMs}`,
  };
}

/** A worker Lease as the informer delivers it. */
export type LeaseItem = KubeObject & {
  metadata?: { name?: string };
  spec?: { renewTime?: string; holderIdentity?: string };
};

/** A CapacityPool as the informer delivers it (only what the bench reads). */
export type PoolItem = KubeObject & {
  metadata: { name: string; namespace: string };
  spec: { capacity: number };
  status?: {
    owner?: string;
    reserved?: number;
    conditions?: { type: string; status: string }[];
  };
};

/** A ShardMap as the informer delivers it. */
export type ShardMapItem = ShardMapObject & KubeObject;

/** The running system. */
export interface KubernetesSystem {
  readonly settings: SystemSettings;
  readonly cp: ControlPlane;
  readonly dir: string;
  readonly workers: readonly HostProcess[];
  readonly operators: readonly HostProcess[];
  readonly gateway: HostProcess;
  /** The gateway's public gRPC address. */
  readonly gatewayGrpc: string;
  readonly namespace: string;
  readonly kubeConfig: KubeConfig;
  /** The ShardMap as the bench's own watch last saw it. */
  readonly shardMaps: ResourceInformer<ShardMapItem>;
  /** The install's Leases (workers', berth-operator) as the bench's own watch sees them. */
  readonly leases: ResourceInformer<LeaseItem>;
  /** When each worker reported each shard recovering and serving (its WatchShards stream). */
  readonly shardReports: ShardReportLog;
  /** The parsed map the bench's watch last saw, or undefined before the first one. */
  map(): internal.ShardMap | undefined;
  /** The ShardMap's status as the bench's watch last saw it. */
  mapStatus(): ShardMapItem["status"] | undefined;
  /** The operator replica that leads now (from its berth_operator_leader gauge). */
  leader(): Promise<HostProcess | undefined>;
  /**
   * Waits until the map is settled: every shard Active with an owner, none moving or
   * unassigned, every worker live and owning shards, the gateway ready.
   */
  settle(what: string, timeoutMs?: number): Promise<void>;
  /** Why the system is not settled, for a timeout message. */
  explain(): Promise<string>;
  /** kubectl with the admin kubeconfig; throws on a non-zero exit. */
  kubectl(...args: string[]): Promise<string>;
  /** kube-apiserver's /metrics text (admin client certificate). */
  apiServerMetrics(): Promise<string>;
  stop(): Promise<void>;
}

/** Options of {@link startKubernetesSystem}. */
export interface StartOptions {
  readonly settings: SystemSettings;
  /** Parent dir of the process logs (kept after the run). */
  readonly dir: string;
  readonly clusterId?: string;
  readonly log: (line: string) => void;
}

/** Starts the control plane, the CRDs and every component; resolves once the map settled. */
export async function startKubernetesSystem(o: StartOptions): Promise<KubernetesSystem> {
  const s = o.settings;
  const ns = "berth";
  const clusterId = o.clusterId ?? "bench-k8s";
  // In the bench's dir: kube-apiserver's log (slow-request traces) stays with the others.
  const cp = await startControlPlane({
    log: (l) => o.log(`control plane: ${l}`),
    dataDir: join(o.dir, "control-plane"),
  });
  const workers: HostProcess[] = [];
  const operators: HostProcess[] = [];
  let gateway: HostProcess | undefined;
  const informers: { stop(): void }[] = [];
  const stop = async (): Promise<void> => {
    for (const i of informers) i.stop();
    await Promise.all(
      [...operators, ...workers, ...(gateway ? [gateway] : [])].map((p) =>
        p.stop("SIGTERM", 10_000),
      ),
    );
    await cp.stop();
  };
  try {
    const kubectl = async (...args: string[]): Promise<string> => {
      const r = await cp.kubectl(args);
      if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr.trim()}`);
      return r.stdout;
    };
    await kubectl("apply", "-f", resolve(REPO_ROOT, "charts/berth/crds"));
    await kubectl(
      "wait",
      "--for=condition=Established",
      "crd/capacitypools.berth.dev",
      "crd/shardmaps.berth.dev",
      "--timeout=60s",
    );
    await kubectl("create", "namespace", ns);
    await kubectl("create", "namespace", "bench");
    const kubeconfig = cp.adminKubeconfig;
    const journal = `sqlite://${join(o.dir, "journal.db")}`;
    const logs = join(o.dir, "logs");
    const addresses = await loopbackAddresses(s.workers * 2 + 2 + 3);
    const take = () => addresses.shift() as string;
    const workerAddresses: { id: string; address: string }[] = [];
    for (let i = 0; i < s.workers; i++) {
      const grpc = take();
      const http = take();
      workerAddresses.push({ id: `worker-${i}`, address: grpc });
      workers.push(
        new HostProcess(
          `worker-${i}`,
          "worker/src/main.ts",
          [
            ...["--id", `worker-${i}`, "--grpc", grpc, "--http", http, "--journal", journal],
            ...["--shard-map-resource", `${ns}/berth`, "--kubeconfig", kubeconfig],
            ...["--cluster-id", clusterId, "--hand-off-timeout-ms", String(s.handOffTimeoutMs)],
            ...["--lease-duration-ms", String(s.workerLeaseDurationMs)],
            ...["--lease-renew-ms", String(s.workerLeaseRenewMs)],
          ],
          logs,
          http,
        ),
      );
    }
    for (const id of ["operator-a", "operator-b"]) {
      const http = take();
      operators.push(
        new HostProcess(
          id,
          "operator/src/main.ts",
          [
            ...["--namespace", ns, "--shards", String(s.shards), "--quorum", String(s.quorum)],
            ...["--identity", id, "--cluster-id", clusterId, "--kubeconfig", kubeconfig],
            ...["--http", http, "--lease-duration-ms", String(s.operatorLeaseDurationMs)],
            ...["--renew-deadline-ms", String(s.operatorRenewDeadlineMs)],
            ...["--retry-period-ms", String(s.operatorRetryPeriodMs)],
            ...["--max-moves", String(s.maxMoves)],
            ...["--membership-stable-ms", String(s.membershipStableMs)],
            ...["--status-writes-per-second", String(s.statusWritesPerSecond)],
          ],
          logs,
          http,
          // "leader election round failed" is a debug line.
          { BERTH_LOG_LEVEL: "debug" },
        ),
      );
    }
    const [grpc, gossip, http] = [take(), take(), take()];
    gateway = new HostProcess(
      "gateway",
      "gateway/src/main.ts",
      [
        ...["--shard-map-resource", `${ns}/berth`, "--kubeconfig", kubeconfig],
        ...["--grpc", grpc, "--gossip", gossip, "--http", http, "--cluster-id", clusterId],
        ...["--gossip-pull-ms", String(s.gatewayGossipPullMs), "--shard-map-wait-ms", "0"],
      ],
      logs,
      http,
    );
    const kubeConfig = cp.kubeConfig();
    const shardMaps = new ResourceInformer<ShardMapItem>({
      kubeConfig,
      path: `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${SHARD_MAP_PLURAL}`,
      fieldSelector: "metadata.name=berth",
      name: "bench-shardmaps",
      restartDelayMs: { initial: 100, max: 1_000 },
    });
    const leases = new ResourceInformer<LeaseItem>({
      kubeConfig,
      // Every Lease of the install: the workers' and the operators' leader Lease.
      path: `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
      name: "bench-leases",
      restartDelayMs: { initial: 100, max: 1_000 },
    });
    const shardReports = new ShardReportLog(workerAddresses, clusterId);
    informers.push(shardMaps, leases, { stop: () => shardReports.close() });
    shardMaps.start();
    leases.start();
    for (const p of [...operators, ...workers, gateway]) p.start();
    const gw = gateway;
    const mapStatus = () => shardMaps.get(`${ns}/berth`)?.status;
    const map = () => {
      const object = shardMaps.get(`${ns}/berth`);
      if (object === undefined) return undefined;
      const parsed = shardMapOfResource(object);
      return parsed.ok ? parsed.map : undefined;
    };
    const settled = async (): Promise<boolean> => {
      const st = mapStatus();
      if (st === undefined) return false;
      const shards = st.shards ?? [];
      const owners = new Set(shards.map((x) => x.owner));
      return (
        shards.length === s.shards &&
        shards.every((x) => x.owner !== "" && x.state === "Active") &&
        st.movingShards === 0 &&
        st.unassignedShards === 0 &&
        st.liveMembers === s.workers &&
        workers.every((w) => owners.has(w.name)) &&
        (await gw.ready())
      );
    };
    const explain = async (): Promise<string> => {
      const st = mapStatus();
      const lines = [
        `ShardMap: revision ${st?.revision}, live ${st?.liveMembers}, moving ${st?.movingShards}, unassigned ${st?.unassignedShards}`,
      ];
      for (const p of [...operators, ...workers, gw]) lines.push(`--- ${p.name}\n${p.tail(8)}`);
      return lines.join("\n");
    };
    const system: KubernetesSystem = {
      settings: s,
      cp,
      dir: o.dir,
      workers,
      operators,
      gateway: gw,
      gatewayGrpc: grpc,
      namespace: ns,
      kubeConfig,
      shardMaps,
      leases,
      shardReports,
      map,
      mapStatus,
      leader: async () => {
        for (const p of operators) {
          const text = await p.metrics().catch(() => "");
          if (/^berth_operator_leader(\{[^}]*\})? 1$/m.test(text)) return p;
        }
        return undefined;
      },
      settle: (what, timeoutMs = 180_000) => until(what, settled, timeoutMs, explain),
      explain,
      kubectl,
      apiServerMetrics: () => httpsText(kubeConfig, `${cp.server}/metrics`),
      stop,
    };
    await system.settle("every shard served by the workers and the gateway ready");
    return system;
  } catch (e: unknown) {
    await stop();
    throw e;
  }
}

/** GET `url` with the kubeconfig's credentials (client certificate), as text. */
async function httpsText(kc: KubeConfig, url: string): Promise<string> {
  const options: import("node:https").RequestOptions = {};
  await kc.applyToHTTPSOptions(options);
  return new Promise((resolveText, reject) => {
    const req = request(url, { ...options, method: "GET", timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        if (res.statusCode === 200) resolveText(body);
        else reject(new Error(`GET ${url}: HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
      });
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on("error", reject);
    req.end();
  });
}

/** Resident memory now and its high-water mark (VmRSS, VmHWM from /proc), in bytes. */
export function memoryOf(pid: number | undefined): { rss: number; hwm: number } | undefined {
  if (pid === undefined) return undefined;
  try {
    const text = readFileSync(`/proc/${pid}/status`, "utf8");
    const kb = (field: string) =>
      Number(new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text)?.[1]);
    return { rss: kb("VmRSS") * 1024, hwm: kb("VmHWM") * 1024 };
  } catch {
    return undefined;
  }
}

/** One JSON log line of a Berth process: its time (epoch ms), message and fields. */
export interface LogLine {
  readonly at: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** The JSON lines of `file` logged at or after `since` (epoch ms). */
export function logLinesSince(file: string, since: number): LogLine[] {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch {
    return [];
  }
  const out: LogLine[] = [];
  for (const line of text.split("\n")) {
    if (!line.startsWith("{")) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      const at = typeof o.time === "number" ? o.time : Date.parse(String(o.time));
      if (Number.isFinite(at) && at >= since) out.push({ ...o, at, msg: String(o.msg ?? "") });
    } catch {}
  }
  return out;
}
