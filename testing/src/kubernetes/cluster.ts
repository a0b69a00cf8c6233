/**
 * A real single-node Kubernetes cluster for tests and developers, with no Docker:
 * containerd + runc + the CNI bridge, the control plane of control-plane.ts (etcd +
 * kube-apiserver), kube-controller-manager, kube-scheduler, kubelet and kube-proxy, all on
 * 127.0.0.1; pods on their own bridge with no route off the machine. One cluster at a time
 * per machine (a lock); everything it changes on the host is undone by stop(), by a reaper
 * process if this process is killed, or by the next start. See README.md in this directory.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { connect, createServer, type Server } from "node:net";
import { homedir, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import {
  ApiException,
  CoreV1Api,
  DiscoveryV1Api,
  type KubeConfig,
  RbacAuthorizationV1Api,
} from "@kubernetes/client-node";
import { ensureKubernetesBinaries } from "./build.js";
import { kubernetesCacheRoot } from "./build-config.js";
import { withFileLock } from "./build-lock.js";
import {
  CLUSTER_COMMANDS,
  clusterApiServerArgs,
  cniConflist,
  containerdConfigToml,
  controllerManagerArgs,
  kubeletArgs,
  kubeletConfigYaml,
  kubeProxyConfigYaml,
  NODE_NAME,
  POD_BRIDGE_IP,
  schedulerArgs,
} from "./cluster-config.js";
import {
  type ControlPlane,
  ControlPlaneStartError,
  type Daemon,
  freePorts,
  type KubectlResult,
  rssOf,
  startControlPlane,
  startDaemon,
  waitFor,
} from "./control-plane.js";
import {
  CLUSTER_DIR_PREFIX,
  type HostLeftovers,
  type HostState,
  hostLeftovers,
  prepareHost,
  recordHostState,
  run,
  sweepCrashedClusters,
  teardownHost,
} from "./node-host.js";
import { ensureImage, PAUSE } from "./node-images.js";

/** Thrown when this machine cannot run the node (not root, a missing package); says which. */
export class ClusterUnavailableError extends Error {
  override readonly name = "ClusterUnavailableError";
}

/** Thrown when importing an image into the node's containerd fails. */
export class ImageImportError extends Error {
  override readonly name = "ImageImportError";
}

/** The Debian packages the node needs (also installed by .ci/run). */
export const NODE_PACKAGES: readonly string[] = [
  "containerd",
  "runc",
  "containernetworking-plugins",
  "iptables",
  "iproute2",
  "conntrack",
  "buildah",
];

const CNI_BIN_DIR = "/usr/lib/cni";

/** Why a cluster cannot start here, or undefined if it can (tests skip with this reason). */
export function clusterUnavailableReason(): string | undefined {
  if (process.getuid?.() !== 0)
    return "the test node needs root (it runs containerd and a kubelet)";
  const missing: string[] = [];
  const onPath = (cmd: string): boolean =>
    (process.env.PATH ?? "/usr/sbin:/usr/bin:/sbin:/bin")
      .split(":")
      .concat(["/usr/sbin", "/sbin"])
      .some((d) => existsSync(join(d, cmd)));
  for (const [cmd, pkg] of [
    ["containerd", "containerd"],
    ["ctr", "containerd"],
    ["runc", "runc"],
    ["iptables", "iptables"],
    ["ip", "iproute2"],
    ["conntrack", "conntrack"],
    ["buildah", "buildah"],
  ] as const) {
    if (!onPath(cmd)) missing.push(`${cmd} (${pkg})`);
  }
  for (const plugin of ["bridge", "host-local", "loopback"]) {
    if (!existsSync(join(CNI_BIN_DIR, plugin)))
      missing.push(`${CNI_BIN_DIR}/${plugin} (containernetworking-plugins)`);
  }
  if (missing.length) {
    return `missing ${missing.join(", ")}: apt-get install ${NODE_PACKAGES.join(" ")}`;
  }
  return undefined;
}

/** Options of {@link startCluster}. */
export interface ClusterOptions {
  /** Progress lines; default stderr with a `[cluster] ` prefix. */
  readonly log?: (line: string) => void;
  /** OCI archives to import before the node starts (more later with importImage()). */
  readonly images?: readonly string[];
  /** How long to wait for each component (and for the node to be Ready); default 120 000 ms. */
  readonly startTimeoutMs?: number;
  /** How long stop() gives workloads to terminate through the API; default 60 000 ms. */
  readonly drainTimeoutMs?: number;
  /** How long to wait for another cluster on this machine to stop; default 30 min. */
  readonly lockTimeoutMs?: number;
}

/** An address and port. */
export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** A running single-node cluster. */
export interface Cluster {
  /** The control plane (etcd + kube-apiserver) it runs on. */
  readonly controlPlane: ControlPlane;
  /** `https://127.0.0.1:<port>` */
  readonly server: string;
  /** Admin kubeconfig file (group system:masters): usable by kubectl and helm. */
  readonly kubeconfigPath: string;
  /** The Node's name. */
  readonly nodeName: string;
  /** The cluster's dir (containerd, kubelet, logs, control plane); removed by stop(). */
  readonly dir: string;
  /**
   * Seconds from taking the machine lock to the end of each phase: `host`, `containerd`,
   * `images`, `controlPlane`, `nodeReady`, `readyForPods` (and `kubeletToNodeReady`).
   */
  readonly timings: Readonly<Record<string, number>>;
  /** A @kubernetes/client-node KubeConfig (admin). */
  kubeConfig(): KubeConfig;
  /** Runs the project-built kubectl (default admin kubeconfig); never rejects on a non-zero exit. */
  kubectl(
    args: readonly string[],
    options?: { readonly kubeconfig?: string },
  ): Promise<KubectlResult>;
  /** Imports an OCI archive (e.g. `buildah push … oci-archive:f.tar:name`) into the node; returns the image names. */
  importImage(ociArchivePath: string): Promise<string[]>;
  /**
   * Makes a host listener on 127.0.0.1:`port` reachable from pods: a forwarder bound on
   * the pod bridge's address. Returns the address and port pods must dial.
   */
  exposeHostPort(port: number): Promise<HostPort>;
  /**
   * Where the test process reaches a Service: its ClusterIP and port (the host routes the
   * Service range through the pod bridge, and kube-proxy's rules apply to local traffic).
   * `port` is the Service port's name or number; default its first port.
   */
  serviceAddress(namespace: string, name: string, port?: string | number): Promise<HostPort>;
  /** Log file of each component. */
  logs(): Readonly<Record<string, string>>;
  /** Pid of each component now (undefined when not running). */
  pids(): Readonly<Record<string, number | undefined>>;
  /** Resident memory of each component now, in bytes. */
  rssBytes(): Readonly<Record<string, number | undefined>>;
  /** What would be left on the host if the cluster vanished now (empty after stop()). */
  leftovers(): Promise<HostLeftovers>;
  /**
   * Deletes workloads through the API (so pods get SIGTERM and their grace period), stops
   * kube-proxy, kube-controller-manager, kube-scheduler and kubelet, removes containers,
   * stops kube-apiserver, etcd and containerd, then undoes every host change; idempotent.
   * Rejects if something could not be undone (after undoing all it could).
   */
  stop(): Promise<void>;
}

const defaultLog = (line: string): void => {
  process.stderr.write(`[cluster] ${line}\n`);
};

/** The machine-wide lock: one cluster at a time (fixed bridge, subnet, node name). */
export const clusterLockFile = (): string =>
  join(dirname(kubernetesCacheRoot(process.env, homedir())), "cluster.lock");

/**
 * Starts a single-node cluster and resolves once the node is Ready, untainted, and the
 * `default` ServiceAccount exists: ready for pods. Builds or reuses the binaries and the
 * pause image; waits while another cluster runs on this machine; first cleans up after
 * any earlier cluster that did not stop.
 */
export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const log = options.log ?? defaultLog;
  const why = clusterUnavailableReason();
  if (why) throw new ClusterUnavailableError(why);
  const timeoutMs = options.startTimeoutMs ?? 120_000;
  const { paths } = await ensureKubernetesBinaries({ commands: CLUSTER_COMMANDS, log });
  const bin = (name: string): string => paths[name] as string;
  const pauseArchive = await ensureImage(PAUSE, log);

  // Hold the machine-wide lock until stop() has undone everything.
  let release: () => void = () => undefined;
  let acquired: () => void = () => undefined;
  const gotLock = new Promise<void>((r) => {
    acquired = r;
  });
  const held = withFileLock(
    clusterLockFile(),
    () =>
      new Promise<void>((r) => {
        release = r;
        acquired();
      }),
    {
      timeoutMs: options.lockTimeoutMs ?? 30 * 60_000,
      onWait: (holder) =>
        log(`waiting for the cluster of process ${holder} to stop (${clusterLockFile()})`),
    },
  );
  await Promise.race([gotLock, held]);

  const t0 = Date.now();
  const timings: Record<string, number> = {};
  const mark = (key: string, what: string): void => {
    timings[key] = Number(((Date.now() - t0) / 1000).toFixed(1));
    log(`${secs(Date.now() - t0)} s  ${what}`);
  };
  let dir: string | undefined;
  let state: HostState | undefined;
  let reaper: ChildProcess | undefined;
  const daemons: Record<string, Daemon> = {};
  let plane: ControlPlane | undefined;
  const forwarders: Server[] = [];

  const teardown = async (drain: (() => Promise<void>) | undefined): Promise<string[]> => {
    if (drain) await drain().catch((e: unknown) => log(`draining workloads failed: ${String(e)}`));
    for (const n of ["kube-proxy", "kube-controller-manager", "kube-scheduler", "kubelet"]) {
      await daemons[n]?.stop(20_000);
    }
    for (const f of forwarders) f.close();
    await plane?.stop();
    await daemons.containerd?.stop(20_000);
    const problems = state ? await teardownHost(state, log) : [];
    reaper?.kill("SIGKILL");
    release();
    await held.catch(() => undefined);
    return problems;
  };

  try {
    const swept = await sweepCrashedClusters(undefined, log);
    if (swept) mark("sweep", `cleaned up ${swept} crashed cluster(s)`);
    dir = resolve(await mkdtemp(join(tmpdir(), CLUSTER_DIR_PREFIX)));
    const d = {
      logs: join(dir, "logs"),
      etc: join(dir, "etc"),
      containerd: join(dir, "containerd"),
      cniConf: join(dir, "cni", "net.d"),
      kubelet: join(dir, "kubelet"),
    };
    for (const p of Object.values(d)) await mkdir(p, { recursive: true });
    const ctrd = {
      root: join(d.containerd, "root"),
      state: join(d.containerd, "state"),
      socket: join(d.containerd, "containerd.sock"),
      runcRoot: join(d.containerd, "runc"),
      cniConfDir: d.cniConf,
      cniBinDir: CNI_BIN_DIR,
      opt: join(d.containerd, "opt"),
    };
    state = await recordHostState(dir, ctrd.runcRoot);
    reaper = startReaper(dir);
    await prepareHost();
    mark("host", `host prepared: bridge, route, egress chain (${dir})`);

    const containerdConfig = join(d.etc, "containerd.toml");
    await writeFile(containerdConfig, containerdConfigToml(ctrd));
    await writeFile(
      join(d.cniConf, "10-berth-pods.conflist"),
      cniConflist({ ipamDataDir: join(dir, "cni", "ipam") }),
    );
    const logFile = (n: string): string => join(d.logs, `${n}.log`);
    const start = (name: string, command: string, args: string[]): Daemon => {
      const daemon = startDaemon({
        name,
        bin: command,
        args,
        logFile: logFile(name),
        cwd: dir as string,
        log,
      });
      daemons[name] = daemon;
      return daemon;
    };
    const ctr = (args: readonly string[]) =>
      run("ctr", ["--address", ctrd.socket, "--namespace", "k8s.io", ...args]);
    const containerd = start("containerd", "containerd", [
      "--config",
      containerdConfig,
      "--log-level",
      "warn",
    ]);
    await waitFor({
      what: "containerd",
      daemon: containerd,
      timeoutMs,
      log,
      check: async () => {
        const r = await ctr(["version"]);
        return r.code === 0 ? "ok" : r.stderr.trim() || "no answer";
      },
    });
    mark("containerd", "containerd up");
    const importImage = async (archive: string): Promise<string[]> => {
      const r = await ctr(["images", "import", archive]);
      if (r.code !== 0)
        throw new ImageImportError(`ctr images import ${archive} failed: ${r.stderr.trim()}`);
      return [...r.stdout.matchAll(/^unpacking (\S+)/gm)].map((m) => m[1] as string);
    };
    for (const archive of [pauseArchive, ...(options.images ?? [])]) await importImage(archive);
    mark("images", "images imported");

    plane = await startControlPlane({
      log,
      dataDir: join(dir, "control-plane"),
      apiServerArgs: clusterApiServerArgs(),
      binaries: {
        etcd: bin("etcd"),
        kubeApiServer: bin("kube-apiserver"),
        kubectl: bin("kubectl"),
      },
      startTimeoutMs: timeoutMs,
    });
    mark("controlPlane", "control plane ready");
    const cp = plane;
    const kc = cp.kubeConfig();
    const core = kc.makeApiClient(CoreV1Api);
    await kc.makeApiClient(RbacAuthorizationV1Api).createClusterRoleBinding({
      body: {
        metadata: { name: "berth-harness:nodes" },
        roleRef: {
          apiGroup: "rbac.authorization.k8s.io",
          kind: "ClusterRole",
          name: "system:node",
        },
        subjects: [{ apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "system:nodes" }],
      },
    });
    // Pods reach the API server through the `kubernetes` Service: its endpoint is a
    // forwarder on the bridge address (the API server itself listens on 127.0.0.1 only).
    forwarders.push(await forward(POD_BRIDGE_IP, cp.apiServerPort, cp.apiServerPort));
    await publishApiServerEndpoints(kc, cp.apiServerPort);

    const [kcmPort, schedPort, kubeletPort, kubeletHealthz, proxyHealthz, proxyMetrics] =
      await freePorts(6);
    const kubeconfigs = {
      kcm: await cp.clientCertKubeconfig("system:kube-controller-manager"),
      scheduler: await cp.clientCertKubeconfig("system:kube-scheduler"),
      kubelet: await cp.clientCertKubeconfig(`system:node:${NODE_NAME}`, ["system:nodes"]),
      proxy: await cp.clientCertKubeconfig("system:kube-proxy"),
    };
    const pkiDir = dirname(cp.caFile);
    start(
      "kube-controller-manager",
      bin("kube-controller-manager"),
      controllerManagerArgs({
        kubeconfig: kubeconfigs.kcm,
        securePort: kcmPort as number,
        serviceAccountKey: join(pkiDir, "sa.key"),
        rootCaFile: cp.caFile,
      }),
    );
    start(
      "kube-scheduler",
      bin("kube-scheduler"),
      schedulerArgs({ kubeconfig: kubeconfigs.scheduler, securePort: schedPort as number }),
    );
    const kubeletConfig = join(d.etc, "kubelet.yaml");
    await writeFile(
      kubeletConfig,
      kubeletConfigYaml({
        containerdSocket: ctrd.socket,
        port: kubeletPort as number,
        healthzPort: kubeletHealthz as number,
        podLogsDir: join(dir, "pod-logs"),
      }),
    );
    const kubeletStarted = Date.now();
    const kubelet = start(
      "kubelet",
      bin("kubelet"),
      kubeletArgs({ config: kubeletConfig, kubeconfig: kubeconfigs.kubelet, rootDir: d.kubelet }),
    );
    const proxyConfig = join(d.etc, "kube-proxy.yaml");
    await writeFile(
      proxyConfig,
      kubeProxyConfigYaml({
        kubeconfig: kubeconfigs.proxy,
        healthzPort: proxyHealthz as number,
        metricsPort: proxyMetrics as number,
      }),
    );
    start("kube-proxy", bin("kube-proxy"), [`--config=${proxyConfig}`, "--v=1"]);

    await waitFor({
      what: `node ${NODE_NAME} Ready`,
      daemon: kubelet,
      timeoutMs,
      log,
      check: async () => {
        const node = await core.readNode({ name: NODE_NAME });
        const ready = node.status?.conditions?.find((c) => c.type === "Ready");
        if (ready?.status !== "True")
          return `Ready=${ready?.status ?? "?"} (${ready?.message ?? "no status yet"})`;
        const taints = node.spec?.taints ?? [];
        return taints.length ? `tainted: ${taints.map((t) => t.key).join(", ")}` : "ok";
      },
    });
    timings.kubeletToNodeReady = Number(((Date.now() - kubeletStarted) / 1000).toFixed(1));
    mark(
      "nodeReady",
      `node Ready and untainted (${secs(Date.now() - kubeletStarted)} s after kubelet start)`,
    );
    await waitFor({
      what: "the default ServiceAccount",
      daemon: daemons["kube-controller-manager"] as Daemon,
      timeoutMs,
      log,
      check: async () => {
        await core.readNamespacedServiceAccount({ namespace: "default", name: "default" });
        await core.readNamespacedConfigMap({ namespace: "default", name: "kube-root-ca.crt" });
        return "ok";
      },
    });
    mark("readyForPods", "ready for pods");

    const clusterDir = dir;
    let stopping: Promise<void> | undefined;
    const cluster: Cluster = {
      controlPlane: cp,
      server: cp.server,
      kubeconfigPath: cp.adminKubeconfig,
      nodeName: NODE_NAME,
      dir: clusterDir,
      timings,
      kubeConfig: () => cp.kubeConfig(),
      kubectl: (args, o) => cp.kubectl(args, o),
      importImage,
      exposeHostPort: async (port) => {
        const f = await forward(POD_BRIDGE_IP, 0, port);
        forwarders.push(f);
        return { host: POD_BRIDGE_IP, port: (f.address() as { port: number }).port };
      },
      serviceAddress: async (namespace, name, port) => {
        const svc = await core.readNamespacedService({ namespace, name });
        const ip = svc.spec?.clusterIP;
        if (!ip || ip === "None")
          throw new RangeError(`Service ${namespace}/${name} has no ClusterIP`);
        const p = (svc.spec?.ports ?? []).find(
          (x) => port === undefined || x.name === port || x.port === port,
        );
        if (!p) throw new RangeError(`Service ${namespace}/${name} has no port ${port ?? ""}`);
        return { host: ip, port: p.port };
      },
      logs: () => ({
        ...Object.fromEntries(Object.keys(daemons).map((n) => [n, logFile(n)])),
        etcd: cp.logFiles.etcd,
        "kube-apiserver": cp.logFiles.apiServer,
      }),
      pids: () => ({
        ...Object.fromEntries(
          Object.entries(daemons).map(([n, x]) => [n, x.alive() ? x.pid : undefined]),
        ),
        ...renameKeys(cp.pids()),
      }),
      rssBytes: () => ({
        ...Object.fromEntries(
          Object.entries(daemons).map(([n, x]) => [n, x.alive() ? rssOf(x.pid) : undefined]),
        ),
        ...renameKeys(cp.rssBytes()),
      }),
      leftovers: () => hostLeftovers(state as HostState),
      stop: () => {
        stopping ??= (async () => {
          const t = Date.now();
          log("stopping: deleting workloads through the API …");
          const problems = await teardown(() =>
            drainWorkloads(cp, core, options.drainTimeoutMs ?? 60_000, log),
          );
          if (problems.length) throw new Error(`cluster teardown left: ${problems.join("; ")}`);
          log(`stopped and cleaned up in ${secs(Date.now() - t)} s`);
        })();
        return stopping;
      },
    };
    return cluster;
  } catch (e: unknown) {
    log(
      `start failed (${e instanceof Error ? e.message.split("\n")[0] : String(e)}); undoing everything` +
        (e instanceof ControlPlaneStartError
          ? " (the error carries the failing log's last lines)"
          : ""),
    );
    await teardown(undefined);
    throw e;
  }
}

/** `etcd`/`apiServer` → the component names the cluster uses. */
function renameKeys<T>(o: { readonly etcd: T; readonly apiServer: T }): Record<string, T> {
  return { etcd: o.etcd, "kube-apiserver": o.apiServer };
}

/** A TCP forwarder listening on `host:listenPort` (0: any) to 127.0.0.1:`targetPort`. */
async function forward(host: string, listenPort: number, targetPort: number): Promise<Server> {
  const server = createServer((inbound) => {
    const outbound = connect({ host: "127.0.0.1", port: targetPort });
    const close = (): void => {
      inbound.destroy();
      outbound.destroy();
    };
    inbound.on("error", close).on("close", close);
    outbound.on("error", close).on("close", close);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((r, j) => {
    server.once("error", j);
    server.listen(listenPort, host, () => r());
  });
  server.unref();
  return server;
}

/** Endpoints + EndpointSlice of the `kubernetes` Service (the API server's reconciler is off). */
async function publishApiServerEndpoints(kc: KubeConfig, port: number): Promise<void> {
  const core = kc.makeApiClient(CoreV1Api);
  const discovery = kc.makeApiClient(DiscoveryV1Api);
  const ignoreConflict = (e: unknown): void => {
    if (!(e instanceof ApiException && e.code === 409)) throw e;
  };
  await core
    .createNamespacedEndpoints({
      namespace: "default",
      body: {
        metadata: {
          name: "kubernetes",
          labels: { "endpointslice.kubernetes.io/skip-mirror": "true" },
        },
        subsets: [
          { addresses: [{ ip: POD_BRIDGE_IP }], ports: [{ name: "https", port, protocol: "TCP" }] },
        ],
      },
    })
    .catch(ignoreConflict);
  await discovery
    .createNamespacedEndpointSlice({
      namespace: "default",
      body: {
        metadata: {
          name: "kubernetes",
          labels: {
            "kubernetes.io/service-name": "kubernetes",
            "endpointslice.kubernetes.io/managed-by": "berth-test-harness",
          },
        },
        addressType: "IPv4",
        endpoints: [{ addresses: [POD_BRIDGE_IP], conditions: { ready: true } }],
        ports: [{ name: "https", port, protocol: "TCP" }],
      },
    })
    .catch(ignoreConflict);
}

/**
 * Deletes every workload (controllers first, then pods) in every namespace so the kubelet
 * stops pods with SIGTERM and their grace period; waits up to `timeoutMs` for pods to go.
 */
async function drainWorkloads(
  cp: ControlPlane,
  core: CoreV1Api,
  timeoutMs: number,
  log: (line: string) => void,
): Promise<void> {
  const kinds = "deployments,statefulsets,daemonsets,replicasets,jobs,cronjobs";
  const r1 = await cp.kubectl(["delete", kinds, "--all", "--all-namespaces", "--wait=false"]);
  if (r1.code !== 0) log(`kubectl delete ${kinds}: ${r1.stderr.trim()}`);
  const r2 = await cp.kubectl(["delete", "pods", "--all", "--all-namespaces", "--wait=false"]);
  if (r2.code !== 0) log(`kubectl delete pods: ${r2.stderr.trim()}`);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const pods = (await core.listPodForAllNamespaces()).items;
    if (pods.length === 0) return;
    if (Date.now() > deadline) {
      log(
        `${pods.length} pod(s) still terminating after ${timeoutMs} ms; stopping the node anyway`,
      );
      return;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}

/**
 * A detached process that undoes the cluster's host changes if this process dies: it
 * holds a pipe from us and runs teardownHost when the pipe closes (stop() kills it first).
 */
function startReaper(clusterDir: string): ChildProcess {
  const repoRoot = resolve(import.meta.dirname, "..", "..", "..");
  const child = spawn(
    process.execPath,
    ["--import", "tsx", join(import.meta.dirname, "node-reaper.ts"), clusterDir],
    { cwd: repoRoot, stdio: ["pipe", "ignore", "ignore"], detached: true },
  );
  child.on("error", () => undefined);
  child.stdin?.on("error", () => undefined);
  child.unref();
  (child.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  return child;
}

const secs = (ms: number): string => (ms / 1000).toFixed(1);
