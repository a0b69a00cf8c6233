// Local mode: a gateway and N workers as supervised child processes on this
// machine, a SQLite journal and a ShardMap file in a data directory, and pools
// configured from CapacityPool manifests. `npm start` is a thin wrapper over
// startLocalCluster; the acceptance tests and the benchmark use it directly. What the
// children are up to comes from their typed channels (/readyz, each worker's
// WatchShards stream), never from their logs, which are only relayed.
//
// It is the operator's core with local adapters: the ShardMap is planned by
// @berth/operator's planShardMapAtStart and published to a file
// (shard-map-publisher.ts), membership is the supervised children (supervisor.ts),
// pools come from YAML through the operator's Configure diff (pool-sync.ts), and
// status is the control endpoint (control-handlers.ts). This file composes them.

import { mkdir } from "node:fs/promises";
import { isAbsolute, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { clusterClientOptions } from "@berth/common";
import { Router } from "@berth/gateway";
import type { internal } from "@berth/proto";
import type { RestartBackoffOptions } from "./backoff.js";
import { banner, bannerExample } from "./banner.js";
import { ClusterLog } from "./cluster-log.js";
import { controlHandlers } from "./control-handlers.js";
import { type ControlServer, startControlServer } from "./control-server.js";
import { clusterIdOf, type DataDirLockInfo, lockDataDir } from "./data-dir.js";
import { waitForJournal } from "./journal-wait.js";
import type { LogFormat } from "./log-format.js";
import { ManifestCache } from "./manifest-cache.js";
import { PoolSync, specsInForce, watchManifests } from "./pool-sync.js";
import {
  type ClusterPorts,
  checkPortsAvailable,
  DEFAULT_GATEWAY_PORT,
  derivePorts,
  labelPorts,
  portsToReport,
} from "./ports.js";
import { shardsPerMember } from "./shard-map-ops.js";
import { ShardMapPublisher } from "./shard-map-publisher.js";
import { type ShardMove, ShardMover } from "./shard-mover.js";
import { ShardReports } from "./shard-reports.js";
import { Supervisor } from "./supervisor.js";

export type { ShardMove } from "./shard-mover.js";
export { SERVER_V8_FLAGS } from "./supervisor.js";

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
/** Longest wait, once every worker is ready, for each to report on its WatchShards stream. */
const FIRST_REPORT_TIMEOUT_MS = 30_000;
/** In the data directory: the manifests as last parsed (see manifest-cache.ts). */
const MANIFEST_CACHE_FILE = "manifest-cache.json";

/**
 * Starts a local cluster and configures its pools.
 *
 * @throws ManifestError when a manifest is invalid (before any process starts)
 * @throws DataDirLockedError when another running cluster holds the data directory
 * @throws PortUnavailableError when a port is taken (before any process starts)
 * @throws ShardCountMismatchError when the data directory was used with another shard count
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
  const logDir = resolve(dataDir, "logs");
  const port = options.port ?? DEFAULT_GATEWAY_PORT;
  const signal = options.signal;
  const orAbort = <T>(p: Promise<T>): Promise<T> => abortable(p, signal);

  // Manifests first: a typo should fail before anything starts. Files unchanged since
  // the last run on this data directory are not parsed again (manifest-cache.ts).
  const manifestCache = await ManifestCache.open(resolve(dataDir, MANIFEST_CACHE_FILE));
  const manifests = await manifestCache.load(manifestPaths);
  // Port 0: every child binds port 0 and reports what it got (supervisor.ts).
  const ports: ClusterPorts =
    port === 0 ? portsToReport(workerCount) : derivePorts(port, workerCount);
  const addressDir = resolve(dataDir, "run");
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
    await mkdir(addressDir, { recursive: true });
  } catch (e: unknown) {
    await unlock();
    throw e;
  }
  const at = (p: number) => `127.0.0.1:${p}`;
  const workerSpecs = ports.workers.slice(0, workerCount).map((p, i) => ({
    id: `worker-${i}`,
    grpc: at(p.grpc),
    http: at(p.http),
  }));
  const members = workerSpecs.map((w) => ({ id: w.id, address: w.grpc }));

  // Logs: every line to <dataDir>/logs/<name>.log; formatted to logOutput if given.
  const logs = new ClusterLog({
    dir: logDir,
    names: ["gateway", ...workerSpecs.map((w) => w.id)],
    output: options.logOutput,
    format: options.logFormat ?? "pretty",
    color: options.logColor ?? false,
  });
  const { log } = logs;
  if (stale !== undefined) {
    log("warn", "took over a stale lock of a cluster that is no longer running", {
      file: stale.file,
      ...(stale.previous === undefined ? {} : { pid: stale.previous.pid }),
    });
  }
  let clusterId: string;
  let publisher: ShardMapPublisher;
  try {
    const cid = await clusterIdOf(dataDir);
    clusterId = cid.id;
    if (cid.created) log("info", "new cluster id for this data directory", { clusterId });
    // The ShardMap: the previous run's when the workers are the same (manual moves are
    // kept), else planned afresh; epochs continue either way.
    publisher = await ShardMapPublisher.plan(
      resolve(dataDir, "shard-map.json"),
      members,
      shardCount,
    );
    if (port === 0) {
      // Written once the workers have reported their addresses (below).
      await publisher.withhold();
    } else {
      await lock.update({
        gateway: at(ports.gateway.grpc),
        control: at(options.controlPort ?? ports.control),
      });
      await publisher.publishPlanned(log);
    }
  } catch (e: unknown) {
    await unlock();
    throw e;
  }

  const supervisor = new Supervisor({
    root: REPO_ROOT,
    clusterId,
    journal,
    shardMapFile: publisher.file,
    addressDir,
    gateway: {
      grpc: at(ports.gateway.grpc),
      gossip: at(ports.gateway.gossip),
      http: at(ports.gateway.http),
    },
    workers: workerSpecs,
    env: options.env,
    restartBackoff: options.restartBackoff,
    readyTimeoutMs: options.readyTimeoutMs,
    stopTimeoutMs: options.stopTimeoutMs,
    log: logs,
  });
  // What each worker holds, from its WatchShards stream (reconnected across restarts);
  // made once the workers have reported where they listen.
  let reports: ShardReports | undefined;
  let router: Router | undefined;
  let control: ControlServer | undefined;
  let watcher: { close(): void } | undefined;
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      watcher?.close();
      router?.close();
      reports?.close();
      await control?.close();
      log("info", "stopping the gateway and the workers");
      await supervisor.stop();
      publisher.close();
      log("info", "stopped");
      await unlock();
      await logs.close();
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
  const pools = new PoolSync(
    {
      load: () => manifestCache.load(manifestPaths),
      saveCache: saveManifestCache,
      configure: (spec, initial) =>
        (router as Router).call(
          "configure",
          spec.pool,
          spec,
          Date.now() + CONFIGURE_DEADLINE_MS,
          initial && signal !== undefined ? { signal } : {},
        ),
      // At start, the workers say which specs their serving shards hold in force: the
      // pools of a shard whose digest equals that of its manifests need no Configure.
      inForce: (specs) => specsInForce(specs, publisher.map, reports as ShardReports),
      concurrency: CONFIGURE_CONCURRENCY,
      log,
    },
    manifests,
  );

  try {
    if (/^cassandra:/i.test(journal)) {
      await orAbort(
        waitForJournal(journal, log, options.journalProgressIntervalMs ?? 5000, signal),
      );
    }
    if (signal?.aborted) throw new LocalStartAbortedError();
    log("info", `starting the gateway and ${workerCount} workers`, {
      event: "local.starting",
      dataDir,
      journal,
      clusterId,
    });
    // While the processes start: remember the parsed manifests for the next run.
    const cacheSaved = saveManifestCache();
    await orAbort(
      supervisor.start(async () => {
        if (port !== 0) return;
        publisher.locate(new Map(supervisor.addresses.workers.map((w) => [w.id, w.grpc])));
        await publisher.publishPlanned(log);
      }),
    );
    await cacheSaved;
    const watching = new ShardReports(
      supervisor.addresses.workers.map((w) => ({ id: w.id, address: w.grpc })),
      clusterId,
      log,
    );
    reports = watching;
    await orAbort(
      watching.waitFor(
        "every worker reports its shards",
        () => watching.allReporting(),
        FIRST_REPORT_TIMEOUT_MS,
      ),
    );
    router = new Router({
      source: publisher.source,
      channelOptions: clusterClientOptions(clusterId),
    });
    await orAbort(pools.apply(manifests, true));
    if (signal?.aborted) throw new LocalStartAbortedError();
  } catch (e: unknown) {
    await stop();
    throw signal?.aborted ? new LocalStartAbortedError() : e;
  }

  const reloadPools = () => pools.reload();
  const mover = new ShardMover(publisher, reports, log);
  const addresses = supervisor.addresses;
  try {
    control = await startControlServer(
      options.controlPort ?? ports.control,
      controlHandlers({ publisher, mover, supervisor }),
    );
    if (port === 0) {
      await lock.update({ gateway: addresses.gateway.grpc, control: control.address });
    }
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

  const workers: LocalWorker[] = supervisor.workers.map((p, i) => ({
    id: p.name,
    grpcAddress: addresses.workers[i]?.grpc ?? "",
    httpAddress: addresses.workers[i]?.http ?? "",
    get pid() {
      return p.pid;
    },
    get restarts() {
      return p.restarts;
    },
  }));

  return {
    gatewayAddress: addresses.gateway.grpc,
    gatewayHttpAddress: addresses.gateway.http,
    get gatewayPid() {
      return supervisor.gateway.pid;
    },
    workers,
    controlAddress,
    dataDir,
    clusterId,
    shardMapFile: publisher.file,
    journal,
    get pools() {
      return pools.pools;
    },
    shardMap: () => publisher.map,
    moveShard: (shard, to) => mover.move(shard, to),
    killWorker: (id, signal = "SIGTERM") => supervisor.worker(id).kill(signal),
    waitForWorkerRestart: (id, timeoutMs) => supervisor.worker(id).waitForRestart(timeoutMs),
    reloadPools,
    banner: () => {
      const map = publisher.map;
      const counts = shardsPerMember(map);
      const example = bannerExample(
        manifests.map((m) => m.spec),
        map,
        workers.map((w) => w.id),
      );
      return banner({
        gateway: addresses.gateway,
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
        pools: pools.size,
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

/** `p`, or a LocalStartAbortedError as soon as `signal` aborts. */
function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
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
}
