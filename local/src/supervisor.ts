// The supervisor of the local cluster's children: one gateway and the workers, each
// a ManagedProcess (restarted after a crash, ready once its /readyz says so), with
// their lifecycle told in the supervisor's log. Each child writes the addresses it
// listens on to an address file (--address-file); with port 0 (`--port 0`) that is how
// the supervisor learns its ports, so no port is chosen here and handed over later
// (which would race with any other program binding it meanwhile).
import { rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { type ListenAddresses, parseHostPort, readAddressFile } from "@berth/common";
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

/** Addresses (host:port) a child serves on; port 0 asks the child to bind a free one. */
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
  /** Where each child writes its address file, `<name>.addresses.json` (must exist). */
  readonly addressDir: string;
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

/** Addresses of the supervised children: as they reported them once listening. */
export interface SupervisedAddresses {
  readonly gateway: GatewayAddresses;
  /** In the order of {@link SupervisorOptions.workers}. */
  readonly workers: readonly {
    readonly id: string;
    readonly grpc: string;
    readonly http: string;
  }[];
}

/** One child: the addresses it was asked to bind, and those it reported. */
interface Child {
  readonly process: ManagedProcess;
  readonly addressFile: string;
  readonly requested: ListenAddresses;
  /** What it reported the first time; undefined until then. */
  reported: ListenAddresses | undefined;
  /** What the current process (`pid`) reported; reset before each spawn. */
  current: { readonly pid: number; readonly addresses: ListenAddresses } | undefined;
  /** Resolves once it has first reported. */
  readonly whenReported: Promise<void>;
  readonly resolveReported: () => void;
}

/** The gateway and the workers, as supervised processes. */
export class Supervisor {
  readonly gateway: ManagedProcess;
  readonly workers: readonly ManagedProcess[];
  /** The gateway first, then the workers. */
  readonly all: readonly ManagedProcess[];
  readonly #gateway: Child;
  readonly #workers: readonly Child[];
  readonly #workerIds: readonly string[];
  #stopped = false;
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
    const child = (
      name: string,
      requested: ListenAddresses,
      args: (at: ListenAddresses) => string[],
    ): Child => {
      const addressFile = join(o.addressDir, `${name}.addresses.json`);
      let resolveReported = () => {};
      const whenReported = new Promise<void>((resolve) => {
        resolveReported = resolve;
      });
      const c: Child = {
        addressFile,
        requested,
        reported: undefined,
        current: undefined,
        whenReported,
        resolveReported,
        process: new ManagedProcess({
          ...common,
          name,
          // A restarted child gets the ports it reported the first time: the ShardMap's
          // member addresses, the workers' --gossip-peer, the banner and every client
          // already pointed there stay valid, as with fixed ports. (Were the port taken
          // meanwhile, the child exits and is restarted with backoff, as with fixed ports.)
          args: () => [...args(c.reported ?? c.requested), "--address-file", addressFile],
          beforeSpawn: () => {
            c.current = undefined;
            // A file the previous process left must not pass for this one's report.
            try {
              rmSync(addressFile, { force: true });
            } catch (e: unknown) {
              log.log("warn", `could not remove ${name}'s old address file`, {
                file: addressFile,
                error: e instanceof Error ? e.message : String(e),
              });
            }
          },
          readiness: (pid) => probe(c, pid),
          onLine: (line, stream) => log.relay(name, line, stream),
          onLifecycle: lifecycleLog(name, log),
        }),
      };
      return c;
    };
    this.#gateway = child("gateway", o.gateway, (at) => [
      ...nodeArgs("gateway"),
      "--grpc",
      at.grpc,
      "--gossip",
      at.gossip as string,
      "--http",
      at.http,
      "--shard-map-file",
      o.shardMapFile,
      // With port 0 the ShardMap is written only once the workers have reported their
      // addresses: the gateway binds at once and is not ready until the map is there.
      "--shard-map-wait-ms",
      "0",
      "--node-id",
      "gateway-0",
      ...clusterArgs,
    ]);
    this.#workers = o.workers.map((w) =>
      child(w.id, { grpc: w.grpc, http: w.http }, (at) => [
        ...nodeArgs("worker"),
        "--id",
        w.id,
        "--grpc",
        at.grpc,
        "--http",
        at.http,
        "--journal",
        o.journal,
        "--shard-map-file",
        o.shardMapFile,
        "--gossip-peer",
        this.addresses.gateway.gossip,
        ...clusterArgs,
      ]),
    );
    this.#workerIds = o.workers.map((w) => w.id);
    this.gateway = this.#gateway.process;
    this.workers = this.#workers.map((c) => c.process);
    this.all = [this.gateway, ...this.workers];
    // Whatever happens to this process, its children go with it.
    process.on("exit", this.#killAll);
  }

  /**
   * The children's addresses: as reported once they listened (as asked, with a port 0
   * for any not reported yet).
   */
  get addresses(): SupervisedAddresses {
    const at = (c: Child) => c.reported ?? c.requested;
    const gateway = at(this.#gateway);
    return {
      gateway: { grpc: gateway.grpc, gossip: gateway.gossip as string, http: gateway.http },
      workers: this.#workers.map((c, i) => ({
        id: this.#workerIds[i] as string,
        grpc: at(c).grpc,
        http: at(c).http,
      })),
    };
  }

  /**
   * Starts every child; resolves once all are ready. The gateway starts first; when its
   * gossip port is 0, the workers start once it has reported its addresses (they push
   * gossip to it: --gossip-peer). Once the workers have reported theirs, `listening`
   * runs (local-cluster.ts writes the ShardMap with their addresses there), and only
   * then is readiness waited for.
   *
   * @throws ProcessStartError when a child exits, or makes no progress, before it is ready
   */
  async start(listening: () => Promise<void> = async () => {}): Promise<void> {
    // Awaited below; a failure meanwhile must not count as an unhandled rejection.
    const handled = (p: Promise<void>) => {
      p.catch(() => {});
      return p;
    };
    const gateway = handled(this.gateway.start());
    // With a fixed gossip port the workers need not wait for the gateway.
    if (parseHostPort(this.#gateway.requested.gossip as string).port === 0) {
      await reportedOrFailed(this.#gateway, gateway);
    }
    // A stop while the gateway started must not be followed by workers starting.
    if (this.#stopped) throw new Error("the supervisor was stopped during its start");
    const workers = this.#workers.map((c) => ({ c, started: handled(c.process.start()) }));
    await Promise.all([
      reportedOrFailed(this.#gateway, gateway),
      ...workers.map(({ c, started }) => reportedOrFailed(c, started)),
    ]);
    if (this.#stopped) throw new Error("the supervisor was stopped during its start");
    await listening();
    await Promise.all([gateway, ...workers.map((w) => w.started)]);
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
    this.#stopped = true;
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

/** Resolves once `c` has first reported its addresses; rejects when its start fails first. */
function reportedOrFailed(c: Child, started: Promise<void>): Promise<void> {
  return Promise.race([c.whenReported, started]);
}

/**
 * Readiness of a child: first its address file (written by this very process, `pid`,
 * once every listener is bound), then its /readyz at the http address it reported.
 */
async function probe(c: Child, pid: number): Promise<ProbeAnswer> {
  if (c.current?.pid !== pid) {
    let record: Awaited<ReturnType<typeof readAddressFile>>;
    try {
      record = await readAddressFile(c.addressFile);
    } catch (e: unknown) {
      return { ready: false, reason: e instanceof Error ? e.message : String(e) };
    }
    if (record === undefined || record.pid !== pid) {
      return { ready: false, reason: "has not written its address file yet" };
    }
    c.current = { pid, addresses: record.addresses };
    if (c.reported === undefined) {
      c.reported = record.addresses;
      c.resolveReported();
    }
  }
  return readyz(c.current.addresses.http);
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
