// Local mode: a gateway and N workers as supervised child processes on this
// machine, a SQLite journal and a ShardMap file in a data directory, and pools
// configured from CapacityPool manifests. `npm start` is a thin wrapper over
// startLocalCluster; the acceptance tests and the benchmark use it directly. What the
// children are up to comes from their typed channels (/readyz, each worker's
// WatchShards stream), never from their logs, which are only relayed.

import { createWriteStream, existsSync, type WriteStream } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { isAbsolute, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { clusterClientOptions, digestedSpecOf, SpecDigest, writeShardMapFile } from "@berth/common";
import { Router } from "@berth/gateway";
import { internal, poolIdProblem, StaticShardMapSource, shardOf } from "@berth/proto";
import { ConnectingJournal, openJournal } from "@berth/worker";
import type { RestartBackoffOptions } from "./backoff.js";
import { banner } from "./banner.js";
import { childEntry } from "./child-entry.js";
import { type ControlServer, startControlServer } from "./control-server.js";
import { clusterIdOf, type DataDirLockInfo, lockDataDir } from "./data-dir.js";
import { formatLogLine, type LogFormat } from "./log-format.js";
import { type LifecycleEvent, ManagedProcess, type ProbeAnswer } from "./managed-process.js";
import { ManifestCache } from "./manifest-cache.js";
import type { PoolManifest } from "./manifests/index.js";
import { applyPools, changedSpecs, describeApplied, specKey, watchManifests } from "./pool-sync.js";
import {
  allocateFreePorts,
  type ClusterPorts,
  checkPortsAvailable,
  DEFAULT_GATEWAY_PORT,
  derivePorts,
  labelPorts,
} from "./ports.js";
import {
  drainShardInMap,
  manualMoves,
  moveShardInMap,
  planLocalShardMap,
  shardsPerMember,
} from "./shard-map-ops.js";
import { ShardWatch } from "./shard-watch.js";

/**
 * V8 flags of the gateway and worker children (the image sets the same in NODE_OPTIONS).
 * Under load V8 grows the young generation to two 64 MB semi-spaces, which then stay
 * resident; 16 MB ones cut the gateway's peak RSS under load by about 30 % and the
 * workers' by about 25 % (docs/benchmarks.md, "Memory").
 */
export const SERVER_V8_FLAGS: readonly string[] = ["--max-semi-space-size=16"];

/** The repository root (where `worker/`, `gateway/` and `examples/` live). */
export const REPO_ROOT: string = fileURLToPath(new URL("../../", import.meta.url));

/** Options of {@link startLocalCluster}; every field has a default. */
export interface LocalClusterOptions {
  /** Worker processes. Default 3. */
  readonly workers?: number;
  /** Journal, shard map and logs. Default `<repo>/.berth`. */
  readonly dataDir?: string;
  /** Manifest files or directories of `*.yaml`. Default `[<repo>/examples/pools.yaml]`. */
  readonly pools?: readonly string[];
  /** Gateway gRPC port; other ports derive from it. 0: free ports for everything. Default 50051. */
  readonly port?: number;
  /** Control server port. Default derived from `port` (9099), or free with `port: 0`. */
  readonly controlPort?: number;
  /** Shard count, fixed for a data directory. Default 256. */
  readonly shards?: number;
  /** `sqlite` (`<dataDir>/journal.db`) or a journal URL passed to workers as is. Default `sqlite`. */
  readonly journal?: string;
  /** Where relayed log lines go (already formatted). Default: nowhere (files only). */
  readonly logOutput?: (line: string) => void;
  /** Format of relayed lines. Default `pretty`. */
  readonly logFormat?: LogFormat;
  /** ANSI colours in pretty lines. Default false. */
  readonly logColor?: boolean;
  /** Re-apply manifests when they change. Default false (main.ts turns it on). */
  readonly watch?: boolean;
  /** Restart backoff of crashed processes. Default 1 s doubling to 30 s, reset after 10 s up. */
  readonly restartBackoff?: RestartBackoffOptions;
  /** How long a process may take to become ready. Default 60 s. */
  readonly readyTimeoutMs?: number;
  /** How long stop waits after SIGTERM before SIGKILL. Default 5 s. */
  readonly stopTimeoutMs?: number;
  /** Extra environment for the children (e.g. BERTH_LOG_LEVEL). */
  readonly env?: Readonly<Record<string, string>>;
  /**
   * Aborts the start at whatever phase it is in (waiting for the journal, for the
   * processes, configuring pools): everything started is stopped, the data directory
   * is unlocked, and the start rejects with {@link LocalStartAbortedError}.
   */
  readonly signal?: AbortSignal;
  /** Least time between two "waiting for the journal" lines. Default 5,000 ms. */
  readonly journalProgressIntervalMs?: number;
}

/** Thrown when {@link LocalClusterOptions.signal} aborted a start; nothing is left running. */
export class LocalStartAbortedError extends Error {
  override readonly name = "LocalStartAbortedError";
  constructor() {
    super("the start was interrupted; everything started was stopped");
  }
}

/** A worker of a local cluster. `pid` changes when it is restarted. */
export interface LocalWorker {
  readonly id: string;
  readonly grpcAddress: string;
  readonly httpAddress: string;
  /** Current pid; undefined while it is down between a crash and its restart. */
  readonly pid: number | undefined;
  /** Restarts after crashes so far. */
  readonly restarts: number;
}

/** Answer of {@link LocalCluster.moveShard}. */
export interface ShardMove {
  readonly shard: number;
  readonly from: string;
  readonly to: string;
  readonly epoch: number;
  readonly revision: number;
  /** False when `to` already owned the shard (nothing was written). */
  readonly changed: boolean;
}

/** A running local cluster. */
export interface LocalCluster {
  /** host:port of the gateway's public gRPC API (berth.v1.CapacityService). */
  readonly gatewayAddress: string;
  readonly gatewayHttpAddress: string;
  readonly gatewayPid: number | undefined;
  readonly workers: readonly LocalWorker[];
  /** host:port of the control HTTP server. */
  readonly controlAddress: string;
  readonly dataDir: string;
  /** The id every internal call of this cluster carries (`<dataDir>/cluster-id`). */
  readonly clusterId: string;
  readonly shardMapFile: string;
  readonly journal: string;
  /** Pool ids configured from the manifests, in manifest order. */
  readonly pools: readonly string[];
  /** The ShardMap now in force. */
  shardMap(): internal.ShardMap;
  /**
   * Moves a shard to another worker, the way the operator hands one off: while its
   * owner is up, first a map marking it DRAINING (same owner, same epoch), and once
   * the owner reports it DRAINED (in-flight appends finished; at most 5 s, after which
   * the new epoch fences the owner instead), a map with the new owner at epoch + 1.
   * An owner that is down is not waited for. Resolves once the new owner reports
   * SERVING at the new epoch. The gateway follows the map file on its own; a call it
   * still routes by an older map is answered NOT_OWNER and retried by the new one.
   *
   * @throws ShardMoveError for an unknown shard or worker
   * @throws Error when the new owner does not serve the shard within 30 s (the map stays moved)
   */
  moveShard(shard: number, to: string): Promise<ShardMove>;
  /** Sends a signal to a worker (SIGKILL: a crash). The supervisor restarts it. */
  killWorker(id: string, signal?: NodeJS.Signals): void;
  /** Resolves with the new pid once the worker is back after its last exit or kill. */
  waitForWorkerRestart(id: string, timeoutMs?: number): Promise<number>;
  /** Re-reads the manifests and configures new or changed pools. */
  reloadPools(): Promise<void>;
  /** The banner `npm start` prints. */
  banner(): string;
  /** Stops the gateway, then the workers (SIGTERM, SIGKILL after a bound). Idempotent. */
  stop(): Promise<void>;
}

const CONFIGURE_DEADLINE_MS = 30_000;
/**
 * Configures in flight at once. Each new pool costs its owner a fence, a load and an
 * append: with many in flight those of all pools share the journal's group commits.
 */
const CONFIGURE_CONCURRENCY = 256;
const MOVE_TIMEOUT_MS = 30_000;
/** Longest wait for an owner to report a DRAINING shard drained before it is moved anyway. */
const DRAIN_TIMEOUT_MS = 5000;
/** Longest wait, once every worker is ready, for each to report on its WatchShards stream. */
const FIRST_REPORT_TIMEOUT_MS = 30_000;
/** Longest wait, at start, for every shard's owner to report it serving (specs in force). */
const IN_FORCE_WAIT_MS = 10_000;
/** In the data directory: the manifests as last parsed (see manifest-cache.ts). */
const MANIFEST_CACHE_FILE = "manifest-cache.json";

/**
 * Starts a local cluster and configures its pools.
 *
 * @throws ManifestError when a manifest is invalid (before any process starts)
 * @throws DataDirLockedError when another running cluster holds the data directory
 * @throws PortUnavailableError when a port is taken (before any process starts)
 * @throws LocalStartAbortedError when `signal` aborted the start
 * @throws ProcessStartError when a worker or the gateway does not come up (everything
 *   started is stopped first)
 */
export async function startLocalCluster(options: LocalClusterOptions = {}): Promise<LocalCluster> {
  const workerCount = options.workers ?? 3;
  const dataDir = resolve(options.dataDir ?? resolve(REPO_ROOT, ".berth"));
  const manifestPaths = options.pools ?? [resolve(REPO_ROOT, "examples/pools.yaml")];
  const shardCount = options.shards ?? 256;
  const journal =
    (options.journal ?? "sqlite") === "sqlite"
      ? `sqlite://${resolve(dataDir, "journal.db")}`
      : (options.journal as string);
  const shardMapFile = resolve(dataDir, "shard-map.json");
  const logDir = resolve(dataDir, "logs");
  const logFormat = options.logFormat ?? "pretty";
  const port = options.port ?? DEFAULT_GATEWAY_PORT;

  const signal = options.signal;
  const orAbort = <T>(p: Promise<T>): Promise<T> => {
    if (signal === undefined) return p;
    return new Promise<T>((resolvePromise, reject) => {
      const onAbort = () => reject(new LocalStartAbortedError());
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      p.then(
        (v) => {
          signal.removeEventListener("abort", onAbort);
          resolvePromise(v);
        },
        (e: unknown) => {
          signal.removeEventListener("abort", onAbort);
          reject(e);
        },
      );
    });
  };

  // Manifests first: a typo should fail before anything starts. Files unchanged since
  // the last run on this data directory are not parsed again (manifest-cache.ts).
  const manifestCache = await ManifestCache.open(resolve(dataDir, MANIFEST_CACHE_FILE));
  const manifests = await manifestCache.load(manifestPaths);
  const ports: ClusterPorts =
    port === 0 ? await allocateFreePorts(workerCount) : derivePorts(port, workerCount);
  // The lock before anything is written: a second start on this data directory must
  // not touch the ShardMap the running cluster follows.
  let stale: { previous: DataDirLockInfo | undefined; file: string } | undefined;
  const lock = await lockDataDir(dataDir, (previous, file) => {
    stale = { previous, file };
  });
  const releaseLockOnExit = () => lock.releaseSync();
  process.on("exit", releaseLockOnExit);
  const unlock = async () => {
    process.off("exit", releaseLockOnExit);
    await lock.release();
  };
  try {
    if (signal?.aborted) throw new LocalStartAbortedError();
    await checkPortsAvailable(labelPorts(ports, port, options.controlPort !== undefined));
    if (options.controlPort !== undefined && options.controlPort !== 0) {
      await checkPortsAvailable([
        { port: options.controlPort, what: "control endpoint (--control-port)" },
      ]);
    }
    await mkdir(logDir, { recursive: true });
  } catch (e: unknown) {
    await unlock();
    throw e;
  }
  const host = "127.0.0.1";
  const at = (p: number) => `${host}:${p}`;
  const workerIds = Array.from({ length: workerCount }, (_, i) => `worker-${i}`);
  const members = workerIds.map((id, i) => ({
    id,
    address: at((ports.workers[i] as ClusterPorts["workers"][number]).grpc),
  }));

  // Logs: every line to <dataDir>/logs/<name>.log; formatted to logOutput if given.
  const files = new Map<string, WriteStream>();
  const nameWidth = Math.max("gateway".length, ...workerIds.map((id) => id.length), "berth".length);
  // Waits on what the workers report (their WatchShards streams), checked at each report.
  const convergence = new Set<() => void>();
  const converged = () => {
    for (const check of [...convergence]) check();
  };
  const waitFor = (what: string, done: () => boolean, timeoutMs: number) =>
    new Promise<void>((resolvePromise, reject) => {
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        convergence.delete(check);
        resolvePromise();
      };
      const timer = setTimeout(() => {
        convergence.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting until ${what}`));
      }, timeoutMs);
      convergence.add(check);
      check();
    });
  const relay = (name: string, line: string, stream: "stdout" | "stderr") => {
    let file = files.get(name);
    if (file === undefined) {
      file = createWriteStream(resolve(logDir, `${name}.log`), { flags: "a" });
      files.set(name, file);
    }
    file.write(`${line}\n`);
    options.logOutput?.(
      formatLogLine(name, line, {
        format: logFormat,
        nameWidth,
        color: options.logColor ?? false,
        stream,
      }),
    );
  };
  const log = (level: "info" | "warn" | "error", msg: string, fields: object = {}) =>
    relay(
      "berth",
      JSON.stringify({ level, time: new Date().toISOString(), msg, ...fields }),
      level === "info" ? "stdout" : "stderr",
    );

  if (stale !== undefined) {
    log("warn", "took over a stale lock of a cluster that is no longer running", {
      file: stale.file,
      ...(stale.previous === undefined ? {} : { pid: stale.previous.pid }),
    });
  }
  let clusterId: string;
  let previous: internal.ShardMap | undefined;
  let map: internal.ShardMap;
  try {
    const cid = await clusterIdOf(dataDir);
    clusterId = cid.id;
    if (cid.created) log("info", "new cluster id for this data directory", { clusterId });
    // The ShardMap: the previous run's when the workers are the same (manual moves are
    // kept), else planned afresh; epochs continue either way.
    previous = await readPreviousMap(shardMapFile);
    map = planLocalShardMap({ members, shardCount, previous, previousPath: shardMapFile });
    await lock.update({
      gateway: at(ports.gateway.grpc),
      control: at(options.controlPort ?? ports.control),
    });
    await writeShardMapFile(shardMapFile, map);
  } catch (e: unknown) {
    await unlock();
    throw e;
  }
  const kept = manualMoves(map);
  if (previous !== undefined && kept > 0) {
    log("info", `kept ${kept} manual shard ${kept === 1 ? "move" : "moves"} of the previous run`, {
      moves: kept,
    });
  } else if (previous !== undefined && manualMoves(previous) > 0) {
    const n = manualMoves(previous);
    log(
      "warn",
      `the workers changed (${previous.members.length} → ${members.length}): shards were planned afresh and ${n} manual shard ${n === 1 ? "move" : "moves"} of the previous run ${n === 1 ? "is" : "are"} not kept`,
      { moves: n },
    );
  }
  const source = new StaticShardMapSource(map);
  log("info", "ShardMap written", {
    file: shardMapFile,
    revision: map.revision,
    shards: shardCount,
    quorum: map.quorum,
  });

  const childEnv = {
    ...process.env,
    ...options.env,
    BERTH_SUPERVISOR_PID: String(process.pid),
  };
  const clusterArgs = ["--cluster-id", clusterId];
  const preload = pathToFileURL(fileURLToPath(new URL("./parent-watch.ts", import.meta.url))).href;
  const entries = {
    worker: childEntry(REPO_ROOT, "worker", preload),
    gateway: childEntry(REPO_ROOT, "gateway", preload),
  };
  const nodeArgs = (pkg: "worker" | "gateway") => [...SERVER_V8_FLAGS, ...entries[pkg].nodeArgs];
  const bundled = entries.worker.kind === "bundle" && entries.gateway.kind === "bundle";
  log(
    "info",
    bundled
      ? "children run the bundles in dist/"
      : `children run the sources through tsx: ${entries.worker.reason ?? entries.gateway.reason}`,
    { children: bundled ? "bundle" : "sources" },
  );
  const lifecycle = (name: string) => (e: LifecycleEvent) => {
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
  const common = {
    command: process.execPath,
    cwd: REPO_ROOT,
    env: childEnv,
    ...(options.restartBackoff === undefined ? {} : { backoff: options.restartBackoff }),
    ...(options.readyTimeoutMs === undefined ? {} : { readyTimeoutMs: options.readyTimeoutMs }),
    ...(options.stopTimeoutMs === undefined ? {} : { stopTimeoutMs: options.stopTimeoutMs }),
  };
  const gatewayAddresses = {
    grpc: at(ports.gateway.grpc),
    gossip: at(ports.gateway.gossip),
    http: at(ports.gateway.http),
  };
  const gateway = new ManagedProcess({
    ...common,
    name: "gateway",
    args: [
      ...nodeArgs("gateway"),
      "--grpc",
      gatewayAddresses.grpc,
      "--gossip",
      gatewayAddresses.gossip,
      "--http",
      gatewayAddresses.http,
      "--shard-map-file",
      shardMapFile,
      "--node-id",
      "gateway-0",
      ...clusterArgs,
    ],
    readiness: () => readyz(gatewayAddresses.http),
    onLine: (line, stream) => relay("gateway", line, stream),
    onLifecycle: lifecycle("gateway"),
  });
  const workerProcs = workerIds.map((id, i) => {
    const p = ports.workers[i] as ClusterPorts["workers"][number];
    return new ManagedProcess({
      ...common,
      name: id,
      args: [
        ...nodeArgs("worker"),
        "--id",
        id,
        "--grpc",
        at(p.grpc),
        "--http",
        at(p.http),
        "--journal",
        journal,
        "--shard-map-file",
        shardMapFile,
        "--gossip-peer",
        gatewayAddresses.gossip,
        ...clusterArgs,
      ],
      readiness: () => readyz(at(p.http)),
      onLine: (line, stream) => relay(id, line, stream),
      onLifecycle: lifecycle(id),
    });
  });
  const all = [gateway, ...workerProcs];
  // What each worker holds, from its WatchShards stream (reconnected across restarts).
  const watches = new Map(
    members.map((m) => [
      m.id,
      new ShardWatch({
        address: m.address,
        clusterId,
        onChange: converged,
        onFailure: (s) =>
          log("warn", `watching ${m.id}'s shards failed; retrying`, {
            code: s.code,
            details: s.details,
          }),
      }),
    ]),
  );
  const reportOf = (id: string, shard: number) => watches.get(id)?.report(shard);
  // Whatever happens to this process, its children go with it.
  const killAll = () => {
    for (const p of all) p.killNow();
  };
  process.on("exit", killAll);

  let router: Router | undefined;
  let control: ControlServer | undefined;
  let watcher: { close(): void } | undefined;
  let stopping: Promise<void> | undefined;
  const closeFiles = () =>
    Promise.all([...files.values()].map((f) => new Promise<void>((done) => f.end(() => done()))));
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      watcher?.close();
      router?.close();
      for (const w of watches.values()) w.close();
      await control?.close();
      log("info", "stopping the gateway and the workers");
      await gateway.stop();
      await Promise.all(workerProcs.map((w) => w.stop()));
      source.close();
      log("info", "stopped");
      process.off("exit", killAll);
      await unlock();
      await closeFiles();
    })();
    return stopping;
  };

  /** Best effort: without the cache the next start only parses the manifests again. */
  const saveManifestCache = () =>
    manifestCache.save().catch((e: unknown) =>
      log("warn", "could not save the parsed manifests; the next start parses them again", {
        error: e instanceof Error ? e.message : String(e),
      }),
    );
  const applied = new Map<string, string>();
  let manifestOrder: string[] = manifests.map((m) => m.spec.pool);
  const configureAll = async (list: readonly PoolManifest[], initial: boolean) => {
    let specs = changedSpecs(list, applied);
    if (specs.length === 0) return;
    // At start, the workers say which specs their serving shards hold in force: the
    // pools of a shard whose digest equals that of its manifests need no Configure.
    let inForce = 0;
    if (initial) {
      const skip = await specsInForce(specs);
      inForce = skip.size;
      for (const spec of specs) if (skip.has(spec)) applied.set(spec.pool, specKey(spec));
      specs = specs.filter((spec) => !skip.has(spec));
    }
    const r = router as Router;
    const result = await applyPools(
      specs,
      (spec) =>
        r.call(
          "configure",
          spec.pool,
          spec,
          Date.now() + CONFIGURE_DEADLINE_MS,
          initial && signal !== undefined ? { signal } : {},
        ),
      CONFIGURE_CONCURRENCY,
    );
    const failed = new Set(result.failures.map((f) => f.pool));
    for (const spec of specs) if (!failed.has(spec.pool)) applied.set(spec.pool, specKey(spec));
    if (result.failures.length === 0 && inForce > 0) {
      log("info", `${inForce} pools already in force on their owners; no Configure sent for them`, {
        inForce,
      });
    }
    if (result.failures.length > 0) {
      const first = result.failures.slice(0, 5).map((f) => `${f.pool}: ${f.error}`);
      const message = `${result.failures.length} of ${specs.length} pools could not be configured:\n  ${first.join("\n  ")}`;
      if (initial) throw new Error(message);
      log("error", message);
    }
    const total = { ...result, configured: result.configured + inForce };
    log("info", describeApplied(total), {
      configured: total.configured,
      created: total.created,
      updated: total.updated,
      unchanged: total.configured - total.created - total.updated,
    });
  };
  /**
   * The specs (of `specs`) whose shard's owner, serving it at the map's epoch, reports
   * exactly these specs in force for the shard's pools (and no other pool). Waits a
   * little for every owner to report its shards SERVING; a shard it does not report so
   * (or with another digest) is configured pool by pool as before.
   */
  const specsInForce = async (
    specs: readonly internal.PoolSpec[],
  ): Promise<Set<internal.PoolSpec>> => {
    const serving = (shard: number) => {
      const a = map.shards[shard];
      const r = a === undefined ? undefined : reportOf(a.owner, shard);
      return a !== undefined &&
        r !== undefined &&
        r.epoch === a.epoch &&
        r.state === internal.ShardReportState.SHARD_REPORT_STATE_SERVING
        ? r
        : undefined;
    };
    try {
      await waitFor(
        "every shard's owner reports it serving",
        () => map.shards.every((a) => a.owner === "" || serving(a.shard) !== undefined),
        IN_FORCE_WAIT_MS,
      );
    } catch {
      // Whatever is not reported serving by now is configured pool by pool.
    }
    const byShard = new Map<number, internal.PoolSpec[]>();
    for (const spec of specs) {
      const shard = shardOf(spec.pool, map.shardCount);
      const list = byShard.get(shard);
      if (list === undefined) byShard.set(shard, [spec]);
      else list.push(spec);
    }
    const skip = new Set<internal.PoolSpec>();
    for (const [shard, list] of byShard) {
      const reported = serving(shard)?.specDigest ?? "";
      if (reported === "") continue;
      const digest = new SpecDigest();
      let retires = false;
      for (const spec of list) {
        const d = digestedSpecOf(spec);
        if (d === undefined) retires = true;
        else digest.add(spec.pool, d);
      }
      if (!retires && digest.toString() === reported) for (const spec of list) skip.add(spec);
    }
    return skip;
  };

  try {
    if (/^cassandra:/i.test(journal)) {
      await orAbort(
        waitForJournal(journal, log, options.journalProgressIntervalMs ?? 5000, signal),
      );
    }
    if (signal?.aborted) throw new LocalStartAbortedError();
    log("info", `starting the gateway and ${workerCount} workers`, { dataDir, journal, clusterId });
    // While the processes start: remember the parsed manifests for the next run.
    const cacheSaved = saveManifestCache();
    await orAbort(Promise.all(all.map((p) => p.start())));
    await cacheSaved;
    await orAbort(
      waitFor(
        "every worker reports its shards",
        () => [...watches.values()].every((w) => w.latest !== undefined),
        FIRST_REPORT_TIMEOUT_MS,
      ),
    );
    router = new Router({ source, channelOptions: clusterClientOptions(clusterId) });
    await orAbort(configureAll(manifests, true));
    if (signal?.aborted) throw new LocalStartAbortedError();
  } catch (e: unknown) {
    await stop();
    throw signal?.aborted ? new LocalStartAbortedError() : e;
  }

  const publish = async (next: internal.ShardMap) => {
    await writeShardMapFile(shardMapFile, next);
    map = next;
    source.set(next);
  };
  /** Marks `shard` DRAINING and waits (bounded) until its owner `from` reports it drained. */
  const drain = async (shard: number, from: string, to: string) => {
    const draining = drainShardInMap(map, shard);
    const epoch = draining.shards[shard]?.epoch ?? 0;
    await publish(draining);
    log("info", `draining shard ${shard} on ${from} before moving it to ${to}`, {
      shard,
      epoch,
      revision: draining.revision,
    });
    const { SHARD_REPORT_STATE_DRAINED } = internal.ShardReportState;
    await waitFor(
      `${from} reports shard ${shard} drained at epoch ${epoch}`,
      () => {
        const r = reportOf(from, shard);
        // A worker that went away has nothing in flight any more.
        const gone = watches.get(from)?.latest === undefined;
        return gone || (r?.state === SHARD_REPORT_STATE_DRAINED && r.epoch === epoch);
      },
      DRAIN_TIMEOUT_MS,
    ).catch(() =>
      log(
        "warn",
        `${from} did not report shard ${shard} drained within ${DRAIN_TIMEOUT_MS} ms; moving it anyway (the new epoch fences ${from})`,
        { shard, epoch },
      ),
    );
  };
  let moves = Promise.resolve();
  const moveShard = (shard: number, to: string): Promise<ShardMove> => {
    const run = moves.then(async (): Promise<ShardMove> => {
      const from = map.shards[shard]?.owner ?? "";
      // Checks the shard and the worker before anything is published.
      const changed = moveShardInMap(map, shard, to) !== map;
      if (changed) {
        if (from !== "" && watches.get(from)?.latest !== undefined) await drain(shard, from, to);
        const next = moveShardInMap(map, shard, to);
        await publish(next);
        const epoch = next.shards[shard]?.epoch ?? 0;
        log("info", `moving shard ${shard} from ${from} to ${to}`, {
          shard,
          epoch,
          revision: next.revision,
        });
        const { SHARD_REPORT_STATE_SERVING } = internal.ShardReportState;
        await waitFor(
          `${to} serves shard ${shard} at epoch ${epoch}`,
          () => {
            const r = reportOf(to, shard);
            return r?.state === SHARD_REPORT_STATE_SERVING && r.epoch >= epoch;
          },
          MOVE_TIMEOUT_MS,
        );
        log("info", `moved shard ${shard} to ${to}`, { shard, epoch });
      }
      return {
        shard,
        from,
        to,
        epoch: map.shards[shard]?.epoch ?? 0,
        revision: map.revision,
        changed,
      };
    });
    moves = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  };

  const workerOf = (id: string): ManagedProcess => {
    const w = workerProcs.find((p) => p.name === id);
    if (w === undefined) {
      throw new RangeError(`no worker ${JSON.stringify(id)}; workers are ${workerIds.join(", ")}`);
    }
    return w;
  };

  const reloadPools = async () => {
    let list: PoolManifest[];
    try {
      list = await manifestCache.load(manifestPaths);
    } catch (e: unknown) {
      log("error", "manifests changed but are invalid; keeping the pools as they are", {
        error: e instanceof Error ? e.message : String(e),
      });
      return;
    }
    await saveManifestCache();
    const ids = new Set(list.map((m) => m.spec.pool));
    const removed = [...applied.keys()].filter((p) => !ids.has(p));
    if (removed.length > 0) {
      log("warn", "pools removed from the manifests keep being served (there is no delete yet)", {
        pools: removed,
      });
    }
    manifestOrder = [
      ...manifestOrder,
      ...list.map((m) => m.spec.pool).filter((p) => !manifestOrder.includes(p)),
    ];
    await configureAll(list, false);
  };

  try {
    control = await startControlServer(options.controlPort ?? ports.control, {
      shardMap: () => internal.ShardMap.toJSON(map),
      moveShard,
      processes: () =>
        all.map((p) => ({
          name: p.name,
          pid: p.pid ?? null,
          ready: p.ready,
          restarts: p.restarts,
        })),
      shardOf: (pool) => {
        const problem = poolIdProblem(pool);
        if (problem !== undefined) {
          throw Object.assign(new Error(`pool: ${problem}`), { name: "ShardMoveError" });
        }
        const shard = shardOf(pool, map.shardCount);
        const a = map.shards[shard];
        return { pool, shard, owner: a?.owner ?? "", epoch: a?.epoch ?? 0 };
      },
    });
    if (options.watch === true) {
      watcher = await watchManifests(manifestPaths, () => {
        reloadPools().catch((e: unknown) =>
          log("error", "re-applying manifests failed", { error: String(e) }),
        );
      });
    }
  } catch (e: unknown) {
    await stop();
    throw e;
  }
  const controlAddress = control.address;

  const workers: LocalWorker[] = workerProcs.map((p, i) => ({
    id: p.name,
    grpcAddress: members[i]?.address ?? "",
    httpAddress: at((ports.workers[i] as ClusterPorts["workers"][number]).http),
    get pid() {
      return p.pid;
    },
    get restarts() {
      return p.restarts;
    },
  }));

  return {
    gatewayAddress: gatewayAddresses.grpc,
    gatewayHttpAddress: gatewayAddresses.http,
    get gatewayPid() {
      return gateway.pid;
    },
    workers,
    controlAddress,
    dataDir,
    clusterId,
    shardMapFile,
    journal,
    get pools() {
      return manifestOrder.filter((p) => applied.has(p));
    },
    shardMap: () => map,
    moveShard,
    killWorker: (id, signal = "SIGTERM") => workerOf(id).kill(signal),
    waitForWorkerRestart: (id, timeoutMs) => workerOf(id).waitForRestart(timeoutMs),
    reloadPools,
    banner: () => {
      const counts = shardsPerMember(map);
      const examplePool = manifests.find((m) => !m.spec.closed)?.spec.pool;
      let example: { pool: string; shard: number; moveTo: string } | undefined;
      if (examplePool !== undefined) {
        const shard = shardOf(examplePool, map.shardCount);
        const owner = map.shards[shard]?.owner;
        const moveTo = workerIds.find((id) => id !== owner) ?? workerIds[0] ?? "worker-0";
        example = { pool: examplePool, shard, moveTo };
      }
      return banner({
        gateway: gatewayAddresses,
        workers: workers.map((w) => ({
          id: w.id,
          grpc: w.grpcAddress,
          http: w.httpAddress,
          shards: counts.get(w.id) ?? 0,
        })),
        control: controlAddress,
        dataDir,
        journal,
        shardCount,
        revision: map.revision,
        pools: applied.size,
        manifests: manifestPaths.map((p) => {
          const rel = relative(process.cwd(), resolve(p));
          return rel.startsWith("..") || isAbsolute(rel) ? p : rel;
        }),
        ...(example === undefined ? {} : { example }),
        watching: options.watch === true,
      });
    },
    stop,
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

/**
 * Waits until the journal at `url` answers (Cassandra may still be starting), with a
 * progress line at most every `intervalMs`; no time limit (Ctrl-C stops it).
 *
 * @throws Error when the journal fails for good (e.g. a keyspace of a newer build)
 */
async function waitForJournal(
  url: string,
  log: (level: "info" | "warn", msg: string, fields?: object) => void,
  intervalMs: number,
  signal: AbortSignal | undefined,
): Promise<void> {
  const started = Date.now();
  let lastLine = Number.NEGATIVE_INFINITY;
  const journal = await openJournal(url, {
    onAttemptFailed: (e, attempt, retryInMs) => {
      if (Date.now() - lastLine < intervalMs) return;
      lastLine = Date.now();
      log(
        "warn",
        `waiting for the journal (${Math.round((Date.now() - started) / 1000)} s so far; Ctrl-C to stop)`,
        { journal: url, attempt, retryInMs, reason: e instanceof Error ? e.message : String(e) },
      );
    },
  });
  try {
    if (!(journal instanceof ConnectingJournal)) return;
    const aborted = new Promise<void>((resolvePromise) => {
      if (signal?.aborted) resolvePromise();
      signal?.addEventListener("abort", () => resolvePromise(), { once: true });
    });
    await Promise.race([journal.whenConnected(), aborted]);
    if (!signal?.aborted) log("info", "the journal answers", { journal: url });
  } finally {
    await journal.close().catch(() => undefined);
  }
}

async function readPreviousMap(path: string): Promise<internal.ShardMap | undefined> {
  if (!existsSync(path)) return undefined;
  const text = await readFile(path, "utf8");
  try {
    return internal.ShardMap.fromJSON(JSON.parse(text));
  } catch (e: unknown) {
    throw new Error(
      `${path} is not a ShardMap (${e instanceof Error ? e.message : String(e)}); remove it or use another --data-dir`,
    );
  }
}
