/**
 * Pure builders for the single-node test cluster: containerd's config, the CNI network,
 * KubeletConfiguration, KubeProxyConfiguration, the daemons' flags, and the parsing that
 * teardown needs (iptables-save output, /proc/self/mountinfo). No IO here; cluster.ts and
 * node-host.ts run things.
 */
import { stringify } from "yaml";
import { SERVICE_CLUSTER_IP_RANGE } from "./control-plane-config.js";

/** Everything a cluster needs built: the control plane's commands plus the node's. */
export const CLUSTER_COMMANDS: readonly string[] = [
  "etcd",
  "kube-apiserver",
  "kubectl",
  "kube-controller-manager",
  "kube-scheduler",
  "kubelet",
  "kube-proxy",
];

/** The Node's name; it resolves to 127.0.0.1 (/etc/hosts), where the kubelet serves. */
export const NODE_NAME = "localhost";
/** The pod bridge, created by the harness (not the CNI plugin) so it can bind on it first. */
export const POD_BRIDGE = "berth0";
/** Pod addresses; the bridge holds the first one. */
export const POD_SUBNET = "10.244.0.0/24";
/** The bridge's address: pods' gateway for the Service range, and where forwarders listen. */
export const POD_BRIDGE_IP = "10.244.0.1";
export const POD_BRIDGE_PREFIX = 24;
/** Name of the CNI network (also the prefix of its cache files in /var/lib/cni). */
export const CNI_NETWORK = "berth-pods";
/** The filter chain that drops pod traffic leaving the bridge (no pod can send off the machine). */
export const EGRESS_CHAIN = "BERTH-POD-EGRESS";
/** Chains the cluster creates (kube-proxy, kubelet, CNI plugins, the harness): teardown strips these only. */
export const OWNED_CHAIN_PREFIXES: readonly string[] = ["KUBE-", "CNI-", "BERTH-"];
/** The local pause image containerd runs as every pod's sandbox. */
export const PAUSE_IMAGE = "localhost/berth-pause:1";
/** The test workload image (static Go: serve, get, whoami, routes). */
export const TESTBOX_IMAGE = "localhost/berth-testbox:1";

/**
 * Sysctls the node's daemons change: the CNI bridge plugin (ip_forward), kube-proxy
 * (route_localnet for NodePorts on 127.0.0.1) and the kubelet's kernel tunables. Their
 * values are saved before start and written back at teardown.
 */
export const TOUCHED_SYSCTLS: readonly string[] = [
  "net/ipv4/ip_forward",
  "net/ipv4/conf/all/route_localnet",
  "vm/overcommit_memory",
  "kernel/panic",
  "kernel/panic_on_oops",
  "kernel/keys/root_maxkeys",
  "kernel/keys/root_maxbytes",
];

/** The cgroup the kubelet puts pods under (cgroupfs driver), at the root of each hierarchy. */
export const POD_CGROUP = "kubepods";

/** Where one cluster's containerd keeps things; every path is under the cluster's dir. */
export interface ContainerdPaths {
  readonly root: string;
  readonly state: string;
  readonly socket: string;
  /** runc's state dir (its `--root`). */
  readonly runcRoot: string;
  readonly cniConfDir: string;
  readonly cniBinDir: string;
  /** containerd's "opt" plugin dir (default /opt/containerd). */
  readonly opt: string;
}

const toml = (s: string): string => JSON.stringify(s);

/**
 * containerd 1.6 config (version 2) for a cgroup v1 host without systemd: runc with
 * cgroupfs, `restrict_oom_score_adj` (root lacks CAP_SYS_RESOURCE here), the local pause
 * image, the CNI config from the cluster's dir, streaming on 127.0.0.1 only.
 */
export function containerdConfigToml(p: ContainerdPaths, sandboxImage = PAUSE_IMAGE): string {
  return `# written by the Berth test cluster harness (testing/src/kubernetes/cluster.ts)
version = 2
root = ${toml(p.root)}
state = ${toml(p.state)}
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = ${toml(p.socket)}

[plugins."io.containerd.internal.v1.opt"]
  path = ${toml(p.opt)}

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = ${toml(sandboxImage)}
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_cdi = false
  disable_apparmor = true
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "runc"
        Root = ${toml(p.runcRoot)}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = ${toml(p.cniBinDir)}
    conf_dir = ${toml(p.cniConfDir)}
    max_conf_num = 1
`;
}

/**
 * The CNI network: the harness's bridge, host-local IPAM with its data under the cluster's
 * dir, no masquerade, and no default route (only the Service range, via the bridge).
 */
export function cniConflist(o: { readonly ipamDataDir: string }): string {
  return `${JSON.stringify(
    {
      cniVersion: "1.0.0",
      name: CNI_NETWORK,
      plugins: [
        {
          type: "bridge",
          bridge: POD_BRIDGE,
          isGateway: true,
          ipMasq: false,
          hairpinMode: true,
          ipam: {
            type: "host-local",
            dataDir: o.ipamDataDir,
            ranges: [[{ subnet: POD_SUBNET, gateway: POD_BRIDGE_IP }]],
            routes: [{ dst: SERVICE_CLUSTER_IP_RANGE }],
          },
        },
      ],
    },
    null,
    2,
  )}\n`;
}

/** What the kubelet runs with. */
export interface KubeletConfig {
  readonly containerdSocket: string;
  readonly port: number;
  readonly healthzPort: number;
  readonly podLogsDir: string;
}

/**
 * KubeletConfiguration: cgroup v1 allowed (`failCgroupV1: false`), cgroupfs, loopback
 * only, no host DNS config for pods, evictions that never fire on a test machine.
 */
export function kubeletConfigYaml(c: KubeletConfig): string {
  return stringify({
    apiVersion: "kubelet.config.k8s.io/v1beta1",
    kind: "KubeletConfiguration",
    failCgroupV1: false,
    cgroupDriver: "cgroupfs",
    containerRuntimeEndpoint: `unix://${c.containerdSocket}`,
    failSwapOn: false,
    address: "127.0.0.1",
    port: c.port,
    readOnlyPort: 0,
    healthzBindAddress: "127.0.0.1",
    healthzPort: c.healthzPort,
    // The apiserver reaches the kubelet on loopback only (logs, exec, port-forward).
    authentication: { anonymous: { enabled: true }, webhook: { enabled: false } },
    authorization: { mode: "AlwaysAllow" },
    clusterDomain: "cluster.local",
    resolvConf: "",
    podLogsDirectory: c.podLogsDir,
    rotateCertificates: false,
    serializeImagePulls: false,
    evictionHard: {
      "memory.available": "50Mi",
      "nodefs.available": "1%",
      "imagefs.available": "1%",
    },
    imageGCHighThresholdPercent: 100,
    imageGCLowThresholdPercent: 99,
    // Status every 2 s so tests do not wait for the default 10 s.
    nodeStatusUpdateFrequency: "2s",
    syncFrequency: "10s",
    fileCheckFrequency: "5s",
  });
}

/** kubelet flags (what KubeletConfiguration cannot say). */
export function kubeletArgs(o: {
  readonly config: string;
  readonly kubeconfig: string;
  readonly rootDir: string;
}): string[] {
  return [
    `--config=${o.config}`,
    `--kubeconfig=${o.kubeconfig}`,
    `--root-dir=${o.rootDir}`,
    `--cert-dir=${o.rootDir}/pki`,
    `--hostname-override=${NODE_NAME}`,
    // A Node's InternalIP must not be loopback; the bridge address is local and stable.
    `--node-ip=${POD_BRIDGE_IP}`,
    "--v=1",
  ];
}

/** KubeProxyConfiguration: iptables, loopback only, NodePorts on 127.0.0.1, no conntrack sysctls. */
export function kubeProxyConfigYaml(o: {
  readonly kubeconfig: string;
  readonly healthzPort: number;
  readonly metricsPort: number;
}): string {
  return stringify({
    apiVersion: "kubeproxy.config.k8s.io/v1alpha1",
    kind: "KubeProxyConfiguration",
    mode: "iptables",
    clientConnection: { kubeconfig: o.kubeconfig },
    hostnameOverride: NODE_NAME,
    clusterCIDR: POD_SUBNET,
    bindAddress: "127.0.0.1",
    healthzBindAddress: `127.0.0.1:${o.healthzPort}`,
    metricsBindAddress: `127.0.0.1:${o.metricsPort}`,
    nodePortAddresses: ["127.0.0.1/32"],
    conntrack: {
      maxPerCore: 0,
      min: 0,
      tcpEstablishedTimeout: "0s",
      tcpCloseWaitTimeout: "0s",
    },
  });
}

/** kube-controller-manager flags: loopback, no leader election, a ServiceAccount per controller. */
export function controllerManagerArgs(o: {
  readonly kubeconfig: string;
  readonly securePort: number;
  readonly serviceAccountKey: string;
  readonly rootCaFile: string;
}): string[] {
  return [
    `--kubeconfig=${o.kubeconfig}`,
    `--authentication-kubeconfig=${o.kubeconfig}`,
    `--authorization-kubeconfig=${o.kubeconfig}`,
    "--authentication-skip-lookup=true",
    "--bind-address=127.0.0.1",
    `--secure-port=${o.securePort}`,
    "--leader-elect=false",
    `--service-account-private-key-file=${o.serviceAccountKey}`,
    `--root-ca-file=${o.rootCaFile}`,
    "--use-service-account-credentials=true",
    "--allocate-node-cidrs=false",
    `--service-cluster-ip-range=${SERVICE_CLUSTER_IP_RANGE}`,
    // Pods of a deleted node are not waited on for minutes in tests.
    "--terminated-pod-gc-threshold=100",
    "--v=1",
  ];
}

/** kube-scheduler flags: loopback, no leader election. */
export function schedulerArgs(o: {
  readonly kubeconfig: string;
  readonly securePort: number;
}): string[] {
  return [
    `--kubeconfig=${o.kubeconfig}`,
    `--authentication-kubeconfig=${o.kubeconfig}`,
    `--authorization-kubeconfig=${o.kubeconfig}`,
    "--authentication-skip-lookup=true",
    "--bind-address=127.0.0.1",
    `--secure-port=${o.securePort}`,
    "--leader-elect=false",
    "--v=1",
  ];
}

/** kube-apiserver flags the node needs on top of the control plane's. */
export function clusterApiServerArgs(): string[] {
  // The kubelet's Hostname address is NODE_NAME, which resolves to 127.0.0.1.
  return ["--kubelet-preferred-address-types=Hostname,InternalIP", "--allow-privileged=true"];
}

/**
 * An `iptables-restore --noflush` script removing every rule that jumps to, and every
 * chain named with, one of `prefixes` from an `iptables-save` dump; undefined if none.
 * Rules of other chains are deleted one by one (`-D`), so rules others made stay.
 */
export function iptablesCleanupScript(
  save: string,
  prefixes: readonly string[] = OWNED_CHAIN_PREFIXES,
): string | undefined {
  const owned = (chain: string): boolean => prefixes.some((p) => chain.startsWith(p));
  const out: string[] = [];
  let table: string | undefined;
  let body: string[] = [];
  const flush = (): void => {
    if (table && body.length) out.push(`*${table}`, ...body, "COMMIT");
    body = [];
  };
  const chainsOf: string[] = [];
  for (const line of save.split("\n")) {
    if (line.startsWith("*")) {
      table = line.slice(1).trim();
      chainsOf.length = 0;
      continue;
    }
    if (line.startsWith(":")) {
      const chain = line.slice(1).split(/\s+/)[0] ?? "";
      if (owned(chain)) chainsOf.push(chain);
      continue;
    }
    if (line.startsWith("-A ")) {
      const [, chain = "", ...rest] = line.split(" ");
      const jump = /(?:^|\s)-[jg] (\S+)/.exec(rest.join(" "))?.[1];
      if (!owned(chain) && jump !== undefined && owned(jump))
        body.push(`-D ${chain} ${rest.join(" ")}`);
      continue;
    }
    if (line.trim() === "COMMIT") {
      for (const c of chainsOf) body.push(`-F ${c}`);
      for (const c of chainsOf) body.push(`-X ${c}`);
      flush();
      table = undefined;
    }
  }
  return out.length ? `${out.join("\n")}\n` : undefined;
}

/**
 * Mount points at or under `dir`, last mounted first (the order to unmount them; a point
 * mounted twice appears twice), from the text of /proc/self/mountinfo (octal escapes such
 * as `\040` decoded).
 */
export function mountsUnder(mountinfo: string, dir: string): string[] {
  const base = dir.replace(/\/+$/, "");
  return mountinfo
    .split("\n")
    .map((l) => l.split(" ")[4])
    .filter((p): p is string => p !== undefined && p !== "")
    .map((p) =>
      p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))),
    )
    .filter((p) => p === base || p.startsWith(`${base}/`))
    .reverse();
}
