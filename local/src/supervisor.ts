// The supervisor of the local cluster's children: one gateway and the workers, each
// a ManagedProcess (restarted after a crash, ready once its /readyz says so), with
// their lifecycle told in the supervisor's log.
import { fileURLToPath, pathToFileURL } from "node:url";
import type { RestartBackoffOptions } from "./backoff.js";
import { childEntry } from "./child-entry.js";
import type { ClusterLog } from "./cluster-log.js";
import { type LifecycleEvent, ManagedProcess, type ProbeAnswer } from "./managed-process.js";

/**
 * V8 flags of the gateway and worker children (the image sets the same in NODE_OPTIONS).
 * Under load V8 grows the young generation to two 64 MB semi-spaces, which then stay
 * resident; 16 MB ones cut the gateway's peak RSS under load by about 30 % and the
 * workers' by about 25 % (docs/benchmarks.md, "Memory").
 */
export const SERVER_V8_FLAGS: readonly string[] = ["--max-semi-space-size=16"];

/** Addresses (host:port) a child serves on. */
export interface GatewayAddresses {
  readonly grpc: string;
  readonly gossip: string;
  readonly http: string;
}

/** A worker child to run. */
export interface WorkerSpec {
  readonly id: string;
  readonly grpc: string;
  readonly http: string;
}

/** Options of {@link Supervisor}. */
export interface SupervisorOptions {
  /** The repository root: the children's working directory and where their entries are. */
  readonly root: string;
  readonly clusterId: string;
  /** Journal URL passed to the workers. */
  readonly journal: string;
  readonly shardMapFile: string;
  readonly gateway: GatewayAddresses;
  readonly workers: readonly WorkerSpec[];
  /** Extra environment for the children. */
  readonly env?: Readonly<Record<string, string>> | undefined;
  readonly restartBackoff?: RestartBackoffOptions | undefined;
  readonly readyTimeoutMs?: number | undefined;
  readonly stopTimeoutMs?: number | undefined;
  /** Where the children's lines and the lifecycle lines go. */
  readonly log: ClusterLog;
}

/** The gateway and the workers, as supervised processes. */
export class Supervisor {
  readonly gateway: ManagedProcess;
  readonly workers: readonly ManagedProcess[];
  /** The gateway first, then the workers. */
  readonly all: readonly ManagedProcess[];
  readonly #killAll = () => {
    for (const p of this.all) p.killNow();
  };

  constructor(o: SupervisorOptions) {
    const { log } = o;
    const preload = pathToFileURL(
      fileURLToPath(new URL("./parent-watch.ts", import.meta.url)),
    ).href;
    const entries = {
      worker: childEntry(o.root, "worker", preload),
      gateway: childEntry(o.root, "gateway", preload),
    };
    const nodeArgs = (pkg: "worker" | "gateway") => [...SERVER_V8_FLAGS, ...entries[pkg].nodeArgs];
    const bundled = entries.worker.kind === "bundle" && entries.gateway.kind === "bundle";
    log.log(
      "info",
      bundled
        ? "children run the bundles in dist/"
        : `children run the sources through tsx: ${entries.worker.reason ?? entries.gateway.reason}`,
      { children: bundled ? "bundle" : "sources" },
    );
    const clusterArgs = ["--cluster-id", o.clusterId];
    const common = {
      command: process.execPath,
      cwd: o.root,
      env: { ...process.env, ...o.env, BERTH_SUPERVISOR_PID: String(process.pid) },
      ...(o.restartBackoff === undefined ? {} : { backoff: o.restartBackoff }),
      ...(o.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: o.readyTimeoutMs }),
      ...(o.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: o.stopTimeoutMs }),
    };
    const child = (name: string, args: string[], http: string) =>
      new ManagedProcess({
        ...common,
        name,
        args,
        readiness: () => readyz(http),
        onLine: (line, stream) => log.relay(name, line, stream),
        onLifecycle: lifecycleLog(name, log),
      });
    this.gateway = child(
      "gateway",
      [
        ...nodeArgs("gateway"),
        "--grpc",
        o.gateway.grpc,
        "--gossip",
        o.gateway.gossip,
        "--http",
        o.gateway.http,
        "--shard-map-file",
        o.shardMapFile,
        "--node-id",
        "gateway-0",
        ...clusterArgs,
      ],
      o.gateway.http,
    );
    this.workers = o.workers.map((w) =>
      child(
        w.id,
        [
          ...nodeArgs("worker"),
          "--id",
          w.id,
          "--grpc",
          w.grpc,
          "--http",
          w.http,
          "--journal",
          o.journal,
          "--shard-map-file",
          o.shardMapFile,
          "--gossip-peer",
          o.gateway.gossip,
          ...clusterArgs,
        ],
        w.http,
      ),
    );
    this.all = [this.gateway, ...this.workers];
    // Whatever happens to this process, its children go with it.
    process.on("exit", this.#killAll);
  }

  /** Starts every child; resolves once all are ready. */
  async start(): Promise<void> {
    await Promise.all(this.all.map((p) => p.start()));
  }

  /** The worker called `id`. @throws RangeError for an unknown worker */
  worker(id: string): ManagedProcess {
    const w = this.workers.find((p) => p.name === id);
    if (w === undefined) {
      const ids = this.workers.map((p) => p.name).join(", ");
      throw new RangeError(`no worker ${JSON.stringify(id)}; workers are ${ids}`);
    }
    return w;
  }

  /** Process states, as the control endpoint's /processes answers them. */
  processes(): { name: string; pid: number | null; ready: boolean; restarts: number }[] {
    return this.all.map((p) => ({
      name: p.name,
      pid: p.pid ?? null,
      ready: p.ready,
      restarts: p.restarts,
    }));
  }

  /** Stops the gateway, then the workers (SIGTERM, SIGKILL after a bound). */
  async stop(): Promise<void> {
    await this.gateway.stop();
    await Promise.all(this.workers.map((w) => w.stop()));
    process.off("exit", this.#killAll);
  }
}

function lifecycleLog(name: string, { log }: ClusterLog): (e: LifecycleEvent) => void {
  return (e) => {
    switch (e.type) {
      case "exited":
        if (!e.expected) {
          log("warn", `${name} exited`, {
            pid: e.pid,
            code: e.code,
            signal: e.signal,
            uptimeMs: e.uptimeMs,
          });
        }
        return;
      case "restarting":
        log("info", `restarting ${name}`, { delayMs: e.delayMs });
        return;
      case "ready":
        if (e.generation > 1) log("info", `${name} is back`, { pid: e.pid });
        return;
      case "stop-timeout":
        log("warn", `${name} did not stop within ${e.timeoutMs} ms; killing it`, { pid: e.pid });
        return;
      case "started":
        return;
    }
  };
}

/**
 * A process's /readyz: ready on 200 with `{"ready":true}`; otherwise not, with the
 * reason it gives. Rejects when it does not answer (not listening yet).
 */
async function readyz(httpAddress: string): Promise<ProbeAnswer> {
  const res = await fetch(`http://${httpAddress}/readyz`, { signal: AbortSignal.timeout(2000) });
  const body = (await res.json()) as { ready?: unknown; reason?: unknown };
  if (res.status === 200 && body.ready === true) return { ready: true };
  return { ready: false, reason: typeof body.reason === "string" ? body.reason : undefined };
}
