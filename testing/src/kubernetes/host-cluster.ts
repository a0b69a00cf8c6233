// Berth's processes on the host against a real kube-apiserver: operators, workers in
// Kubernetes mode and a gateway, each a child process running the sources, each with
// its own kubeconfig. Readiness is read from each process's /readyz (never from its
// logs); output goes to one log file per process, kept for a failed test to show.
import { type ChildProcess, spawn } from "node:child_process";
import { createWriteStream, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { freePorts } from "./control-plane.js";

const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const PARENT_WATCH = pathToFileURL(resolve(REPO_ROOT, "local/src/parent-watch.ts")).href;

/** One child process of the test. */
export class HostProcess {
  readonly name: string;
  readonly logFile: string;
  readonly http: string;
  #child: ChildProcess | undefined;
  #exited: Promise<number | null> | undefined;
  readonly #args: readonly string[];
  readonly #entry: string;
  readonly #env: NodeJS.ProcessEnv;

  /** @param env added to (and overriding) the environment, e.g. `{ BERTH_LOG_LEVEL: "debug" }` */
  constructor(
    name: string,
    entry: string,
    args: readonly string[],
    logDir: string,
    http: string,
    env: NodeJS.ProcessEnv = {},
  ) {
    this.name = name;
    this.#entry = entry;
    this.#args = args;
    this.#env = env;
    this.http = http;
    mkdirSync(logDir, { recursive: true });
    this.logFile = resolve(logDir, `${name}.log`);
  }

  /** Starts (or restarts) the process; resolves once it is spawned. */
  start(): void {
    const out = createWriteStream(this.logFile, { flags: "a" });
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "--import", PARENT_WATCH, resolve(REPO_ROOT, this.#entry), ...this.#args],
      {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          BERTH_SUPERVISOR_PID: String(process.pid),
          BERTH_LOG_LEVEL: "info",
          ...this.#env,
        },
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    child.stdout?.pipe(out);
    child.stderr?.pipe(out);
    this.#child = child;
    this.#exited = new Promise((r) => child.once("exit", (code) => r(code)));
  }

  get pid(): number | undefined {
    return this.#child?.exitCode === null ? this.#child.pid : undefined;
  }

  /** /readyz answers 200. */
  async ready(): Promise<boolean> {
    try {
      const r = await fetch(`http://${this.http}/readyz`, { signal: AbortSignal.timeout(2_000) });
      return r.status === 200;
    } catch {
      return false;
    }
  }

  /** The text of /metrics. */
  async metrics(): Promise<string> {
    const r = await fetch(`http://${this.http}/metrics`, { signal: AbortSignal.timeout(5_000) });
    return r.text();
  }

  /** Sends a signal; resolves with the exit code once it exited (SIGKILL after `timeoutMs`). */
  async stop(signal: NodeJS.Signals = "SIGTERM", timeoutMs = 30_000): Promise<number | null> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) {
      return child?.exitCode ?? null;
    }
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    const code = await this.#exited;
    clearTimeout(timer);
    return code ?? null;
  }

  /** The last lines of its output, for a failure message. */
  tail(lines = 30): string {
    try {
      return readFileSync(this.logFile, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
    } catch {
      return "(no output)";
    }
  }
}

/** Free loopback host:port addresses. */
export async function loopbackAddresses(n: number): Promise<string[]> {
  return (await freePorts(n)).map((p) => `127.0.0.1:${p}`);
}

/** Polls `check` every 50 ms until it is true; fails after `timeoutMs` with `what`. */
export async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
  explain?: () => string | Promise<string>,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      const why = explain === undefined ? "" : `\n${await explain()}`;
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${why}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Options of {@link startBerthOnHost}. */
export interface BerthOnHostOptions {
  /** A running control plane whose CRDs are installed. */
  readonly kubectl: (
    args: readonly string[],
  ) => Promise<{ code: number; stdout: string; stderr: string }>;
  /** Kubeconfig of each component (least-privilege tests give each its own). */
  readonly kubeconfigs: {
    readonly operator: (id: string) => string;
    readonly worker: (id: string) => string;
    readonly gateway: string;
  };
  readonly dir: string;
  readonly namespace: string;
  readonly clusterId: string;
  readonly shards: number;
  readonly workers?: number;
  readonly operators?: number;
  readonly quorum?: number;
  /** Worker Lease timing. Default 3000 / 500 ms. */
  readonly leaseDurationMs?: number;
  readonly leaseRenewMs?: number;
  /** Worker --hand-off-timeout-ms. Default 20000. */
  readonly handOffTimeoutMs?: number;
}

/** Berth's processes on the host: operators, workers in Kubernetes mode, one gateway. */
export interface BerthOnHost {
  readonly workers: readonly HostProcess[];
  readonly operators: readonly HostProcess[];
  readonly gateway: HostProcess;
  /** host:port of the gateway's public gRPC. */
  readonly gatewayAddress: string;
  /** The ShardMap's status (empty before the operator created it). */
  shardMap(): Promise<ShardMapView>;
  /** Owner per shard, from the ShardMap. */
  owners(): Promise<Map<number, string>>;
  /** Last lines of every process's output, for failure messages. */
  explain(): Promise<string>;
  stop(): Promise<void>;
}

/** What tests read of the ShardMap resource. */
export interface ShardMapView {
  readonly status?: {
    readonly revision?: number;
    readonly liveMembers?: number;
    readonly quorum?: number;
    readonly shards?: readonly { shard: number; owner: string; epoch: number; state: string }[];
    readonly conditions?: readonly { type: string; status: string; reason: string }[];
  };
}

/**
 * Starts (without waiting) every process, then waits until all shards are served by
 * live workers and the gateway is ready.
 */
export async function startBerthOnHost(o: BerthOnHostOptions): Promise<BerthOnHost> {
  const nWorkers = o.workers ?? 3;
  const nOperators = o.operators ?? 2;
  const journal = `sqlite://${resolve(o.dir, "journal.db")}`;
  const logs = resolve(o.dir, "logs");
  const addresses = await loopbackAddresses(nWorkers * 2 + nOperators + 3);
  const take = () => addresses.shift() as string;
  const workers: HostProcess[] = [];
  for (let i = 0; i < nWorkers; i++) {
    const id = `worker-${i}`;
    const [grpc, http] = [take(), take()];
    workers.push(
      new HostProcess(
        id,
        "worker/src/main.ts",
        [
          ...["--id", id, "--grpc", grpc, "--http", http, "--journal", journal],
          ...[
            "--shard-map-resource",
            `${o.namespace}/berth`,
            "--kubeconfig",
            o.kubeconfigs.worker(id),
          ],
          ...[
            "--cluster-id",
            o.clusterId,
            "--hand-off-timeout-ms",
            String(o.handOffTimeoutMs ?? 20_000),
          ],
          ...["--lease-duration-ms", String(o.leaseDurationMs ?? 3_000)],
          ...["--lease-renew-ms", String(o.leaseRenewMs ?? 500)],
        ],
        logs,
        http,
      ),
    );
  }
  const operators: HostProcess[] = [];
  for (let i = 0; i < nOperators; i++) {
    const id = `operator-${String.fromCharCode(97 + i)}`;
    const http = take();
    operators.push(
      new HostProcess(
        id,
        "operator/src/main.ts",
        [
          ...["--namespace", o.namespace, "--shards", String(o.shards)],
          ...["--quorum", String(o.quorum ?? Math.floor(nWorkers / 2) + 1)],
          ...[
            "--identity",
            id,
            "--cluster-id",
            o.clusterId,
            "--kubeconfig",
            o.kubeconfigs.operator(id),
          ],
          ...["--http", http, "--lease-duration-ms", "4000", "--renew-deadline-ms", "3000"],
          ...[
            "--retry-period-ms",
            "500",
            "--membership-stable-ms",
            String((o.leaseRenewMs ?? 500) * 2),
          ],
        ],
        logs,
        http,
      ),
    );
  }
  const [grpc, gossip, http] = [take(), take(), take()];
  const gateway = new HostProcess(
    "gateway",
    "gateway/src/main.ts",
    [
      ...["--shard-map-resource", `${o.namespace}/berth`, "--kubeconfig", o.kubeconfigs.gateway],
      ...["--grpc", grpc, "--gossip", gossip, "--http", http, "--cluster-id", o.clusterId],
      ...["--gossip-pull-ms", "200", "--shard-map-wait-ms", "0"],
    ],
    logs,
    http,
  );
  const all = [...operators, ...workers, gateway];
  const shardMap = async (): Promise<ShardMapView> => {
    const r = await o.kubectl(["get", "shardmap", "berth", "-n", o.namespace, "-o", "json"]);
    return r.code === 0 ? (JSON.parse(r.stdout) as ShardMapView) : {};
  };
  const explain = async () =>
    [
      `shardmap: ${JSON.stringify((await shardMap()).status ?? {}).slice(0, 1_500)}`,
      ...all.map((p) => `--- ${p.name}\n${p.tail(12)}`),
    ].join("\n");
  const stack: BerthOnHost = {
    workers,
    operators,
    gateway,
    gatewayAddress: grpc,
    shardMap,
    async owners() {
      const m = await shardMap();
      return new Map((m.status?.shards ?? []).map((s) => [s.shard, s.owner]));
    },
    explain,
    async stop() {
      await Promise.all(all.map((p) => p.stop("SIGTERM", 10_000)));
    },
  };
  for (const p of all) p.start();
  try {
    await until(
      "every shard served by a live worker and the gateway ready",
      async () => {
        const m = await shardMap();
        const active = m.status?.shards?.filter((s) => s.owner !== "" && s.state === "Active");
        const settled = m.status?.conditions?.some(
          (c) => c.type === "Progressing" && c.status === "False",
        );
        return (
          active?.length === o.shards &&
          settled === true &&
          m.status?.liveMembers === nWorkers &&
          (await gateway.ready())
        );
      },
      120_000,
      explain,
    );
  } catch (e: unknown) {
    await stack.stop();
    throw e;
  }
  return stack;
}

/** Installs the chart's CRDs and waits until kube-apiserver serves them. */
export async function installCrds(cp: {
  kubectl(args: readonly string[]): Promise<{ code: number; stderr: string }>;
}): Promise<void> {
  for (const args of [
    ["apply", "-f", resolve(REPO_ROOT, "charts/berth/crds")],
    [
      "wait",
      "--for=condition=Established",
      "crd/capacitypools.berth.dev",
      "crd/shardmaps.berth.dev",
      "--timeout=60s",
    ],
  ]) {
    const r = await cp.kubectl(args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(" ")}: ${r.stderr}`);
  }
}

let listSeq = 0;
/** `kubectl apply` of objects (as one List, written under `dir`). */
export async function applyList(
  cp: { kubectl(args: readonly string[]): Promise<{ code: number; stderr: string }> },
  dir: string,
  items: readonly object[],
): Promise<void> {
  const file = resolve(dir, `objects-${listSeq++}.json`);
  writeFileSync(file, JSON.stringify({ apiVersion: "v1", kind: "List", items }));
  const r = await cp.kubectl(["apply", "-f", file]);
  if (r.code !== 0) throw new Error(`kubectl apply -f ${file}: ${r.stderr}`);
}
