/**
 * The gateway process, in-process: the public gRPC server (CapacityService, health,
 * reflection), the read-only gossip replica on its own port, and the metrics and
 * health HTTP endpoints. `main.ts` is a thin wrapper around {@link startGateway}.
 */
import { hostname } from "node:os";
import {
  berthReflectionPackage,
  bindGrpcServer,
  CapacityServiceService,
  clusterClientOptions,
  clusterGuard,
  createGrpcServerMetrics,
  createLogger,
  createRegistry,
  createRequestOutcomes,
  FileShardMapSource,
  Gossiper,
  GossipServiceService,
  type InternalTransport,
  instrumentService,
  parseHostPort,
  plaintextTransport,
  Replica,
  shutdownGrpcServer,
  startObservabilityServer,
} from "@berth/common";
import type { ShardMapSource } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import { ReflectionService } from "@grpc/reflection";
import { HealthImplementation } from "grpc-health-check";
import type { Logger } from "pino";
import { Gauge, type Registry } from "prom-client";
import { capacityServiceHandlers } from "./capacity-service.js";
import { Router, type RouterOptions } from "./router.js";

/** How to run a gateway. Addresses are host:port; port 0 picks a free port. */
export interface GatewayConfig {
  /** Public gRPC listen address (CapacityService, health, reflection). */
  readonly grpc: string;
  /** GossipService listen address (read-only replica; workers push here). */
  readonly gossip: string;
  /** HTTP listen address for /metrics, /healthz, /readyz. */
  readonly http: string;
  /**
   * Where the ShardMap comes from: a JSON file written by the local supervisor
   * (watched), or a source the caller owns (it is not closed by the gateway).
   * Exactly one of the two.
   */
  readonly shardMapFile?: string;
  readonly shardMapSource?: ShardMapSource;
  /**
   * How long startup waits for a first ShardMap before listening anyway (health
   * NOT_SERVING and writes answering UNAVAILABLE/NO_OWNER until one arrives).
   * Default 10,000 ms; 0 does not wait.
   */
  readonly shardMapWaitMs?: number;
  /** Node id sent with gossip messages. Default `gateway-<hostname>-<pid>`. */
  readonly nodeId?: string;
  /**
   * Pull the gossip replica from one worker this often, for installs whose workers do
   * not push to this gateway (Kubernetes: gateways are not in the ShardMap). Default:
   * no periodic pull (local mode: the supervisor lists gateways as workers' peers).
   */
  readonly gossipPullIntervalMs?: number;
  /**
   * The cluster this gateway belongs to: sent with every forward and gossip call, and
   * gossip from another cluster is refused (CLUSTER_MISMATCH). Default "" (none).
   */
  readonly clusterId?: string;
  /**
   * Credentials of everything internal: the worker clients, the gossip clients and the
   * GossipService port (mutual TLS with `--internal-tls-dir`; default plaintext). The
   * public gRPC port stays plaintext. The caller owns it (close it after the gateway).
   */
  readonly transport?: InternalTransport;
  /** Default: a pino JSON logger on stdout. */
  readonly logger?: Logger;
  /** Default: a new registry with process metrics. */
  readonly registry?: Registry;
  /** Router tuning (deadline default, backoff, worker channel options). */
  readonly router?: Omit<RouterOptions, "source" | "logger" | "registry">;
  /** Longest graceful shutdown before in-flight calls are cut. Default 5,000 ms. */
  readonly shutdownGraceMs?: number;
}

/** A running gateway. */
export interface RunningGateway {
  /** host:port of the public gRPC server. */
  readonly grpcAddress: string;
  /** host:port of the GossipService server. */
  readonly gossipAddress: string;
  /** host:port of the metrics and health HTTP server. */
  readonly httpAddress: string;
  /** The router, for callers that route pool commands in-process (the local supervisor). */
  readonly router: Router;
  /** The gossip replica GetAvailability answers from. */
  readonly replica: Replica;
  /**
   * Stops the gateway gracefully: health NOT_SERVING, in-flight calls finish (within
   * `shutdownGraceMs`, then they are cut), gossip stops, ports close. Idempotent.
   */
  close(): Promise<void>;
}

/** Thrown when a {@link GatewayConfig} is contradictory or incomplete. */
export class GatewayConfigError extends Error {
  override readonly name = "GatewayConfigError";
}

const CAPACITY_SERVICE = "berth.v1.CapacityService";

/**
 * Starts a gateway and resolves once every port listens.
 *
 * @param config listen addresses, ShardMap source and options
 * @returns the bound addresses and `close()`
 * @throws GatewayConfigError for a bad config; InvalidAddressError for a bad address;
 *   the bind error when a port is taken
 */
export async function startGateway(config: GatewayConfig): Promise<RunningGateway> {
  if ((config.shardMapFile === undefined) === (config.shardMapSource === undefined)) {
    throw new GatewayConfigError("give exactly one of shardMapFile and shardMapSource");
  }
  // Fail on a malformed address before anything is started.
  parseHostPort(config.grpc);
  parseHostPort(config.gossip);
  parseHostPort(config.http);

  const logger = config.logger ?? createLogger("gateway");
  const registry = config.registry ?? createRegistry("gateway");
  const nodeId = config.nodeId ?? `gateway-${hostname()}-${process.pid}`;
  const fileSource =
    config.shardMapSource === undefined
      ? new FileShardMapSource(config.shardMapFile as string)
      : undefined;
  const source: ShardMapSource = config.shardMapSource ?? (fileSource as FileShardMapSource);
  const cleanups: (() => Promise<void> | void)[] = [];
  if (fileSource !== undefined) cleanups.push(() => fileSource.close());

  try {
    await fileSource?.ready;
    await waitForFirstMap(source, config.shardMapWaitMs ?? 10_000, logger);

    const clusterId = config.clusterId ?? "";
    const router = new Router({
      ...config.router,
      source,
      logger,
      registry,
      channelOptions: { ...config.router?.channelOptions, ...clusterClientOptions(clusterId) },
      ...(config.transport === undefined ? {} : { transport: config.transport }),
    });
    cleanups.push(() => router.close());

    const replica = new Replica(Date.now);
    new Gauge({
      name: "berth_gateway_replica_pools",
      help: "Pools in this gateway's gossip replica.",
      registers: [registry],
      collect() {
        this.set(replica.size);
      },
    });
    const gossiper = new Gossiper({
      nodeId,
      replica,
      // Read-only replica: no `owned`, so it never pushes; it pulls on start and
      // receives the owners' pushes.
      peers: () => source.current()?.members.map((m) => m.address) ?? [],
      ...(config.gossipPullIntervalMs === undefined
        ? {}
        : { pullIntervalMs: config.gossipPullIntervalMs }),
      logger: logger.child({ part: "gossip" }),
      registry,
      clientOptions: clusterClientOptions(clusterId),
      ...(config.transport === undefined ? {} : { transport: config.transport }),
    });
    cleanups.push(() => gossiper.stop());

    const health = new HealthImplementation({
      "": "NOT_SERVING",
      [CAPACITY_SERVICE]: "NOT_SERVING",
    });
    let serving = false;
    const updateHealth = (): void => {
      const status = serving && source.current() !== undefined ? "SERVING" : "NOT_SERVING";
      health.setStatus("", status);
      health.setStatus(CAPACITY_SERVICE, status);
    };

    const grpcServer = new grpc.Server();
    grpcServer.addService(
      CapacityServiceService,
      instrumentService(
        CapacityServiceService,
        capacityServiceHandlers({ router, replica, logger }),
        createGrpcServerMetrics(registry),
        createRequestOutcomes(registry),
      ),
    );
    health.addToServer(grpcServer);
    new ReflectionService(berthReflectionPackage(), {
      services: [CAPACITY_SERVICE, "grpc.health.v1.Health"],
    }).addToServer(grpcServer);

    const gossipServer = new grpc.Server({ interceptors: [clusterGuard(clusterId, logger)] });
    gossipServer.addService(GossipServiceService, gossiper.serviceHandlers());

    const shutdownGraceMs = config.shutdownGraceMs ?? 5000;
    const stopServer = async (server: grpc.Server, which: string): Promise<void> => {
      if (!(await shutdownGrpcServer(server, shutdownGraceMs))) {
        logger.warn(
          { server: which, shutdownGraceMs },
          "calls still running after the shutdown grace period were cancelled",
        );
      }
    };
    const grpcAddress = await bindGrpcServer(grpcServer, config.grpc);
    cleanups.push(() => stopServer(grpcServer, "gRPC"));
    const gossipAddress = await bindGrpcServer(
      gossipServer,
      config.gossip,
      (config.transport ?? plaintextTransport()).serverCredentials,
    );
    cleanups.push(() => stopServer(gossipServer, "gossip"));

    const http = await startObservabilityServer({
      listen: config.http,
      registry,
      logger,
      readiness: () =>
        source.current() === undefined
          ? { ready: false, reason: "no ShardMap is known yet" }
          : serving
            ? { ready: true }
            : { ready: false, reason: "shutting down" },
    });
    cleanups.push(() => http.close());

    serving = true;
    updateHealth();
    const unsubscribe = source.subscribe((map) => {
      logger.info(
        { revision: map.revision, members: map.members.length, shardCount: map.shardCount },
        "ShardMap updated",
      );
      updateHealth();
    });
    cleanups.push(unsubscribe);

    const gossipStarted = gossiper.start().catch((e: unknown) => {
      logger.error({ err: e }, "gossip start failed");
    });

    logger.info(
      { event: "gateway.listening", grpc: grpcAddress, gossip: gossipAddress, http: http.address },
      "gateway listening",
    );

    let closing: Promise<void> | undefined;
    return {
      grpcAddress,
      gossipAddress,
      httpAddress: http.address,
      router,
      replica,
      close() {
        closing ??= (async () => {
          serving = false;
          updateHealth();
          logger.info("gateway shutting down");
          await gossipStarted;
          await runCleanups(cleanups, logger);
          logger.info("gateway stopped");
        })();
        return closing;
      },
    };
  } catch (e: unknown) {
    await runCleanups(cleanups, logger);
    throw e;
  }
}

/** Runs cleanups in reverse order, logging (not throwing) their failures. */
async function runCleanups(
  cleanups: (() => Promise<void> | void)[],
  logger: Logger,
): Promise<void> {
  for (const cleanup of cleanups.splice(0).reverse()) {
    try {
      await cleanup();
    } catch (e: unknown) {
      logger.error({ err: e }, "error during gateway shutdown");
    }
  }
}

/** Resolves when `source` has a map or after `waitMs`, whichever is first. */
async function waitForFirstMap(
  source: ShardMapSource,
  waitMs: number,
  logger: Logger,
): Promise<void> {
  if (source.current() !== undefined || waitMs <= 0) return;
  await new Promise<void>((resolve) => {
    const timer = setTimeout(done, waitMs);
    const unsubscribe = source.subscribe(() => done());
    function done(): void {
      clearTimeout(timer);
      unsubscribe();
      resolve();
    }
  });
  if (source.current() === undefined) {
    logger.warn(
      { waitedMs: waitMs },
      "no ShardMap yet; serving anyway (health NOT_SERVING, writes UNAVAILABLE) until one arrives",
    );
  }
}
