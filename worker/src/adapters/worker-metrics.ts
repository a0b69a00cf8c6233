// The worker's own Prometheus metrics, on an injected registry (the grpc_server_* and
// berth_requests_total ones are @berth/common's grpc-server-metrics).

import {
  createGrpcServerMetrics,
  createRequestOutcomes,
  type GrpcServerMetrics,
  type RequestOutcomes,
} from "@berth/common";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { PoolView } from "../domain/pool.js";
import type { AppendResult } from "../entity/pool-entity.js";
import type { OwnershipMetrics, OwnershipStats } from "../ownership/shard-ownership.js";

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
