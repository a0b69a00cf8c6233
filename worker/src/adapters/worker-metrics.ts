// The worker's Prometheus metrics, on an injected registry.

import { isErrorReason, parseRichStatus } from "@berth/proto";
import {
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { PoolView } from "../domain/pool.js";
import type { AppendResult } from "../entity/pool-entity.js";
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

/** berth_requests_total: calls of Berth's own services by method and outcome. */
export type RequestOutcomes = Counter<"method" | "outcome">;

/**
 * Creates berth_requests_total{method, outcome} on `registry`: one count per answered
 * unary call, `outcome` being `ok` or the answer's ErrorInfo reason in lower case
 * (`insufficient_capacity`, `not_owner`, `journal_unavailable`, …), or the gRPC code
 * in lower case when the answer carried no Berth reason (`deadline_exceeded`, …).
 * Bounded: a few methods × the fixed reason list, no pool label.
 */
export function createRequestOutcomes(registry: Registry): RequestOutcomes {
  return new Counter({
    name: "berth_requests_total",
    help: "Answered calls of Berth's services, by method and outcome (ok, or the error reason in lower case: insufficient_capacity, pool_not_found, pool_closed, request_id_reused, not_owner, journal_unavailable, …).",
    labelNames: ["method", "outcome"],
    registers: [registry],
  });
}

/**
 * The `outcome` label of an answer: `ok`, else its Berth ErrorInfo reason, else its
 * gRPC status code name, in lower case.
 */
export function outcomeOf(err: unknown): string {
  if (err === null || err === undefined) return "ok";
  const parsed = parseRichStatus(err);
  if (parsed.reason !== undefined && isErrorReason(parsed.reason)) {
    return parsed.reason.toLowerCase();
  }
  return (status[parsed.code] ?? "unknown").toLowerCase();
}

/**
 * Wraps every unary handler of a service so that each call is counted by status code
 * and timed (and, given `outcomes`, counted by outcome in berth_requests_total).
 * Streaming handlers are left as they are.
 */
export function instrumentService<S extends UntypedServiceImplementation>(
  definition: ServiceDefinition,
  handlers: S,
  metrics: GrpcServerMetrics,
  outcomes?: RequestOutcomes,
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
          // Counting must never keep an answer from its caller.
          try {
            outcomes?.inc({ method, outcome: outcomeOf(err) });
          } catch {
            outcomes?.inc({ method, outcome: "unknown" });
          }
        }
        callback(err, value, trailer, flags);
      });
    };
  }
  return out as S;
}

/** The worker's own metrics: requests, journal, group commit, ownership, pools, hand-off. */
export class WorkerMetrics implements OwnershipMetrics {
  readonly grpc: GrpcServerMetrics;
  /** berth_requests_total of the WorkerService. */
  readonly outcomes: RequestOutcomes;
  private readonly appendSeconds: Histogram<"result">;
  private readonly groupCommitEvents: Histogram;
  private readonly recoverySeconds: Histogram;
  private readonly fenceRejections: Counter;
  private readonly leaveSeconds: Histogram<"result">;

  /**
   * @param stats read at scrape time for the berth_pools_loaded and berth_shards_* gauges
   * @param views read at scrape time for the berth_pool_* totals: the pools this worker serves
   */
  constructor(
    registry: Registry,
    stats: () => OwnershipStats,
    views: () => Iterable<PoolView> = () => [],
  ) {
    const registers = [registry];
    this.grpc = createGrpcServerMetrics(registry);
    this.outcomes = createRequestOutcomes(registry);
    this.appendSeconds = new Histogram({
      name: "berth_journal_append_seconds",
      help: "Latency of journal appends (one per group commit), by result (ok; fenced: refused because a newer owner fenced the pool; error).",
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
    this.fenceRejections = new Counter({
      name: "berth_journal_fence_rejections_total",
      help: "Journal appends refused by the fence: a newer owner had taken the pool, so this worker's write was stopped (the fence doing its job; frequent ones mean shards move under load).",
      registers,
    });
    this.leaveSeconds = new Histogram({
      name: "berth_worker_leave_seconds",
      help: "Graceful leave (SIGTERM) from leaving to holding no shard, by result (handed_off, timed_out).",
      labelNames: ["result"],
      buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120],
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
    new Gauge({
      name: "berth_shards_draining",
      help: "Shards the map marks DRAINING that this worker still holds (being handed off).",
      registers,
      collect() {
        this.set(stats().shardsDraining);
      },
    });
    // One pass over the pools per scrape, whichever of the four gauges is collected
    // first; forgotten on the next turn of the event loop.
    let totals: { c: number; r: number; f: number; o: number } | undefined;
    const total = () => {
      if (totals !== undefined) return totals;
      let c = 0;
      let r = 0;
      let f = 0;
      let o = 0;
      for (const v of views()) {
        if (v.retired) continue;
        if (v.overCommitted) o++;
        if (v.closed) continue;
        c += v.capacity;
        r += v.reserved;
        if (v.reserved >= v.capacity) f++;
      }
      totals = { c, r, f, o };
      setImmediate(() => {
        totals = undefined;
      });
      return totals;
    };
    new Gauge({
      name: "berth_pool_capacity_units",
      help: "Sum of the capacity of the open pools this worker serves.",
      registers,
      collect() {
        this.set(total().c);
      },
    });
    new Gauge({
      name: "berth_pool_reserved_units",
      help: "Sum of the units reserved in the open pools this worker serves.",
      registers,
      collect() {
        this.set(total().r);
      },
    });
    new Gauge({
      name: "berth_pools_full",
      help: "Open pools this worker serves with nothing left to reserve (reserved >= capacity).",
      registers,
      collect() {
        this.set(total().f);
      },
    });
    new Gauge({
      name: "berth_pools_overcommitted",
      help: "Pools this worker serves with more reserved than their capacity (after a capacity cut).",
      registers,
      collect() {
        this.set(total().o);
      },
    });
  }

  observeAppend(seconds: number, events: number, result: AppendResult): void {
    this.appendSeconds.observe({ result }, seconds);
    if (result === "ok") this.groupCommitEvents.observe(events);
    if (result === "fenced") this.fenceRejections.inc();
  }

  /** A graceful leave ended after `seconds`, with every shard moved away or not. */
  observeLeave(seconds: number, handedOff: boolean): void {
    this.leaveSeconds.observe({ result: handedOff ? "handed_off" : "timed_out" }, seconds);
  }

  observeRecovery(seconds: number): void {
    this.recoverySeconds.observe(seconds);
  }
}

/**
 * Registers berth_worker_ready: 1 while `ready()` (the worker's readiness: journal
 * connected, ShardMap known, every owned shard recovered), else 0. Read at scrape time.
 */
export function registerReadinessMetric(registry: Registry, ready: () => boolean): void {
  new Gauge({
    name: "berth_worker_ready",
    help: "1 while this worker is ready (journal connected, ShardMap known, every owned shard recovered), else 0 (the reason is on /readyz).",
    registers: [registry],
    collect() {
      this.set(ready() ? 1 : 0);
    },
  });
}

/** What {@link registerLeaseMetrics} reads: the worker Lease's counters. */
export interface LeaseStats {
  /** Successful renewals (the first one acquires the Lease). */
  readonly renewals: number;
  /** Renewal rounds that failed. */
  readonly failures: number;
}

/**
 * Registers berth_worker_lease_renewals_total and berth_worker_lease_renew_failures_total,
 * read from `stats` at scrape time (Kubernetes mode: the worker's membership Lease).
 */
export function registerLeaseMetrics(registry: Registry, stats: () => LeaseStats): void {
  const registers = [registry];
  new Counter({
    name: "berth_worker_lease_renewals_total",
    help: "Successful renewals of this worker's membership Lease.",
    registers,
    collect() {
      this.reset();
      this.inc(stats().renewals);
    },
  });
  new Counter({
    name: "berth_worker_lease_renew_failures_total",
    help: "Renewal rounds of this worker's membership Lease that failed (kube-apiserver unreachable or refusing); the operator counts the worker dead once renewals stop for a Lease duration.",
    registers,
    collect() {
      this.reset();
      this.inc(stats().failures);
    },
  });
}
