// Conversions between the domain's pool view and the wire messages.
import { type internal, timestampOf, type v1 } from "@berth/proto";
import type { PoolView, TimeWindowMs } from "../domain/pool.js";

/**
 * The wire TimeWindow of each domain window, made once: the domain shares one window
 * object among pools with equal windows, and the gossip replica keeps every pool's
 * counters, so they share its wire form too. A WeakMap, so an entry lives exactly as
 * long as its domain window.
 */
const wireWindows = new WeakMap<TimeWindowMs, v1.TimeWindow>();

/** The wire TimeWindow of a domain window (frozen, and shared: treat as read-only). */
export function windowToWire(w: TimeWindowMs | undefined): v1.TimeWindow | undefined {
  if (w === undefined) return undefined;
  let wire = wireWindows.get(w);
  if (wire === undefined) {
    wire = Object.freeze({
      start: Object.freeze(timestampOf(w.startMs)),
      end: Object.freeze(timestampOf(w.endMs)),
    });
    wireWindows.set(w, wire);
  }
  return wire;
}

/** Where a pool is served, as GetPool and Configure report it. */
export interface Placement {
  readonly shard: number;
  readonly owner: string;
  readonly epoch: number;
}

/** The authoritative Pool message of a pool view. */
export function poolToWire(view: PoolView, placement: Placement): v1.Pool {
  return {
    pool: view.pool,
    capacity: view.capacity,
    reserved: view.reserved,
    available: view.available,
    labels: { ...view.labels },
    window: windowToWire(view.window),
    closed: view.closed,
    version: view.version,
    activeReservations: view.activeReservations,
    overCommitted: view.overCommitted,
    shard: placement.shard,
    owner: placement.owner,
    epoch: placement.epoch,
  };
}

/**
 * The gossip counters of a pool view, confirmed at `nowMs`; a tombstone (`deleted`)
 * for a retired pool. Their `labels` are the view's own object, not a copy (the replica
 * keeps the counters of every pool): treat them as read-only, as everything does.
 */
export function countersOf(view: PoolView, nowMs: number): internal.PoolCounters {
  return {
    pool: view.pool,
    capacity: view.capacity,
    reserved: view.reserved,
    labels: view.labels,
    window: windowToWire(view.window),
    closed: view.closed,
    version: view.version,
    confirmedAt: timestampOf(nowMs),
    deleted: view.retired,
  };
}
