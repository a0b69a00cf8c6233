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

async function start(): Promise<number> {
  const previous = await readState();
  if (previous && isAlive(previous.cliPid)) {
    console.error(
      `a control plane is already running (cli pid ${previous.cliPid}) at ${previous.server}`,
    );
    return 1;
  }
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let plane: ControlPlane | undefined;
  let interrupted = 0;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted++;
    if (!plane || interrupted > 1) {
      // Still starting, or a second Ctrl-C: exit now; the exit hook kills what was started.
      console.error(`\n${signal}: exiting without a clean stop`);
      process.exit(130);
    }
    console.error(`\n${signal}: stopping kube-apiserver, then etcd …`);
    void plane.stop().then(resolveDone);
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);

  try {
    plane = await startControlPlane();
  } catch (e: unknown) {
    clearInterval(keepAlive);
    throw e;
  }
  await mkdir(dirname(stateFile()), { recursive: true });
  const state: State = {
    cliPid: process.pid,
    server: plane.server,
    kubeconfig: plane.adminKubeconfig,
    kubectl: plane.binaries.kubectl,
    dataDir: plane.dataDir,
    startedAt: new Date().toISOString(),
  };
  await writeFile(stateFile(), `${JSON.stringify(state, null, 2)}\n`);
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
  await done;
  clearInterval(keepAlive);
  const current = await readState();
  if (current?.cliPid === process.pid) await rm(stateFile(), { force: true });
  console.error("control plane stopped.");
  return 0;
}

async function env(): Promise<number> {
  const state = await readState();
  if (!state || !isAlive(state.cliPid)) {
    console.error("no control plane running: start one with 'npm run k8s -- start'");
    return 1;
  }
  console.log(`export KUBECONFIG='${state.kubeconfig}'`);
  console.log(`export PATH='${dirname(state.kubectl)}':"$PATH"`);
  return 0;
}

async function stop(): Promise<number> {
  const state = await readState();
  if (!state || !isAlive(state.cliPid)) {
    console.log("no control plane running");
    if (state) await rm(stateFile(), { force: true });
    return 0;
  }
  process.kill(state.cliPid, "SIGTERM");
  const deadline = Date.now() + 60_000;
  while (isAlive(state.cliPid) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
  }
  if (isAlive(state.cliPid)) {
    console.log(
      `cli pid ${state.cliPid} did not exit within 60 s; sending SIGKILL (its watchdogs stop the rest)`,
    );
    process.kill(state.cliPid, "SIGKILL");
  }
  await rm(stateFile(), { force: true });
  console.log(`stopped the control plane at ${state.server}`);
  return 0;
}

async function clusterUp(): Promise<number> {
  const previous = await readState(clusterStateFile());
  if (previous && isAlive(previous.cliPid)) {
    console.error(
      `a cluster is already running (cli pid ${previous.cliPid}) at ${previous.server}`,
    );
    return 1;
  }
  const keepAlive = setInterval(() => undefined, 1 << 30);
  let cluster: Cluster | undefined;
  let interrupted = 0;
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  const onSignal = (signal: NodeJS.Signals): void => {
    interrupted++;
    if (!cluster || interrupted > 1) {
      // Still starting, or a second Ctrl-C: exit now; the reaper cleans the host.
      console.error(`\n${signal}: exiting without a clean stop (the reaper cleans up)`);
      process.exit(130);
    }
    console.error(`\n${signal}: deleting workloads, stopping the node and the control plane …`);
    void cluster.stop().then(resolveDone, (e: unknown) => {
      console.error(e instanceof Error ? e.message : String(e));
      process.exitCode = 1;
      resolveDone();
    });
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  try {
    cluster = await startCluster();
  } catch (e: unknown) {
    clearInterval(keepAlive);
    throw e;
  }
  await mkdir(dirname(clusterStateFile()), { recursive: true });
  const state: State = {
    cliPid: process.pid,
    server: cluster.server,
    kubeconfig: cluster.kubeconfigPath,
    kubectl: cluster.controlPlane.binaries.kubectl,
    dataDir: cluster.dir,
    startedAt: new Date().toISOString(),
  };
  await writeFile(clusterStateFile(), `${JSON.stringify(state, null, 2)}\n`);
  console.log(`API server:  ${cluster.server}`);
  console.log(`kubeconfig:  ${cluster.kubeconfigPath}   (admin; works for kubectl and helm)`);
  console.log(`kubectl:     ${state.kubectl}`);
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
  await done;
  clearInterval(keepAlive);
  const current = await readState(clusterStateFile());
  if (current?.cliPid === process.pid) await rm(clusterStateFile(), { force: true });
  console.error("cluster stopped.");
  return 0;
}

async function clusterCommand(argv: string[]): Promise<number> {
  const [sub] = argv;
  if (sub === "up") return clusterUp();
  const state = await readState(clusterStateFile());
  const running = state !== undefined && isAlive(state.cliPid);
  if (sub === "env") {
    if (!running) {
      console.error("no cluster running: start one with 'npm run k8s -- cluster up'");
      return 1;
    }
    console.log(`export KUBECONFIG='${state.kubeconfig}'`);
    console.log(`export PATH='${dirname(state.kubectl)}':"$PATH"`);
    return 0;
  }
  if (sub === "down") {
    if (!running) {
      console.log("no cluster running");
      await rm(clusterStateFile(), { force: true });
      return 0;
    }
    process.kill(state.cliPid, "SIGTERM");
    const deadline = Date.now() + 180_000;
    while (isAlive(state.cliPid) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
    }
    if (isAlive(state.cliPid)) {
      console.log(
        `cli pid ${state.cliPid} did not exit within 180 s; sending SIGKILL (its reaper cleans up)`,
      );
      process.kill(state.cliPid, "SIGKILL");
    }
    await rm(clusterStateFile(), { force: true });
    console.log(`stopped the cluster at ${state.server}`);
    return 0;
  }
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
      return start();
    case "env":
      return env();
    case "stop":
      return stop();
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
