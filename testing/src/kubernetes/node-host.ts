/**
 * The host side of the test node: what the cluster changes on this machine (the pod bridge,
 * iptables chains, sysctls, mounts, cgroups, network namespaces, CNI cache files) and how
 * to undo all of it — after a clean stop, from the reaper when the harness was killed, or
 * at the next start after a crashed run. Everything is keyed by the cluster's dir, whose
 * `host-state.json` records what was there before.
 */
import { spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, realpathSync, rmdirSync, statSync } from "node:fs";
import { readdir, readFile, rm, rmdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  CNI_NETWORK,
  EGRESS_CHAIN,
  iptablesCleanupScript,
  mountsUnder,
  OWNED_CHAIN_PREFIXES,
  POD_BRIDGE,
  POD_BRIDGE_IP,
  POD_BRIDGE_PREFIX,
  POD_CGROUP,
  TOUCHED_SYSCTLS,
} from "./cluster-config.js";
import { SERVICE_CLUSTER_IP_RANGE } from "./control-plane-config.js";

/** Cluster dirs are `<tmp>/berth-cluster-*`; a later start sweeps any it does not own. */
export const CLUSTER_DIR_PREFIX = "berth-cluster-";
const NETNS_DIR = "/run/netns";
const CNI_CACHE = "/var/lib/cni";
const CGROUP_ROOT = "/sys/fs/cgroup";

/** Thrown when a host command the node needs (ip, iptables, mount …) fails. */
export class NodeHostError extends Error {
  override readonly name = "NodeHostError";
}

/** What a cluster recorded about the host before changing it. */
export interface HostState {
  readonly version: 1;
  readonly clusterDir: string;
  readonly ownerPid: number;
  readonly createdAt: string;
  /** Values of {@link TOUCHED_SYSCTLS} before the cluster started. */
  readonly sysctls: Readonly<Record<string, string>>;
  /** Entries of /run/netns before the cluster started (only new `cni-*` ones are removed). */
  readonly netnsBefore: readonly string[];
  readonly hadCniCache: boolean;
  readonly hadNetnsDir: boolean;
  /** runc's `--root` (containers are under `<runcRoot>/<namespace>`). */
  readonly runcRoot: string;
}

export const hostStateFile = (clusterDir: string): string => join(clusterDir, "host-state.json");

/** Records the host's state into the cluster's dir; call before changing anything. */
export async function recordHostState(clusterDir: string, runcRoot: string): Promise<HostState> {
  const sysctls: Record<string, string> = {};
  for (const s of TOUCHED_SYSCTLS) {
    const v = readSysctl(s);
    if (v !== undefined) sysctls[s] = v;
  }
  const state: HostState = {
    version: 1,
    clusterDir,
    ownerPid: process.pid,
    createdAt: new Date().toISOString(),
    sysctls,
    netnsBefore: existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR) : [],
    hadCniCache: existsSync(CNI_CACHE),
    hadNetnsDir: existsSync(NETNS_DIR),
    runcRoot,
  };
  await writeFile(hostStateFile(clusterDir), `${JSON.stringify(state, null, 2)}\n`);
  return state;
}

/**
 * Creates the pod bridge with its address, a route for the Service range through it (so
 * the host's own connections to ClusterIPs leave from the bridge address), and the egress
 * chain: pod packets may go to the bridge's other ports and to the host, never elsewhere.
 */
export async function prepareHost(): Promise<void> {
  if (!existsSync(`/sys/class/net/${POD_BRIDGE}`)) {
    await must("ip", ["link", "add", POD_BRIDGE, "type", "bridge"]);
  }
  await must("ip", ["addr", "replace", `${POD_BRIDGE_IP}/${POD_BRIDGE_PREFIX}`, "dev", POD_BRIDGE]);
  await must("ip", ["link", "set", POD_BRIDGE, "up"]);
  await must("ip", [
    "route",
    "replace",
    SERVICE_CLUSTER_IP_RANGE,
    "dev",
    POD_BRIDGE,
    "src",
    POD_BRIDGE_IP,
  ]);
  await must("iptables", ["-w", "-N", EGRESS_CHAIN]);
  await must("iptables", [
    "-w",
    "-A",
    EGRESS_CHAIN,
    "-i",
    POD_BRIDGE,
    "-o",
    POD_BRIDGE,
    "-j",
    "RETURN",
  ]);
  await must("iptables", ["-w", "-A", EGRESS_CHAIN, "-i", POD_BRIDGE, "-j", "DROP"]);
  await must("iptables", ["-w", "-I", "FORWARD", "1", "-j", EGRESS_CHAIN]);
}

/** What is left of a cluster on the host (all empty after a complete teardown). */
export interface HostLeftovers {
  /** Processes whose command line mentions the cluster's dir (daemons, shims). */
  readonly processes: readonly number[];
  /** Mount points under the cluster's dir, and network namespaces it created. */
  readonly mounts: readonly string[];
  readonly bridge: boolean;
  /** iptables/ip6tables chains with an owned prefix, as `<family>/<table>/<chain>`. */
  readonly chains: readonly string[];
  /** Pod cgroup dirs, in every hierarchy. */
  readonly cgroups: readonly string[];
  /** Sysctls whose value differs from before the cluster, as `name=now (was before)`. */
  readonly sysctls: readonly string[];
  /** Whether the cluster's dir still exists. */
  readonly dir: boolean;
}

/** Looks for everything a cluster may leave behind. */
export async function hostLeftovers(state: HostState): Promise<HostLeftovers> {
  const chains: string[] = [];
  for (const family of ["iptables", "ip6tables"] as const) {
    const save = await run(`${family}-save`, []);
    let table = "";
    for (const line of save.stdout.split("\n")) {
      if (line.startsWith("*")) table = line.slice(1);
      const chain = line.startsWith(":") ? line.slice(1).split(" ")[0] : undefined;
      if (chain && OWNED_CHAIN_PREFIXES.some((p) => chain.startsWith(p))) {
        chains.push(`${family}/${table}/${chain}`);
      }
    }
  }
  const sysctls = Object.entries(state.sysctls)
    .map(([k, before]) => [k, readSysctl(k), before] as const)
    .filter(([, now, before]) => now !== before)
    .map(([k, now, before]) => `${k}=${now} (was ${before})`);
  return {
    processes: processesMentioning(state.clusterDir),
    mounts: [
      ...mountsUnder(readFileSync("/proc/self/mountinfo", "utf8"), state.clusterDir),
      ...newNetns(state),
    ],
    bridge: existsSync(`/sys/class/net/${POD_BRIDGE}`),
    chains,
    cgroups: podCgroupDirs(),
    sysctls,
    dir: existsSync(state.clusterDir),
  };
}

/**
 * Undoes everything a cluster did to the host, in order: stops any of its processes still
 * running (node daemons first, containers through runc, then shims, containerd and the
 * control plane), unmounts, deletes the bridge and the owned iptables chains, restores the
 * sysctls, removes pod cgroups, CNI cache files and the cluster's dir. Idempotent; never
 * throws: returns what could not be undone (as text).
 */
export async function teardownHost(
  state: HostState,
  log: (line: string) => void,
): Promise<string[]> {
  const problems: string[] = [];
  const step = async (what: string, fn: () => Promise<void>): Promise<void> => {
    try {
      await fn();
    } catch (e: unknown) {
      problems.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
  const dir = state.clusterDir;
  await step("stop node daemons", () =>
    stopProcesses(dir, ["kube-proxy", "kube-controller-manager", "kube-scheduler", "kubelet"]),
  );
  await step("remove containers", async () => {
    for (const ns of await readdir(state.runcRoot).catch(() => [] as string[])) {
      const root = join(state.runcRoot, ns);
      for (const id of await readdir(root).catch(() => [] as string[])) {
        await run("runc", ["--root", root, "delete", "--force", id]);
      }
    }
  });
  await step("stop containerd", () => stopProcesses(dir, ["containerd-shim", "containerd"]));
  await step("stop the control plane", () => stopProcesses(dir, ["kube-apiserver"]));
  await step("stop etcd", () => stopProcesses(dir, ["etcd"]));
  await step("stop the rest", () => stopProcesses(dir, [""]));
  await step("unmount", async () => {
    for (const m of mountsUnder(await readFile("/proc/self/mountinfo", "utf8"), dir)) {
      const r = await run("umount", [m]);
      if (r.code !== 0) await must("umount", ["-l", m]);
    }
    for (const ns of newNetns(state)) {
      await run("umount", [ns]);
      await rm(ns, { force: true });
    }
    if (!state.hadNetnsDir) await rmdir(NETNS_DIR).catch(() => undefined);
  });
  await step("delete the bridge", async () => {
    if (existsSync(`/sys/class/net/${POD_BRIDGE}`)) await must("ip", ["link", "del", POD_BRIDGE]);
  });
  await step("strip iptables chains", stripOwnedChains);
  await step("restore sysctls", async () => {
    for (const [k, v] of Object.entries(state.sysctls)) {
      if (readSysctl(k) !== v) await writeFile(`/proc/sys/${k}`, v);
    }
  });
  await step("remove pod cgroups", async () => {
    removePodCgroups();
  });
  await step("remove CNI cache files", async () => {
    for (const sub of ["results", "cache/results"]) {
      const d = join(CNI_CACHE, sub);
      for (const f of await readdir(d).catch(() => [] as string[])) {
        if (f.startsWith(`${CNI_NETWORK}-`)) await rm(join(d, f), { force: true });
      }
    }
    if (!state.hadCniCache) await rm(CNI_CACHE, { recursive: true, force: true });
  });
  await step("remove the cluster dir", () => rm(dir, { recursive: true, force: true }));
  for (const p of problems) log(`teardown: ${p}`);
  return problems;
}

/**
 * Cleans what crashed runs left: every `<tmp>/berth-cluster-*` dir but `except` (torn
 * down from its host-state.json, or by name if it has none), then any bridge, owned chains
 * and pod cgroups still there. Call only while holding the cluster lock.
 */
export async function sweepCrashedClusters(
  except: string | undefined,
  log: (line: string) => void,
): Promise<number> {
  let swept = 0;
  for (const name of await readdir(tmpdir()).catch(() => [] as string[])) {
    const dir = join(tmpdir(), name);
    if (!name.startsWith(CLUSTER_DIR_PREFIX) || dir === except) continue;
    let state: HostState;
    try {
      state = JSON.parse(readFileSync(hostStateFile(dir), "utf8")) as HostState;
    } catch {
      state = {
        version: 1,
        clusterDir: dir,
        ownerPid: 0,
        createdAt: "",
        sysctls: {},
        netnsBefore: existsSync(NETNS_DIR) ? readdirSync(NETNS_DIR) : [],
        hadCniCache: true,
        hadNetnsDir: true,
        runcRoot: join(dir, "containerd", "runc"),
      };
    }
    // Its reaper may still be at work (the lock passes on as soon as the harness dies).
    const reaperDeadline = Date.now() + 60_000;
    while (Date.now() < reaperDeadline && reaperOf(dir) !== undefined) await sleep(200);
    if (!existsSync(dir)) continue;
    log(`cleaning up after a previous cluster that did not stop cleanly: ${dir}`);
    await teardownHost(state, log);
    // Its harness is dead, so its watchdogs are leftovers too. They end by themselves
    // once their daemons are gone, but may still be polling (seen under load).
    await stopProcesses(dir, [""], { watchdogs: true });
    swept++;
  }
  if (existsSync(`/sys/class/net/${POD_BRIDGE}`)) await run("ip", ["link", "del", POD_BRIDGE]);
  await stripOwnedChains();
  removePodCgroups();
  return swept;
}

/** The pid of the reaper of `clusterDir` (node-reaper.ts), if one runs. */
export function reaperOf(clusterDir: string): number | undefined {
  return processesMentioning(clusterDir).find((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("node-reaper.ts");
    } catch {
      return false;
    }
  });
}

async function stripOwnedChains(): Promise<void> {
  for (const family of ["iptables", "ip6tables"] as const) {
    const save = await run(`${family}-save`, []);
    if (save.code !== 0) continue;
    const script = iptablesCleanupScript(save.stdout);
    if (script) await must(`${family}-restore`, ["-w", "--noflush"], script);
  }
}

/** Pod cgroup dirs (`kubepods` and below) in every hierarchy, deepest first. */
export function podCgroupDirs(): string[] {
  const found: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
    }
    found.push(d);
  };
  for (const h of cgroupHierarchies()) {
    const top = join(h, POD_CGROUP);
    if (existsSync(top)) walk(top);
  }
  return found;
}

function removePodCgroups(): void {
  const failed: string[] = [];
  for (const d of podCgroupDirs()) {
    try {
      rmdirSync(d);
    } catch (e: unknown) {
      failed.push(`${d} (${(e as NodeJS.ErrnoException).code})`);
    }
  }
  if (failed.length) throw new NodeHostError(`could not remove cgroups: ${failed.join(", ")}`);
}

/** Each mounted cgroup hierarchy once (v1 controllers, the named systemd one, cgroup2). */
function cgroupHierarchies(): string[] {
  const seen = new Set<string>();
  for (const name of existsSync(CGROUP_ROOT) ? readdirSync(CGROUP_ROOT) : []) {
    try {
      const real = realpathSync(join(CGROUP_ROOT, name));
      if (statSync(real).isDirectory()) seen.add(real);
    } catch {}
  }
  return [...seen];
}

function newNetns(state: HostState): string[] {
  if (!existsSync(NETNS_DIR)) return [];
  const before = new Set(state.netnsBefore);
  return readdirSync(NETNS_DIR)
    .filter((n) => n.startsWith("cni-") && !before.has(n))
    .map((n) => join(NETNS_DIR, n));
}

function readSysctl(name: string): string | undefined {
  try {
    return readFileSync(`/proc/sys/${name}`, "utf8").trim();
  } catch {
    return undefined;
  }
}

/** Pids (not ours) whose command line contains `needle`. */
export function processesMentioning(needle: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = readFileSync(`/proc/${entry}/cmdline`, "utf8");
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      if (cmd.includes(needle) && stat[stat.lastIndexOf(")") + 2] !== "Z")
        found.push(Number(entry));
    } catch {}
  }
  return found;
}

/**
 * SIGTERM, then after 10 s SIGKILL, every process mentioning `dir` whose executable's
 * base name starts with one of `names` ("" matches all); resolves when they are gone.
 * The reaper (node) and the control plane's sh watchdogs are left alone unless
 * `watchdogs` is set: only for a cluster whose harness is dead.
 */
async function stopProcesses(
  dir: string,
  names: readonly string[],
  { watchdogs = false }: { readonly watchdogs?: boolean } = {},
): Promise<void> {
  const matching = (): number[] =>
    processesMentioning(dir).filter((pid) => {
      try {
        const argv0 = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0")[0] ?? "";
        const base = argv0.slice(argv0.lastIndexOf("/") + 1);
        if (!watchdogs && (base === "node" || base === "sh")) return false;
        return names.some((n) => base.startsWith(n));
      } catch {
        return false;
      }
    });
  const pids = matching();
  if (pids.length === 0) return;
  for (const pid of pids) signal(pid, "SIGTERM");
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && matching().length > 0) await sleep(100);
  for (const pid of matching()) signal(pid, "SIGKILL");
  while (matching().length > 0) await sleep(100);
}

function signal(pid: number, s: NodeJS.Signals): void {
  try {
    process.kill(pid, s);
  } catch {}
}

/** Result of {@link run}. */
export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command (optionally feeding `input`); never rejects: a missing command is code 127. */
export function run(
  cmd: string,
  args: readonly string[],
  o: { readonly input?: string; readonly cwd?: string; readonly env?: NodeJS.ProcessEnv } = {},
): Promise<RunResult> {
  return new Promise((resolvePromise) => {
    const child = spawn(cmd, args, {
      stdio: ["pipe", "pipe", "pipe"],
      ...(o.cwd ? { cwd: o.cwd } : {}),
      ...(o.env ? { env: o.env } : {}),
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => {
      stdout += c;
    });
    child.stderr.setEncoding("utf8").on("data", (c: string) => {
      stderr += c;
    });
    child.on("error", (e) => resolvePromise({ code: 127, stdout, stderr: e.message }));
    child.on("close", (code) => resolvePromise({ code: code ?? 1, stdout, stderr }));
    child.stdin.on("error", () => undefined);
    child.stdin.end(o.input ?? "");
  });
}

/** {@link run}, throwing {@link NodeHostError} on a non-zero exit. */
export async function must(cmd: string, args: readonly string[], input?: string): Promise<string> {
  const r = await run(cmd, args, input === undefined ? {} : { input });
  if (r.code !== 0) {
    throw new NodeHostError(`${cmd} ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }
  return r.stdout;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
