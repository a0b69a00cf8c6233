/**
 * Developer CLI for the test Kubernetes control plane (`npm run k8s -- <command>`):
 *
 *   build [--commands a,b]   build (or reuse) the binaries in the cache
 *   start                    start etcd + kube-apiserver in the foreground; Ctrl-C stops
 *   env                      print shell exports for the running control plane (eval "$(…)")
 *   stop                     stop the control plane started by `start`
 *   cluster up               start a single-node cluster (node + control plane) in the foreground
 *   cluster env | down       exports for it / stop it
 */
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { parseArgs } from "node:util";
import { ensureKubernetesBinaries } from "./build.js";
import { COMMANDS, CONTROL_PLANE_COMMANDS, kubernetesCacheRoot } from "./build-config.js";
import { isAlive } from "./build-lock.js";
import { type Cluster, clusterUnavailableReason, NODE_PACKAGES, startCluster } from "./cluster.js";
import { CLUSTER_COMMANDS, POD_BRIDGE, POD_SUBNET } from "./cluster-config.js";
import { type ControlPlane, startControlPlane } from "./control-plane.js";

const USAGE = `usage: npm run k8s -- <command>
  build [--commands a,b]  build (or reuse) ${CLUSTER_COMMANDS.join(", ")} in the cache
                          (only ${CONTROL_PLANE_COMMANDS.join(", ")} where the node cannot run;
                          or the commands named: ${Object.keys(COMMANDS).join(", ")})
  start                   start etcd + kube-apiserver on 127.0.0.1; Ctrl-C stops them
  env                     print exports for the running control plane: eval "$(npm run -s k8s -- env)"
  stop                    stop the control plane started by 'start'
  cluster up              start a single-node cluster (containerd, kubelet, kube-proxy, kcm,
                          scheduler + control plane); Ctrl-C stops it and cleans the host
  cluster env             print exports for it: eval "$(npm run -s k8s -- cluster env)"
  cluster down            stop the cluster started by 'cluster up'
  node-packages           print the Debian packages the node needs (.ci/run installs them)`;

interface State {
  cliPid: number;
  server: string;
  kubeconfig: string;
  kubectl: string;
  dataDir: string;
  startedAt: string;
}

const stateFile = (): string => join(kubernetesCacheRoot(process.env, homedir()), "cli-state.json");
const clusterStateFile = (): string =>
  join(kubernetesCacheRoot(process.env, homedir()), "cli-cluster-state.json");

async function readState(file = stateFile()): Promise<State | undefined> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as State;
  } catch {
    return undefined;
  }
}

async function build(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { commands: { type: "string" } } });
  const nodeMissing = clusterUnavailableReason();
  if (!values.commands && nodeMissing) {
    console.error(`[kubernetes] building the control plane only: ${nodeMissing}`);
  }
  const commands = values.commands
    ? values.commands.split(",").map((s) => s.trim())
    : nodeMissing
      ? CONTROL_PLANE_COMMANDS
      : CLUSTER_COMMANDS;
  const r = await ensureKubernetesBinaries({ commands });
  if (r.built.length === 0) console.error(`[kubernetes] binaries already built in ${r.layout.bin}`);
  for (const [name, path] of Object.entries(r.paths)) console.log(`${name}\t${path}`);
  return 0;
}

/** One kind of foreground environment the CLI runs: the control plane, or a whole cluster. */
interface Foreground<T> {
  /** "control plane" / "cluster", for messages. */
  readonly what: string;
  readonly stateFile: () => string;
  /** How to start one (for "none running" messages). */
  readonly startCommand: string;
  /** What a second Ctrl-C, or one during start-up, leaves to clean the host. */
  readonly cleaner: string;
  /** How long `stop`/`down` waits for the CLI process before SIGKILL. */
  readonly stopTimeoutMs: number;
  readonly start: () => Promise<T>;
  readonly stop: (t: T) => Promise<void>;
  readonly stateOf: (t: T) => Omit<State, "cliPid" | "startedAt">;
  /** Prints how to use it, once started. */
  readonly describe: (t: T) => void;
}

const CONTROL_PLANE: Foreground<ControlPlane> = {
  what: "control plane",
  stateFile,
  startCommand: "npm run k8s -- start",
  cleaner: "the exit hook",
  stopTimeoutMs: 60_000,
  start: () => startControlPlane(),
  stop: (plane) => plane.stop(),
  stateOf: (plane) => ({
    server: plane.server,
    kubeconfig: plane.adminKubeconfig,
    kubectl: plane.binaries.kubectl,
    dataDir: plane.dataDir,
  }),
  describe: (plane) => {
    const rss = plane.rssBytes();
    console.log(`API server:  ${plane.server}`);
    console.log(`kubeconfig:  ${plane.adminKubeconfig}   (admin, group system:masters)`);
    console.log(`kubectl:     ${plane.binaries.kubectl}`);
    console.log(`memory:      etcd ${mb(rss.etcd)} MB, kube-apiserver ${mb(rss.apiServer)} MB RSS`);
    console.log("use it from another shell:");
    console.log(
      `  eval "$(npm run -s k8s -- env)"   # sets KUBECONFIG and puts kubectl first on PATH`,
    );
    console.log("  kubectl get namespaces");
    console.log(`logs: ${plane.logFiles.apiServer}, ${plane.logFiles.etcd}`);
    console.log("Ctrl-C (or 'npm run k8s -- stop') stops it.");
  },
};

const CLUSTER: Foreground<Cluster> = {
  what: "cluster",
  stateFile: clusterStateFile,
  startCommand: "npm run k8s -- cluster up",
  cleaner: "the reaper",
  stopTimeoutMs: 180_000,
  start: () => startCluster(),
  stop: (cluster) => cluster.stop(),
  stateOf: (cluster) => ({
    server: cluster.server,
    kubeconfig: cluster.kubeconfigPath,
    kubectl: cluster.controlPlane.binaries.kubectl,
    dataDir: cluster.dir,
  }),
  describe: (cluster) => {
    console.log(`API server:  ${cluster.server}`);
    console.log(`kubeconfig:  ${cluster.kubeconfigPath}   (admin; works for kubectl and helm)`);
    console.log(`kubectl:     ${cluster.controlPlane.binaries.kubectl}`);
    console.log(
      `node:        ${cluster.nodeName} (pods on ${POD_BRIDGE}, ${POD_SUBNET}; images: imagePullPolicy Never/IfNotPresent)`,
    );
    console.log(`cluster dir: ${cluster.dir}`);
    console.log(
      `memory (MB): ${Object.entries(cluster.rssBytes())
        .map(([n, b]) => `${n} ${mb(b)}`)
        .join(", ")}`,
    );
    console.log(`ready for pods after ${cluster.timings.readyForPods} s`);
    console.log(
      'use it from another shell: eval "$(npm run -s k8s -- cluster env)"; kubectl get nodes',
    );
    console.log("Ctrl-C (or 'npm run k8s -- cluster down') stops it and cleans the host.");
  },
};

/** Starts `kind` and keeps it running until Ctrl-C / SIGTERM, with its state in a file for env/stop. */
async function runForeground<T>(kind: Foreground<T>): Promise<number> {
  const previous = await readState(kind.stateFile());
  if (previous && isAlive(previous.cliPid)) {
    console.error(
      `a ${kind.what} is already running (cli pid ${previous.cliPid}) at ${previous.server}`,
    );
    return 1;
  }
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let running: T | undefined;
  let interrupted = 0;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted++;
    if (running === undefined || interrupted > 1) {
      // Still starting, or a second Ctrl-C: exit now and leave the rest to the cleaner.
      console.error(`\n${signal}: exiting without a clean stop (${kind.cleaner} cleans up)`);
      process.exit(130);
    }
    console.error(`\n${signal}: stopping the ${kind.what} …`);
    void kind.stop(running).then(resolveDone, (e: unknown) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exitCode = 1;
      resolveDone();
    });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    running = await kind.start();
  } catch (e: unknown) {
    clearInterval(keepAlive);
    throw e;
  }
  await mkdir(dirname(kind.stateFile()), { recursive: true });
  const state: State = {
    cliPid: process.pid,
    ...kind.stateOf(running),
    startedAt: new Date().toISOString(),
  };
  await writeFile(kind.stateFile(), `${JSON.stringify(state, null, 2)}\n`);
  kind.describe(running);
  await done;
  clearInterval(keepAlive);
  const current = await readState(kind.stateFile());
  if (current?.cliPid === process.pid) await rm(kind.stateFile(), { force: true });
  console.error(`${kind.what} stopped.`);
  return 0;
}

/** Prints shell exports for the running `kind`. */
async function printEnv<T>(kind: Foreground<T>): Promise<number> {
  const state = await readState(kind.stateFile());
  if (!state || !isAlive(state.cliPid)) {
    console.error(`no ${kind.what} running: start one with '${kind.startCommand}'`);
    return 1;
  }
  console.log(`export KUBECONFIG='${state.kubeconfig}'`);
  console.log(`export PATH='${dirname(state.kubectl)}':"$PATH"`);
  return 0;
}

/** Stops the `kind` another CLI process runs (SIGTERM; SIGKILL after its timeout). */
async function stopForeground<T>(kind: Foreground<T>): Promise<number> {
  const state = await readState(kind.stateFile());
  if (!state || !isAlive(state.cliPid)) {
    console.log(`no ${kind.what} running`);
    await rm(kind.stateFile(), { force: true });
    return 0;
  }
  process.kill(state.cliPid, "SIGTERM");
  const deadline = Date.now() + kind.stopTimeoutMs;
  while (isAlive(state.cliPid) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
  }
  if (isAlive(state.cliPid)) {
    console.log(
      `cli pid ${state.cliPid} did not exit within ${kind.stopTimeoutMs / 1000} s; sending SIGKILL (${kind.cleaner} cleans up)`,
    );
    process.kill(state.cliPid, "SIGKILL");
  }
  await rm(kind.stateFile(), { force: true });
  console.log(`stopped the ${kind.what} at ${state.server}`);
  return 0;
}

async function clusterCommand(argv: string[]): Promise<number> {
  const [sub] = argv;
  if (sub === "up") return runForeground(CLUSTER);
  if (sub === "env") return printEnv(CLUSTER);
  if (sub === "down") return stopForeground(CLUSTER);
  console.error(USAGE);
  return 2;
}

const mb = (bytes: number | undefined): string =>
  bytes === undefined ? "?" : (bytes / 1024 / 1024).toFixed(0);

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  switch (command) {
    case "build":
      return build(rest);
    case "start":
      return runForeground(CONTROL_PLANE);
    case "env":
      return printEnv(CONTROL_PLANE);
    case "stop":
      return stopForeground(CONTROL_PLANE);
    case "cluster":
      return clusterCommand(rest);
    case "node-packages":
      console.log(NODE_PACKAGES.join(" "));
      return 0;
    default:
      console.error(USAGE);
      return command === undefined || command === "help" || command === "--help" ? 0 : 2;
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exitCode = 1;
  },
);
