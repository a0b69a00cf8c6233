// The worker's Prometheus metrics, on an injected registry.
import {
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { OwnershipMetrics, OwnershipStats } from "../ownership/shard-ownership.js";

/** The standard grpc_server_* metrics (names as in go-grpc-prometheus, so dashboards work). */
export interface GrpcServerMetrics {
  readonly handled: Counter<"grpc_service" | "grpc_method" | "grpc_type" | "grpc_code">;
  readonly handling: Histogram<"grpc_service" | "grpc_method" | "grpc_type">;
}

/** Creates grpc_server_handled_total and grpc_server_handling_seconds on `registry`. */
export function createGrpcServerMetrics(registry: Registry): GrpcServerMetrics {
  const registers = [registry];
  return {
    handled: new Counter({
      name: "grpc_server_handled_total",
      help: "RPCs completed on the server, regardless of success or failure.",
      labelNames: ["grpc_service", "grpc_method", "grpc_type", "grpc_code"],
      registers,
    }),
    handling: new Histogram({
      name: "grpc_server_handling_seconds",
      help: "Response latency of RPCs handled by the server, in seconds.",
      labelNames: ["grpc_service", "grpc_method", "grpc_type"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
  };
}

/**
 * Wraps every unary handler of a service so that each call is counted by status code
 * and timed. Streaming handlers are left as they are.
 */
export function instrumentService<S extends UntypedServiceImplementation>(
  definition: ServiceDefinition,
  handlers: S,
  metrics: GrpcServerMetrics,
): S {
  const out: UntypedServiceImplementation = {};
  for (const [key, handler] of Object.entries(handlers)) {
    const def = definition[key];
    if (def === undefined || def.requestStream || def.responseStream) {
      out[key] = handler;
      continue;
    }
    const [, service = "unknown", method = key] = def.path.split("/");
    const labels = { grpc_service: service, grpc_method: method, grpc_type: "unary" };
    const unary = handler as (
      call: ServerUnaryCall<unknown, unknown>,
      cb: sendUnaryData<unknown>,
    ) => void;
    out[key] = (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
      const end = metrics.handling.startTimer(labels);
      let counted = false;
      unary(call, (err, value, trailer, flags) => {
        if (!counted) {
          counted = true;
          const code = err ? (err.code ?? status.UNKNOWN) : status.OK;
          metrics.handled.inc({ ...labels, grpc_code: status[code] ?? String(code) });
          end();
        }
        callback(err, value, trailer, flags);
      });
    };
  }
  return out as S;
}

/** The worker's own metrics: journal, group commit, ownership. */
export class WorkerMetrics implements OwnershipMetrics {
  readonly grpc: GrpcServerMetrics;
  private readonly appendSeconds: Histogram<"result">;
  private readonly groupCommitEvents: Histogram;
  private readonly recoverySeconds: Histogram;

  /**
   * @param stats read at scrape time for the berth_pools_loaded and berth_shards_* gauges
   */
  constructor(registry: Registry, stats: () => OwnershipStats) {
    const registers = [registry];
    this.grpc = createGrpcServerMetrics(registry);
    this.appendSeconds = new Histogram({
      name: "berth_journal_append_seconds",
      help: "Latency of journal appends (one per group commit), by result (ok, error).",
      labelNames: ["result"],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    });
    this.groupCommitEvents = new Histogram({
      name: "berth_group_commit_events",
      help: "Events per successful journal append (group commit batch size).",
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    });
    this.recoverySeconds = new Histogram({
      name: "berth_recovery_seconds",
      help: "Time from acquiring a shard to serving it (every pool fenced and loaded).",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    });
    new Gauge({
      name: "berth_pools_loaded",
      help: "Pools loaded in memory on this worker.",
      registers,
      collect() {
        this.set(stats().poolsLoaded);
      },
    });
    new Gauge({
      name: "berth_shards_owned",
      help: "Shards this worker owns (recovering or serving).",
      registers,
      collect() {
        this.set(stats().shardsOwned);
      },
    });
    new Gauge({
      name: "berth_shards_recovering",
      help: "Owned shards still being recovered (not serving yet).",
      registers,
      collect() {
        this.set(stats().shardsRecovering);
      },
    });
  }

  observeAppend(seconds: number, events: number, result: "ok" | "error"): void {
    this.appendSeconds.observe({ result }, seconds);
    if (result === "ok") this.groupCommitEvents.observe(events);
  }

  observeRecovery(seconds: number): void {
    this.recoverySeconds.observe(seconds);
  }
}
