// Wires a worker: ownership, WorkerService + WorkerControlService + GossipService +
// health + reflection on one gRPC server, gossip, metrics and the observability HTTP
// server; and its graceful leave.

import {
  bindGrpcServer,
  clusterClientOptions,
  clusterGuard,
  createLogger,
  createRegistry,
  Gossiper,
  GossipServiceService,
  type InternalTransport,
  instrumentService,
  type ObservabilityServer,
  plaintextTransport,
  type Readiness,
  Replica,
  startObservabilityServer,
  WorkerControlServiceService,
} from "@berth/common";
import type { ShardMapSource } from "@berth/proto";
import { Server } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import type { Journal } from "../journal/journal.js";
import { ShardOwnership } from "../ownership/shard-ownership.js";
import { ConnectingJournal } from "./connecting-journal.js";
import { addReflection } from "./reflection.js";
import { countersOf } from "./wire.js";
import { WorkerControl } from "./worker-control.js";
import { registerReadinessMetric, WorkerMetrics } from "./worker-metrics.js";
import { WORKER_SERVICE_DEFINITION, workerService } from "./worker-service.js";

/** How to run a worker. */
export interface WorkerConfig {
  /** Member id of this worker in the ShardMap, e.g. "worker-0". */
  readonly id: string;
  /**
   * The cluster this worker belongs to: sent with every gossip call, and internal
   * calls (forwards, gossip) from another cluster are refused (CLUSTER_MISMATCH).
   * Default "" (none: only callers that send no cluster id are served).
   */
  readonly clusterId?: string;
  /** gRPC listen address host:port; port 0 picks a free port (see {@link RunningWorker.address}). */
  readonly grpc: string;
  /** Observability HTTP listen address (/metrics, /healthz, /readyz); omitted: none. */
  readonly http?: string;
  /**
   * The journal; the caller owns it (close it after {@link RunningWorker.close}). A
   * {@link ConnectingJournal} that is not connected yet holds the worker in a startup
   * phase: servers up, not ready (the reason on /readyz), WorkerService calls answer
   * UNAVAILABLE/JOURNAL_UNAVAILABLE, and shards are taken only once it connects.
   */
  readonly journal: Journal;
  /** Where the ShardMap comes from; the caller owns it (close it after the worker). */
  readonly shardMapSource: ShardMapSource;
  /** GossipService addresses of extra peers (gateways), besides the ShardMap's other members. */
  readonly gossipPeers?: readonly string[];
  /** Snapshot every this many events per pool. Default 100. */
  readonly snapshotEvery?: number;
  /** Most events per group-commit append. Default 256. */
  readonly maxBatchEvents?: number;
  /** Gossip timing (defaults: push after 10 ms, anti-entropy every 1000 ms). */
  readonly gossip?: { readonly pushDelayMs?: number; readonly antiEntropyIntervalMs?: number };
  /**
   * Longest wait for in-flight calls on close before they are cut off. Default 10,000 ms.
   * Open WatchShards streams do not count: they end once the shards are drained.
   */
  readonly drainTimeoutMs?: number;
  /**
   * Credentials of the gRPC server and of the gossip clients: mutual TLS
   * (`loadInternalTls`, `--internal-tls-dir`) or, by default, plaintext. The caller owns
   * it (close it after the worker).
   */
  readonly transport?: InternalTransport;
  /** Default: a "worker" JSON logger with the worker id. */
  readonly logger?: Logger;
  /** Default: a fresh registry (createRegistry("worker")). */
  readonly registry?: Registry;
}

/** Options of {@link RunningWorker.leave}. */
export interface LeaveOptions {
  /** Longest wait, in ms, for the ShardMap publisher to move every shard away. */
  readonly timeoutMs: number;
}

/** How a {@link RunningWorker.leave} ended. */
export interface LeaveResult {
  /** True when the worker held no shard any more; false when the timeout (or close) came first. */
  readonly handedOff: boolean;
  /** Shards it was not done with (see ShardOwnership.occupiedShards) when the wait ended. */
  readonly remaining: number;
}

/** A running worker. */
export interface RunningWorker {
  readonly id: string;
  /** host:port the gRPC server is bound to (WorkerService, GossipService, health, reflection). */
  readonly address: string;
  /** host:port of the observability HTTP server, if one was asked for. */
  readonly httpAddress: string | undefined;
  readonly ownership: ShardOwnership;
  /** This worker's gossip replica (read side). */
  readonly replica: Replica;
  readonly registry: Registry;
  /** Ready once the ShardMap is known and every owned shard is recovered. */
  readiness(): Readiness;
  /** Resolves when {@link readiness} first says ready (or rejects when the worker closes first). */
  whenReady(): Promise<void>;
  /**
   * The graceful leave, before {@link close} (Kubernetes: on SIGTERM). Reports
   * `leaving: true` on WatchShards at once, so that the publisher drains this worker's
   * shards and moves them away; keeps serving what it holds meanwhile (a shard marked
   * DRAINING stops taking commands as usual); resolves once it holds no shard (every
   * one moved away and its appends finished), after `timeoutMs`, or when close begins,
   * whichever is first.
   * Never rejects. `leaving` stays true. Call close() afterwards.
   */
  leave(options: LeaveOptions): Promise<LeaveResult>;
  /**
   * Stops taking calls, drains in-flight ones (bounded by drainTimeoutMs), stops gossip
   * and HTTP. Does not close the journal or the ShardMap source. Idempotent.
   */
  close(): Promise<void>;
}

const WORKER_SERVICE = "berth.internal.v1.WorkerService";
const CONTROL_SERVICE = "berth.internal.v1.WorkerControlService";
const GOSSIP_SERVICE = "berth.internal.v1.GossipService";

/** Starts a worker in this process. Used by main.ts, by tests and by in-process clusters. */
export async function startWorker(config: WorkerConfig): Promise<RunningWorker> {
  const log = config.logger ?? createLogger("worker", { worker: config.id });
  const clusterId = config.clusterId ?? "";
  const registry = config.registry ?? createRegistry("worker");
  const replica = new Replica(() => Date.now());
  let ownershipRef: ShardOwnership | undefined;
  const metrics = new WorkerMetrics(
    registry,
    () =>
      ownershipRef?.stats() ?? {
        shardsOwned: 0,
        shardsRecovering: 0,
        shardsDraining: 0,
        poolsLoaded: 0,
      },
    () => ownershipRef?.ownedViews() ?? [],
  );

  let gossiper: Gossiper | undefined;
  const ownership = new ShardOwnership({
    nodeId: config.id,
    journal: config.journal,
    source: config.shardMapSource,
    logger: log,
    metrics,
    ...(config.snapshotEvery === undefined ? {} : { snapshotEvery: config.snapshotEvery }),
    ...(config.maxBatchEvents === undefined ? {} : { maxBatchEvents: config.maxBatchEvents }),
    onCommitted: (view) => gossiper?.publish(countersOf(view, Date.now())),
  });
  ownershipRef = ownership;

  const extraPeers = config.gossipPeers ?? [];
  gossiper = new Gossiper({
    nodeId: config.id,
    replica,
    peers: () => {
      const members = ownership.shardMap?.members ?? [];
      const addresses = members.filter((m) => m.id !== config.id).map((m) => m.address);
      return [...new Set([...addresses, ...extraPeers])].filter((a) => a !== "");
    },
    owned: function* () {
      const now = Date.now();
      for (const v of ownership.ownedViews()) yield countersOf(v, now);
    },
    logger: log,
    registry,
    clientOptions: clusterClientOptions(clusterId),
    ...(config.transport === undefined ? {} : { transport: config.transport }),
    ...(config.gossip?.pushDelayMs === undefined ? {} : { pushDelayMs: config.gossip.pushDelayMs }),
    ...(config.gossip?.antiEntropyIntervalMs === undefined
      ? {}
      : { antiEntropyIntervalMs: config.gossip.antiEntropyIntervalMs }),
  });

  // Gossip and control serve from the start; the WorkerService (and "") only once ready.
  const health = new HealthImplementation({
    "": "NOT_SERVING",
    [WORKER_SERVICE]: "NOT_SERVING",
    [CONTROL_SERVICE]: "SERVING",
    [GOSSIP_SERVICE]: "SERVING",
  });
  let closing = false;
  const connecting = config.journal instanceof ConnectingJournal ? config.journal : undefined;
  const journalProblem = (): string | undefined => connecting?.unavailableReason();
  const readiness = (): Readiness => {
    if (closing) return { ready: false, reason: "worker is shutting down" };
    const problem = journalProblem();
    return problem !== undefined ? { ready: false, reason: problem } : ownership.readiness();
  };
  registerReadinessMetric(registry, () => readiness().ready);
  const readyWaiters = new Set<{ resolve: () => void; reject: (e: Error) => void }>();
  const refresh = () => {
    const r = readiness();
    const s = r.ready ? "SERVING" : "NOT_SERVING";
    health.setStatus("", s);
    health.setStatus(WORKER_SERVICE, s);
    if (r.ready) {
      for (const w of readyWaiters) w.resolve();
      readyWaiters.clear();
    }
  };
  const stopListening = ownership.onChange(refresh);
  const stopWatchingJournal = connecting?.onChange(refresh);

  const control = new WorkerControl({ memberId: config.id, ownership, logger: log });
  // The cluster guard covers every berth.internal.v1 service, WorkerControlService too.
  const server = new Server({ interceptors: [clusterGuard(clusterId, log)] });
  const workerSvc = workerService({
    nodeId: config.id,
    ownership,
    logger: log,
    journalProblem,
    outcomes: metrics.outcomes,
  });
  server.addService(
    WORKER_SERVICE_DEFINITION,
    instrumentService(
      WORKER_SERVICE_DEFINITION,
      workerSvc.handlers,
      metrics.grpc,
      metrics.outcomes,
    ),
  );
  server.addService(WorkerControlServiceService, control.handlers());
  server.addService(
    GossipServiceService,
    instrumentService(GossipServiceService, gossiper.serviceHandlers(), metrics.grpc),
  );
  health.addToServer(server);
  addReflection(server);

  const transport = config.transport ?? plaintextTransport();
  const address = await bindGrpcServer(server, config.grpc, transport.serverCredentials);

  let http: ObservabilityServer | undefined;
  try {
    if (config.http !== undefined) {
      http = await startObservabilityServer({
        listen: config.http,
        registry,
        readiness,
        logger: log,
      });
    }
  } catch (e: unknown) {
    server.forceShutdown();
    throw e;
  }

  if (connecting === undefined) {
    ownership.start();
  } else {
    // Shards are fenced and loaded only once the journal answers.
    connecting.whenConnected().then(
      () => {
        if (closing) return;
        log.info("journal connected; taking this worker's shards");
        ownership.start();
        refresh();
      },
      (e: unknown) => {
        if (!closing)
          log.error({ err: e }, "the journal cannot be opened; this worker stays not ready");
      },
    );
  }
  refresh();
  void gossiper.start();
  log.info({ grpc: address, http: http?.address, id: config.id }, "worker started");

  const leaveWaits = new Set<() => void>();
  const leave = (options: LeaveOptions): Promise<LeaveResult> =>
    new Promise<LeaveResult>((resolve) => {
      control.leave();
      const leftAt = performance.now();
      const remaining = () => ownership.occupiedShards();
      log.info(
        { event: "worker.leaving", shards: remaining(), timeoutMs: options.timeoutMs },
        "leaving: waiting for this worker's shards to be moved away",
      );
      const finish = () => {
        clearTimeout(timer);
        stop();
        leaveWaits.delete(finish);
        const left = remaining();
        metrics.observeLeave((performance.now() - leftAt) / 1000, left === 0);
        if (left === 0) log.info({ event: "worker.moved_away" }, "every shard was moved away");
        else {
          log.warn(
            { event: "worker.left_shards", shards: left },
            `leaving with ${left} shards not moved away`,
          );
        }
        resolve({ handedOff: left === 0, remaining: left });
      };
      const timer = setTimeout(finish, options.timeoutMs);
      const stop = ownership.onChange(() => {
        if (remaining() === 0) finish();
      });
      leaveWaits.add(finish);
      if (closing || remaining() === 0) finish();
    });

  let closed: Promise<void> | undefined;
  const drainTimeoutMs = config.drainTimeoutMs ?? 10_000;
  const close = async (): Promise<void> => {
    closing = true;
    for (const finish of [...leaveWaits]) finish();
    refresh();
    health.setStatus(CONTROL_SERVICE, "NOT_SERVING");
    health.setStatus(GOSSIP_SERVICE, "NOT_SERVING");
    for (const w of readyWaiters)
      w.reject(new Error(`worker ${config.id} closed before it was ready`));
    readyWaiters.clear();
    stopListening();
    stopWatchingJournal?.();
    // Stop accepting calls first; let those in flight finish while the entities drain
    // (queued commands answer UNAVAILABLE, in-flight appends complete). Bounded. The
    // WatchShards streams end once the shards are drained, with that as their last word.
    const shutdown = new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
    // Forward streams are long-lived: each ends once it has answered what it took.
    const drained = Promise.all([
      ownership.close().then(() => control.close()),
      workerSvc.closeStreams(),
      shutdown,
    ]);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = await Promise.race([
      drained.then(() => false),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(true), drainTimeoutMs);
      }),
    ]);
    clearTimeout(timer);
    if (timedOut) {
      log.warn({ drainTimeoutMs }, "draining did not finish in time; cutting in-flight calls off");
      control.close();
      server.forceShutdown();
    }
    await gossiper.stop();
    await http?.close();
    log.info({ id: config.id }, "worker stopped");
  };

  return {
    id: config.id,
    address,
    httpAddress: http?.address,
    ownership,
    replica,
    registry,
    readiness,
    whenReady: () =>
      new Promise<void>((resolve, reject) => {
        if (closing) {
          reject(new Error(`worker ${config.id} is closed`));
          return;
        }
        if (readiness().ready) {
          resolve();
          return;
        }
        readyWaiters.add({ resolve, reject });
      }),
    leave,
    close: () => {
      closed ??= close();
      return closed;
    },
  };
}
