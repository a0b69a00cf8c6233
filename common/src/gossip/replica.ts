// The replicated read model: every pool's public counters, the highest version wins.
import type { internal } from "@berth/proto";
import {
  DEFAULT_PAGE_SIZE,
  type LabelSelector,
  MAX_PAGE_SIZE,
  matchesLabels,
  timestampMs,
} from "@berth/proto";
import { BUCKET_COUNT, bucketOfHash, DigestSum, fnv1a32 } from "./digest.js";
import { LabelIndex } from "./label-index.js";
import { decodePageToken, encodePageToken } from "./page-token.js";
import { type SharedWindow, SharedWindows } from "./shared-windows.js";

/** One pool in the replica: its counters and when this node last had them confirmed. */
export interface ReplicaEntry {
  /**
   * The pool's counters at the highest version this node has seen: the object applied
   * (when `decoded`, with shared label values and window written in), or a copy of it
   * carrying the window every entry with an equal window shares. Treat as immutable.
   */
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
  /**
   * Node id of the entries' owner (a Push's sender, or this node for what it
   * publishes itself): entries accepted, or equal to ours, count as that node's in
   * the digests {@link Replica.compareDigests} checks.
   */
  readonly from?: string;
  /**
   * True when the entries were decoded for this call (a Push or Pull message) and
   * nothing else holds them: the replica then keeps them with the window and label
   * value strings its other entries already hold written in (each distinct value is
   * kept once, not once per pool). Default false: the entries are not written (one
   * whose window is another, equal object is kept as a copy carrying the shared one).
   */
  readonly decoded?: boolean;
}

/** Options of a {@link Replica}. */
export interface ReplicaOptions {
  /**
   * Index pools by label so a selector naming a label (`=`, `in`, `exists`) visits only
   * its pools. Default true; false scans every pool (the reference the index is
   * tested against).
   */
  readonly labelIndex?: boolean;
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

/** Replica-wide digest of one bucket, and when a Pull last found it matching. */
class GlobalBucket {
  readonly sum = new DigestSum();
  confirmedAtMs = Number.NEGATIVE_INFINITY;
  /** Slots whose `tick` is at most this were covered by that confirmation. */
  confirmedTick = -1;
}

/**
 * The entries of one bucket that one node delivered last (so counts as their owner),
 * their digest, and when that node's Digest last matched it.
 */
class OwnerBucket {
  readonly node: string;
  readonly bucket: number;
  readonly sum = new DigestSum();
  readonly slots = new Set<Slot>();
  confirmedAtMs = Number.NEGATIVE_INFINITY;
  confirmedTick = -1;
  constructor(node: string, bucket: number) {
    this.node = node;
    this.bucket = bucket;
  }
}

class Slot implements ReplicaEntry {
  readonly id: string;
  /**
   * The id's fnv1a32 as a signed 32-bit integer: a small integer lives in the field
   * itself, while half of all uint32 values would need a number box each.
   */
  readonly #hash: number;
  readonly global: GlobalBucket;
  counters: internal.PoolCounters;
  /** Confirmation of this very entry (a Push or Pull that carried it). */
  ownConfirmedAtMs: number;
  /** Replica tick of the last change of version or owner; see {@link confirmedAtMs}. */
  tick: number;
  /** The node that delivered this version last, by bucket; undefined when unknown. */
  owner: OwnerBucket | undefined;
  /**
   * The counters' window with its bounds in ms, shared by every slot with an equal
   * window (`counters.window` is its `window`); undefined without a window.
   */
  window: SharedWindow | undefined;
  /** Derived from counters once per version, so queries do no arithmetic. */
  available = 0;

  constructor(
    counters: internal.PoolCounters,
    window: SharedWindow | undefined,
    confirmedAtMs: number,
    tick: number,
    poolHash: number,
    global: GlobalBucket,
  ) {
    this.id = counters.pool;
    this.#hash = poolHash | 0;
    this.global = global;
    this.counters = counters;
    this.window = window;
    this.ownConfirmedAtMs = confirmedAtMs;
    this.tick = tick;
    this.owner = undefined;
    this.derive();
  }

  /** fnv1a32 of the pool id. */
  get poolHash(): number {
    return this.#hash >>> 0;
  }

  /**
   * The latest of: its own confirmation, its owner's last matching Digest of its
   * bucket, a Pull's matching digest of its bucket — the last two only if they were
   * taken after this version (and owner) arrived.
   */
  get confirmedAtMs(): number {
    let t = this.ownConfirmedAtMs;
    const o = this.owner;
    if (o !== undefined && this.tick <= o.confirmedTick && o.confirmedAtMs > t) t = o.confirmedAtMs;
    const g = this.global;
    if (this.tick <= g.confirmedTick && g.confirmedAtMs > t) t = g.confirmedAtMs;
    return t;
  }

  replace(
    counters: internal.PoolCounters,
    window: SharedWindow | undefined,
    confirmedAtMs: number,
    tick: number,
  ): void {
    this.counters = counters;
    this.window = window;
    this.ownConfirmedAtMs = confirmedAtMs;
    this.tick = tick;
    this.derive();
  }

  /** Its digest bucket (derived, not kept: one field less per pool). */
  get bucket(): number {
    return bucketOfHash(this.poolHash);
  }

  private derive(): void {
    const c = this.counters;
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
  #tick = 0;
  readonly #global: GlobalBucket[] = Array.from({ length: BUCKET_COUNT }, () => new GlobalBucket());
  /** Per node id, per bucket: the entries that node delivered last. */
  readonly #owners = new Map<string, (OwnerBucket | undefined)[]>();
  /** The distinct windows of the slots. */
  readonly #windows = new SharedWindows();
  /** Pools by label; undefined when disabled (every selector query scans). */
  readonly #labels: LabelIndex<Slot> | undefined;
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
  constructor(now: () => number, options: ReplicaOptions = {}) {
    this.#now = now;
    this.#labels = options.labelIndex === false ? undefined : new LabelIndex();
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
   * without a pool id or with a version that is not a non-negative integer. With
   * `options.from`, every entry accepted or equal to ours counts as that node's (its
   * owner's) for digests; a higher version from anyone else clears the owner.
   * @returns how many entries were accepted (new pools or higher versions).
   */
  apply(entries: Iterable<internal.PoolCounters>, options: ApplyOptions = {}): number {
    const now = this.#now();
    const relayed = options.relayed === true;
    const from = options.from;
    const decoded = options.decoded === true;
    const share = decoded ? this.#labels : undefined;
    let accepted = 0;
    for (const c of entries) {
      if (c.pool === "" || !Number.isSafeInteger(c.version) || c.version < 0) continue;
      const confirmedAtMs = relayed ? Math.min(now, timestampMs(c.confirmedAt) ?? now) : now;
      const slot = this.#slots.get(c.pool);
      if (slot === undefined) {
        const window = this.#shareWindow(c, undefined);
        const counters = withWindow(c, window, decoded);
        const poolHash = fnv1a32(c.pool);
        const global = this.#global[bucketOfHash(poolHash)] as GlobalBucket;
        share?.shareValues(c.labels);
        const added = new Slot(counters, window, confirmedAtMs, ++this.#tick, poolHash, global);
        global.sum.add(poolHash, c.version);
        this.#slots.set(c.pool, added);
        this.#added.push(added);
        this.#labels?.add(added);
        if (from !== undefined) this.#attribute(added, from);
        accepted++;
      } else if (c.version > slot.counters.version) {
        const old = slot.counters.version;
        slot.global.sum.remove(slot.poolHash, old);
        slot.global.sum.add(slot.poolHash, c.version);
        const owner = slot.owner;
        if (owner !== undefined) {
          owner.sum.remove(slot.poolHash, old);
          owner.sum.add(slot.poolHash, c.version);
        }
        const sameAsBefore = sameLabels(slot.counters.labels, c.labels);
        const relabel = this.#labels !== undefined && !sameAsBefore;
        if (relabel) this.#labels?.remove(slot);
        // A decoded entry keeps the labels object it had when equal, else shares values.
        if (decoded && sameAsBefore) c.labels = slot.counters.labels;
        else if (relabel) share?.shareValues(c.labels);
        const replaced = slot.window;
        const window = this.#shareWindow(c, replaced);
        slot.replace(withWindow(c, window, decoded), window, confirmedAtMs, ++this.#tick);
        if (replaced !== undefined) this.#windows.release(replaced);
        if (relabel) this.#labels?.add(slot);
        if (from !== undefined) this.#attribute(slot, from);
        else this.#detach(slot);
        accepted++;
      } else if (c.version === slot.counters.version) {
        if (confirmedAtMs > slot.ownConfirmedAtMs) slot.ownConfirmedAtMs = confirmedAtMs;
        if (from !== undefined) this.#attribute(slot, from);
      }
    }
    return accepted;
  }

  /**
   * The shared copy of `c`'s window, acquired for a slot that will hold `c`;
   * `held`: the one the slot holds now.
   */
  #shareWindow(c: internal.PoolCounters, held: SharedWindow | undefined): SharedWindow | undefined {
    return c.window === undefined ? undefined : this.#windows.acquire(c.window, held);
  }

  /** Distinct windows among the entries (what they share; for tests). */
  get distinctWindows(): number {
    return this.#windows.size;
  }

  /** Counts `slot` (at its version) as `node`'s. */
  #attribute(slot: Slot, node: string): void {
    if (slot.owner?.node === node) return;
    this.#detach(slot);
    let buckets = this.#owners.get(node);
    if (buckets === undefined) {
      buckets = new Array<OwnerBucket | undefined>(BUCKET_COUNT);
      this.#owners.set(node, buckets);
    }
    let ob = buckets[slot.bucket];
    if (ob === undefined) {
      ob = new OwnerBucket(node, slot.bucket);
      buckets[slot.bucket] = ob;
    }
    ob.sum.add(slot.poolHash, slot.counters.version);
    ob.slots.add(slot);
    slot.owner = ob;
    slot.tick = ++this.#tick;
  }

  #detach(slot: Slot): void {
    const ob = slot.owner;
    if (ob === undefined) return;
    ob.sum.remove(slot.poolHash, slot.counters.version);
    ob.slots.delete(slot);
    slot.owner = undefined;
    slot.tick = ++this.#tick;
  }

  /**
   * Compares a node's Digest (every bucket it owns pools in) with the entries this
   * replica counts as that node's: a matching bucket is confirmed now (its entries'
   * `confirmedAtMs` moves to now); entries in buckets the node no longer lists stop
   * counting as its. O(buckets listed), plus the entries let go of.
   * @returns the buckets whose digest differs: the node should push them whole.
   */
  compareDigests(node: string, digests: readonly internal.BucketDigest[]): number[] {
    const now = this.#now();
    const buckets = this.#owners.get(node);
    const listed = new Uint8Array(BUCKET_COUNT);
    const differing: number[] = [];
    for (const d of digests) {
      const b = d.bucket;
      if (!Number.isInteger(b) || b < 0 || b >= BUCKET_COUNT || listed[b] === 1) continue;
      listed[b] = 1;
      const ob = buckets?.[b];
      if (ob?.sum.equals(d)) {
        ob.confirmedAtMs = now;
        ob.confirmedTick = this.#tick;
      } else if (ob !== undefined || d.count !== 0) {
        differing.push(b);
      }
    }
    if (buckets !== undefined) {
      for (let b = 0; b < BUCKET_COUNT; b++) {
        const ob = buckets[b];
        if (listed[b] === 1 || ob === undefined) continue;
        for (const slot of [...ob.slots]) this.#detach(slot);
      }
    }
    return differing;
  }

  /**
   * After {@link apply} of a Push from `node` that holds every entry it owns in
   * `buckets`: entries of those buckets counted as the node's but not in `entries` at
   * their version stop counting as its, and the buckets are confirmed now.
   */
  completeBuckets(
    node: string,
    buckets: readonly number[],
    entries: readonly internal.PoolCounters[],
  ): void {
    const owned = this.#owners.get(node);
    if (owned === undefined) return;
    const pushed = new Map<string, number>();
    for (const c of entries) pushed.set(c.pool, c.version);
    const now = this.#now();
    for (const b of buckets) {
      if (!Number.isInteger(b) || b < 0 || b >= BUCKET_COUNT) continue;
      const ob = owned[b];
      if (ob === undefined) continue;
      for (const slot of [...ob.slots]) {
        if (pushed.get(slot.id) !== slot.counters.version) this.#detach(slot);
      }
      ob.confirmedAtMs = now;
      ob.confirmedTick = this.#tick;
    }
  }

  /** Digests of the whole replica, one per bucket (empty buckets included). O(buckets). */
  bucketDigests(): internal.BucketDigest[] {
    return this.#global.map((g, b) => g.sum.toMessage(b));
  }

  /**
   * Compares a caller's {@link bucketDigests} with this replica's: the buckets that
   * differ, and for those that match, the oldest confirmation time of their entries
   * (retired pools aside) here. O(pools).
   */
  compareBucketDigests(digests: readonly internal.BucketDigest[]): {
    readonly differing: ReadonlySet<number>;
    readonly matching: { readonly bucket: number; readonly confirmedAtMs: number }[];
  } {
    const differing = new Set<number>();
    for (let b = 0; b < BUCKET_COUNT; b++) differing.add(b);
    const match = new Uint8Array(BUCKET_COUNT);
    for (const d of digests) {
      const b = d.bucket;
      if (!Number.isInteger(b) || b < 0 || b >= BUCKET_COUNT) continue;
      if ((this.#global[b] as GlobalBucket).sum.equals(d)) {
        match[b] = 1;
        differing.delete(b);
      }
    }
    const oldest = new Float64Array(BUCKET_COUNT).fill(this.#now());
    for (const slot of this.#slots.values()) {
      if (match[slot.bucket] !== 1 || slot.counters.deleted) continue;
      const t = slot.confirmedAtMs;
      if (t < (oldest[slot.bucket] as number)) oldest[slot.bucket] = t;
    }
    const matching: { bucket: number; confirmedAtMs: number }[] = [];
    for (let b = 0; b < BUCKET_COUNT; b++) {
      if (match[b] === 1) matching.push({ bucket: b, confirmedAtMs: oldest[b] as number });
    }
    return { differing, matching };
  }

  /**
   * A Pull found `matching` buckets equal to the callee's as of `tick` (this
   * replica's {@link tick} when the request was sent): their entries count as confirmed
   * at the callee's time (capped at now).
   */
  confirmBuckets(
    matching: readonly { readonly bucket: number; readonly confirmedAtMs: number }[],
    tick: number,
  ): void {
    const now = this.#now();
    for (const m of matching) {
      const g = this.#global[m.bucket];
      if (g === undefined) continue;
      const at = Math.min(now, m.confirmedAtMs);
      if (at >= g.confirmedAtMs) {
        g.confirmedAtMs = at;
        g.confirmedTick = tick;
      }
    }
  }

  /** A counter that grows with every change of the replica (see {@link confirmBuckets}). */
  get tick(): number {
    return this.#tick;
  }

  /** The bucket of each entry (for Pull answers that skip matching buckets). */
  bucketOfEntry(entry: ReplicaEntry): number {
    return (entry as Slot).bucket;
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
    const all = this.#sortedSlots();
    // A selector naming a label walks only that label's pools (same order, same filters).
    const sorted =
      (query.selector === undefined
        ? undefined
        : this.#labels?.candidates(query.selector, all.length / 2)) ?? all;
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
      const w = slot.window;
      const available = w !== undefined && w.endMs <= now ? 0 : slot.available;
      if (c.closed ? !includeClosed : available < minUnits) continue;
      if (windowed && !(w !== undefined && w.startMs < qEnd && qStart < w.endMs)) continue;
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

/**
 * `c` carrying the shared window when its own is another (equal) object: written into
 * `c` when it is the replica's (`decoded`), else a copy.
 */
function withWindow(
  c: internal.PoolCounters,
  window: SharedWindow | undefined,
  decoded: boolean,
): internal.PoolCounters {
  if (window === undefined || c.window === window.window) return c;
  if (!decoded) return { ...c, window: window.window };
  c.window = window.window;
  return c;
}

function sameLabels(
  a: Readonly<Record<string, string>>,
  b: Readonly<Record<string, string>>,
): boolean {
  if (a === b) return true;
  let n = 0;
  for (const k in a) {
    if (a[k] !== b[k] || !Object.hasOwn(b, k)) return false;
    n++;
  }
  for (const _ in b) n--;
  return n === 0;
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
