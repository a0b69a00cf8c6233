// The replicated read model: every pool's public counters, the highest version wins.
import type { internal } from "@berth/proto";
import { type LabelSelector, matchesLabels } from "@berth/proto";
import { decodePageToken, encodePageToken } from "./page-token.js";

/** Page size used when a query asks for 0 (as GetAvailability's `page_size` does). */
export const DEFAULT_PAGE_SIZE = 100;
/** Largest page a query may ask for. */
export const MAX_PAGE_SIZE = 1000;

/** One pool in the replica: its counters and when this node last had them confirmed. */
export interface ReplicaEntry {
  /** The pool's counters at the highest version this node has seen. Treat as immutable. */
  readonly counters: internal.PoolCounters;
  /**
   * When these counters were last confirmed (a newer version, or the same version
   * again by anti-entropy), in this replica's clock — never the sender's.
   */
  readonly confirmedAtMs: number;
}

/** How {@link Replica.apply} dates the entries it accepts or refreshes. */
export interface ApplyOptions {
  /**
   * True when the entries come from a node that is not their owner (a Pull answer).
   * Their `confirmedAt` then carries when the relaying node last had them confirmed;
   * the replica keeps that (capped at now) instead of now, so relaying an old entry
   * never makes it look fresh. Default false: entries are dated now.
   */
  readonly relayed?: boolean;
}

/** A GetAvailability query over the replica. */
export interface AvailabilityQuery {
  /** Only pools whose labels match; absent matches every pool. */
  readonly selector?: LabelSelector;
  /**
   * Only pools that have a window overlapping the half-open `[startMs, endMs)`; pools
   * without a window do not match a window filter. Absent: no window filter.
   */
  readonly window?: { readonly startMs: number; readonly endMs: number };
  /**
   * Only pools with at least this many available units; 0 (or less) means 1. A pool
   * whose window has ended (by this replica's clock) has none: it takes no reserve.
   */
  readonly minUnits: number;
  /** Include closed pools (they have no available units, so `minUnits` does not apply to them). */
  readonly includeClosed: boolean;
  /** 1 to {@link MAX_PAGE_SIZE}; 0 means {@link DEFAULT_PAGE_SIZE}. */
  readonly pageSize: number;
  /** `nextPageToken` of the previous page; empty for the first page. */
  readonly pageToken: string;
}

/** One pool in an {@link AvailabilityPage}. */
export interface AvailablePool {
  readonly counters: internal.PoolCounters;
  /** max(0, capacity - reserved); 0 when closed or when its window has ended. */
  readonly available: number;
  /** How long ago (ms) the counters were last confirmed, by this replica's clock. */
  readonly staleMs: number;
}

/** One page of a query's answer. */
export interface AvailabilityPage {
  /** Matching pools, ordered by pool id (UTF-16 code unit order). */
  readonly pools: AvailablePool[];
  /** Token for the next page; empty on the last page. */
  readonly nextPageToken: string;
  /** The largest `staleMs` on this page; 0 for an empty page. */
  readonly maxStaleMs: number;
}

/** Thrown when a query's page size is not an integer from 0 to {@link MAX_PAGE_SIZE}. */
export class InvalidPageSizeError extends Error {
  override readonly name = "InvalidPageSizeError";
  readonly pageSize: number;
  constructor(pageSize: number) {
    super(
      `page size must be an integer from 1 to ${MAX_PAGE_SIZE} (0 means ${DEFAULT_PAGE_SIZE}); got ${pageSize}`,
    );
    this.pageSize = pageSize;
  }
}

class Slot implements ReplicaEntry {
  readonly id: string;
  counters: internal.PoolCounters;
  confirmedAtMs: number;
  // Derived from counters once per version, so queries do no conversions.
  hasWindow = false;
  startMs = Number.NEGATIVE_INFINITY;
  endMs = Number.POSITIVE_INFINITY;
  available = 0;

  constructor(counters: internal.PoolCounters, confirmedAtMs: number) {
    this.id = counters.pool;
    this.counters = counters;
    this.confirmedAtMs = confirmedAtMs;
    this.derive();
  }

  replace(counters: internal.PoolCounters, confirmedAtMs: number): void {
    this.counters = counters;
    this.confirmedAtMs = confirmedAtMs;
    this.derive();
  }

  private derive(): void {
    const c = this.counters;
    this.hasWindow = c.window !== undefined;
    this.startMs = timestampMs(c.window?.start) ?? Number.NEGATIVE_INFINITY;
    this.endMs = timestampMs(c.window?.end) ?? Number.POSITIVE_INFINITY;
    this.available = c.closed ? 0 : Math.max(0, c.capacity - c.reserved);
  }
}

/**
 * A node's replica of every pool's public counters. An entry is replaced only by a
 * strictly higher version (so a stale former owner can never overwrite a newer
 * value, whatever the order of arrival); the same version again only refreshes its
 * confirmation time. Pools are never removed: a retired pool stays as its tombstone
 * (`deleted`), which queries never list and which only a higher version (the pool
 * re-created) replaces, so a late message cannot bring the retired pool back. Queries page through a sorted index
 * of pool ids, so a page costs O(log n + pools scanned).
 */
export class Replica {
  readonly #now: () => number;
  readonly #slots = new Map<string, Slot>();
  /** Every slot in ascending code-unit order of pool id, as of the last read. */
  #sorted: Slot[] = [];
  /**
   * Pools added since, merged on the next read: a burst of new pools (a Pull, a
   * worker recovering its shards) costs one sort and one merge, not one insert each.
   */
  #added: Slot[] = [];

  /**
   * @param now this replica's clock in ms. Use wall-clock time (`Date.now`) when the
   *   replica serves Pull: relayed entries carry their confirmation time to other nodes.
   */
  constructor(now: () => number) {
    this.#now = now;
  }

  /** Number of pools in the replica. */
  get size(): number {
    return this.#slots.size;
  }

  /**
   * The largest `staleMs` over every pool but retired ones (ms since its counters were
   * last confirmed by their owner); 0 for an empty replica. O(pools).
   */
  maxStaleMs(): number {
    const now = this.#now();
    let oldest = now;
    for (const slot of this.#slots.values()) {
      if (!slot.counters.deleted && slot.confirmedAtMs < oldest) oldest = slot.confirmedAtMs;
    }
    return Math.max(0, now - oldest);
  }

  /** The entry of `pool`, if the replica has one. */
  get(pool: string): ReplicaEntry | undefined {
    return this.#slots.get(pool);
  }

  /**
   * Merges `entries`: a pool's entry is replaced only by a higher version; an equal
   * version refreshes its confirmation time; a lower one is ignored, as are entries
   * without a pool id or with a version that is not a non-negative integer.
   * @returns how many entries were accepted (new pools or higher versions).
   */
  apply(entries: Iterable<internal.PoolCounters>, options: ApplyOptions = {}): number {
    const now = this.#now();
    const relayed = options.relayed === true;
    let accepted = 0;
    for (const c of entries) {
      if (c.pool === "" || !Number.isSafeInteger(c.version) || c.version < 0) continue;
      const confirmedAtMs = relayed ? Math.min(now, timestampMs(c.confirmedAt) ?? now) : now;
      const slot = this.#slots.get(c.pool);
      if (slot === undefined) {
        const added = new Slot(c, confirmedAtMs);
        this.#slots.set(c.pool, added);
        this.#added.push(added);
        accepted++;
      } else if (c.version > slot.counters.version) {
        slot.replace(c, confirmedAtMs);
        accepted++;
      } else if (c.version === slot.counters.version && confirmedAtMs > slot.confirmedAtMs) {
        slot.confirmedAtMs = confirmedAtMs;
      }
    }
    return accepted;
  }

  /**
   * Every entry in pool-id order, starting after `afterPool` when given. The
   * iteration sees a snapshot of the index: pools added meanwhile are not visited.
   */
  *entries(afterPool?: string): IterableIterator<ReplicaEntry> {
    const sorted = this.#sortedSlots();
    for (
      let i = afterPool === undefined ? 0 : upperBound(sorted, afterPool);
      i < sorted.length;
      i++
    ) {
      yield sorted[i] as Slot;
    }
  }

  /**
   * One page of the pools matching `query`, in pool-id order.
   * Throws {@link InvalidPageTokenError} for a token this replica did not issue and
   * {@link InvalidPageSizeError} for a page size out of range.
   */
  query(query: AvailabilityQuery): AvailabilityPage {
    const { pageSize: requested } = query;
    if (!Number.isInteger(requested) || requested < 0 || requested > MAX_PAGE_SIZE) {
      throw new InvalidPageSizeError(requested);
    }
    const pageSize = requested === 0 ? DEFAULT_PAGE_SIZE : requested;
    const after = query.pageToken === "" ? undefined : decodePageToken(query.pageToken);
    const sorted = this.#sortedSlots();
    const start = after === undefined ? 0 : upperBound(sorted, after);
    const minUnits = Math.max(1, query.minUnits);
    const windowed = query.window !== undefined;
    const qStart = query.window?.startMs ?? Number.NEGATIVE_INFINITY;
    const qEnd = query.window?.endMs ?? Number.POSITIVE_INFINITY;
    const { selector, includeClosed } = query;
    const now = this.#now();

    const pools: AvailablePool[] = [];
    let maxStaleMs = 0;
    let more = false;
    for (let i = start; i < sorted.length; i++) {
      const slot = sorted[i] as Slot;
      const c = slot.counters;
      if (c.deleted) continue;
      const available = slot.endMs <= now ? 0 : slot.available;
      if (c.closed ? !includeClosed : available < minUnits) continue;
      if (windowed && !(slot.hasWindow && slot.startMs < qEnd && qStart < slot.endMs)) continue;
      if (selector !== undefined && !matchesLabels(selector, c.labels)) continue;
      if (pools.length === pageSize) {
        more = true;
        break;
      }
      const staleMs = Math.max(0, now - slot.confirmedAtMs);
      if (staleMs > maxStaleMs) maxStaleMs = staleMs;
      pools.push({ counters: c, available, staleMs });
    }
    const last = pools.at(-1);
    return {
      pools,
      nextPageToken: more && last !== undefined ? encodePageToken(last.counters.pool) : "",
      maxStaleMs,
    };
  }

  /** The sorted index, with pools added since the last read merged in. */
  #sortedSlots(): readonly Slot[] {
    const added = this.#added;
    if (added.length === 0) return this.#sorted;
    this.#added = [];
    added.sort(compareSlots);
    const old = this.#sorted;
    const merged = new Array<Slot>(old.length + added.length);
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < old.length && j < added.length) {
      const a = old[i] as Slot;
      const b = added[j] as Slot;
      if (a.id < b.id) {
        merged[k++] = a;
        i++;
      } else {
        merged[k++] = b;
        j++;
      }
    }
    while (i < old.length) merged[k++] = old[i++] as Slot;
    while (j < added.length) merged[k++] = added[j++] as Slot;
    // Never mutated once built, so an `entries()` iteration keeps its snapshot.
    this.#sorted = merged;
    return merged;
  }
}

function compareSlots(a: Slot, b: Slot): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Index of the first slot whose id is greater than `id` in the sorted `slots`. */
function upperBound(slots: readonly Slot[], id: string): number {
  let lo = 0;
  let hi = slots.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((slots[mid] as Slot).id <= id) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
/** Milliseconds since the epoch of a protobuf Timestamp; undefined when absent. */
export function timestampMs(
  t: { readonly seconds: number; readonly nanos: number } | undefined,
): number | undefined {
  return t === undefined ? undefined : t.seconds * 1000 + Math.floor(t.nanos / 1_000_000);
}
