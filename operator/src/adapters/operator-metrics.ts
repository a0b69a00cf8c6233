// The operator's Prometheus metrics, on an injected registry, and the two small
// trackers that turn what a term observes into hand-off durations and membership
// transitions.
import type { internal } from "@berth/proto";
import { Counter, Gauge, Histogram, type Registry } from "prom-client";
import type { ShardChange } from "../planning/hand-off.js";

/** The operator's metrics (see docs/metrics.md). */
export interface OperatorMetrics {
  readonly leader: Gauge;
  readonly reconciles: Counter<"controller" | "result">;
  readonly reconcileSeconds: Histogram<"controller">;
  readonly queueDepth: Gauge;
  readonly membersLive: Gauge;
  readonly quorum: Gauge;
  readonly quorumMargin: Gauge;
  readonly quorumLost: Gauge;
  readonly shardsUnassigned: Gauge;
  readonly shardsMoving: Gauge;
  readonly shardMoves: Counter<"kind">;
  readonly statusWrites: Counter<"resource" | "result">;
  readonly handOffSeconds: Histogram;
  readonly memberTransitions: Counter<"to">;
}

/** Creates the operator's metrics on `registry`. */
export function operatorMetrics(registry: Registry): OperatorMetrics {
  const r = [registry];
  return {
    leader: new Gauge({
      name: "berth_operator_leader",
      help: "1 while this replica leads.",
      registers: r,
    }),
    reconciles: new Counter({
      name: "berth_operator_reconciles_total",
      help: "Reconciles, by controller (shardmap, pool) and result (ok, error).",
      labelNames: ["controller", "result"],
      registers: r,
    }),
    reconcileSeconds: new Histogram({
      name: "berth_operator_reconcile_duration_seconds",
      help: "Time of one reconcile, by controller.",
      labelNames: ["controller"],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: r,
    }),
    queueDepth: new Gauge({
      name: "berth_operator_queue_depth",
      help: "Keys waiting in the work queue.",
      registers: r,
    }),
    membersLive: new Gauge({
      name: "berth_operator_members_live",
      help: "Workers whose Lease is being renewed.",
      registers: r,
    }),
    quorum: new Gauge({
      name: "berth_operator_quorum",
      help: "Live workers needed to reassign shards.",
      registers: r,
    }),
    quorumMargin: new Gauge({
      name: "berth_operator_quorum_margin",
      help: "Live workers minus quorum; below 0 the map is frozen.",
      registers: r,
    }),
    quorumLost: new Gauge({
      name: "berth_operator_quorum_lost",
      help: "1 while fewer workers than the quorum are live (nothing is reassigned).",
      registers: r,
    }),
    shardsUnassigned: new Gauge({
      name: "berth_operator_shards_unassigned",
      help: "Shards with no owner.",
      registers: r,
    }),
    shardsMoving: new Gauge({
      name: "berth_operator_shards_moving",
      help: "Shards draining or recovering.",
      registers: r,
    }),
    shardMoves: new Counter({
      name: "berth_operator_shard_changes_total",
      help: "Shard changes published, by kind (assigned, taken-over, draining, handed-off, drain-cancelled).",
      labelNames: ["kind"],
      registers: r,
    }),
    statusWrites: new Counter({
      name: "berth_operator_status_writes_total",
      help: "Status writes to kube-apiserver, by resource and result.",
      labelNames: ["resource", "result"],
      registers: r,
    }),
    handOffSeconds: new Histogram({
      name: "berth_operator_handoff_seconds",
      help: "Hand-off of a live owner's shard: from publishing it DRAINING to its new owner reporting it serving.",
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: r,
    }),
    memberTransitions: new Counter({
      name: "berth_operator_member_transitions_total",
      help: "Worker membership changes seen by the leading operator, by new state (live: its Lease is renewed again or appeared; dead: its Lease expired; left: its Lease was deleted). Frequent dead ones are Lease flapping.",
      labelNames: ["to"],
      registers: r,
    }),
  };
}

/**
 * Times hand-offs: from the map that marks a shard DRAINING to the first map (and
 * reports) where its new owner serves it. A cancelled drain is forgotten; a drain whose
 * owner died on the way and whose shard was taken over ends when the taker serves.
 */
export class HandOffTimer {
  readonly #started = new Map<number, { readonly at: number; to: string | undefined }>();
  readonly #observe: (seconds: number) => void;
  readonly #now: () => number;

  /**
   * @param observe called with each finished hand-off's duration in seconds
   * @param now a monotonic clock in ms
   */
  constructor(observe: (seconds: number) => void, now: () => number) {
    this.#observe = observe;
    this.#now = now;
  }

  /** Hand-offs started and not yet finished. */
  get inProgress(): number {
    return this.#started.size;
  }

  /** Notes the changes of a published map. */
  published(changes: readonly ShardChange[]): void {
    for (const c of changes) {
      switch (c.kind) {
        case "draining":
          if (!this.#started.has(c.shard))
            this.#started.set(c.shard, { at: this.#now(), to: undefined });
          break;
        case "drain-cancelled":
          this.#started.delete(c.shard);
          break;
        case "handed-off":
        case "taken-over": {
          const s = this.#started.get(c.shard);
          if (s !== undefined) s.to = c.to;
          break;
        }
        case "assigned":
          break;
      }
    }
  }

  /**
   * Ends every hand-off whose new owner serves its shard.
   *
   * @param map the current map
   * @param serving whether a shard's owner reports it serving
   */
  observed(map: internal.ShardMap, serving: (shard: number) => boolean): void {
    for (const [shard, s] of this.#started) {
      if (s.to === undefined) continue;
      const now = map.shards[shard];
      if (now?.owner === s.to && serving(shard)) {
        this.#started.delete(shard);
        this.#observe((this.#now() - s.at) / 1000);
      }
    }
  }
}

/**
 * Counts membership transitions between successive observations: live → dead (its
 * Lease expired), dead → live and new → live, and gone (its Lease deleted, as a worker
 * does when it leaves).
 */
export class MemberTransitions {
  #last: Map<string, boolean> | undefined;
  readonly #count: (to: "live" | "dead" | "left") => void;

  /** @param count called once per transition */
  constructor(count: (to: "live" | "dead" | "left") => void) {
    this.#count = count;
  }

  /** Compares the members now with the previous observation (the first one only sets the baseline). */
  observe(members: readonly { readonly id: string; readonly live: boolean }[]): void {
    const next = new Map(members.map((m) => [m.id, m.live]));
    const last = this.#last;
    this.#last = next;
    if (last === undefined) return;
    for (const [id, live] of next) {
      const was = last.get(id);
      if (was === true && !live) this.#count("dead");
      else if (was !== true && live) this.#count("live");
    }
    for (const [id, was] of last) if (was && !next.has(id)) this.#count("left");
  }
}
