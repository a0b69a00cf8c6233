// Which shards this worker serves, following the ShardMap: fence, warm-load, serve, drain.
import { SpecDigest } from "@berth/common";
import {
  type BackoffPolicy,
  backoffDelayMs,
  internal,
  type ShardMapSource,
  shardOf,
} from "@berth/proto";
import type { Logger } from "pino";
import type { PoolCommand, PoolView } from "../domain/pool.js";
import type {
  AnsweredOutcome,
  EntityCommand,
  EntityFailure,
  OkOutcome,
  RejectedOutcome,
  ReplyTo,
} from "../entity/entity-outcome.js";
import { DEFAULT_BACKOFF, delay } from "../entity/journal-retry.js";
import { type EntityMetrics, PoolEntity, type PoolEntitySettings } from "../entity/pool-entity.js";
import { JournalUnavailableError } from "../journal/errors.js";
import type { Journal, LoadedPool, RecoveredShard } from "../journal/journal.js";
import type {
  CommandFailure,
  CommandOutcome,
  ExecuteResult,
  NotOwnerOutcome,
} from "./command-outcome.js";

/** How long a caller should wait before retrying a shard that is recovering. */
export const SHARD_RECOVERING_RETRY_MS = 50;
/** How long a caller should wait before retrying a shard that is being handed off. */
export const SHARD_DRAINING_RETRY_MS = 50;
/**
 * How long a command waits for this worker's ShardMap to reach the shard epoch the
 * caller's map has (the caller saw a newer map first) before it answers NOT_OWNER.
 */
export const MAP_CATCH_UP_MS = 250;
/**
 * Most pools per held shard remembered as absent from the journal (oldest forgotten
 * first). A command for one of them answers at once, without a journal read.
 */
export const MAX_ABSENT_POOLS_PER_SHARD = 1024;

/** Observations of the ownership layer (the worker turns them into metrics). */
export interface OwnershipMetrics extends EntityMetrics {
  /** A shard was recovered (every pool fenced and loaded) in `seconds`. */
  observeRecovery(seconds: number): void;
}

/** Options of {@link ShardOwnership}. */
export interface ShardOwnershipOptions {
  /** This worker's member id in the ShardMap. */
  readonly nodeId: string;
  readonly journal: Journal;
  readonly source: ShardMapSource;
  readonly logger: Logger;
  /** Snapshot every this many events per pool. Default 100. */
  readonly snapshotEvery?: number;
  /** Most events per group-commit append. Default 256. */
  readonly maxBatchEvents?: number;
  /** Pools of one shard loaded at once during recovery. Default 16. */
  readonly recoveryConcurrency?: number;
  readonly backoff?: BackoffPolicy;
  readonly metrics?: OwnershipMetrics;
  /** Called with a pool's counters after every durable change (and after it loads). */
  readonly onCommitted?: (view: PoolView) => void;
}

type ShardStatus = "recovering" | "active" | "draining";

interface HeldShard {
  readonly shard: number;
  readonly epoch: number;
  status: ShardStatus;
  readonly entities: Map<string, PoolEntity>;
  readonly acquiredAt: number;
  /** The specs in force (ShardReport.spec_digest) while known; cleared by any change. */
  specDigest: string | undefined;
  /**
   * Pools a journal read at this epoch found never configured, oldest first, at most
   * {@link MAX_ABSENT_POOLS_PER_SHARD}. While this worker holds the shard at this
   * epoch only it creates pools here (through configure, which drops the entry), so
   * the answer stays true; a new epoch is a new HeldShard and starts empty.
   */
  readonly absent: Set<string>;
}

/** What this worker holds, shard by shard, as of one moment (what WatchShards reports). */
export interface ShardHoldings {
  /** Revision of the newest ShardMap applied; 0 before the first. */
  readonly mapRevision: number;
  /**
   * By shard number: RECOVERING or SERVING for a shard held at its epoch, DRAINED for
   * one the map marks DRAINING (owner: this worker) that takes no command and has no
   * append in flight. A shard this worker neither holds nor drained is absent, and so
   * is one it has let go of while its last appends finish.
   */
  readonly shards: readonly internal.ShardReport[];
}

/** Counts for the gauges. */
export interface OwnershipStats {
  readonly shardsOwned: number;
  readonly shardsRecovering: number;
  /** Shards marked DRAINING in the map that this worker still holds (moving away). */
  readonly shardsDraining: number;
  readonly poolsLoaded: number;
}

/**
 * Follows the ShardMap. A shard whose owner is this worker and whose state is ACTIVE
 * is acquired: every pool recorded in it is fenced at the shard's epoch and then
 * loaded (warm ownership) — commands meanwhile answer UNAVAILABLE/SHARD_RECOVERING —
 * and then served. A shard that leaves (another owner, DRAINING, UNASSIGNED, or a
 * newer epoch) stops taking commands at once (NOT_OWNER), lets its in-flight appends
 * finish and drops its entities. Moves cost one fence + load per pool, no more (with
 * a journal that has `recoverShard`, one fence and one load for the whole shard).
 * A serving shard reports a digest of the specs in force (ShardReport.spec_digest).
 * {@link report} says what it holds, for whoever publishes the map.
 */
export class ShardOwnership {
  private readonly o: ShardOwnershipOptions;
  private readonly log: Logger;
  private readonly shards = new Map<number, HeldShard>();
  /** Shards let go of whose in-flight appends are still finishing. */
  private readonly releasing = new Map<HeldShard, Promise<void>>();
  private readonly listeners = new Set<() => void>();
  private map: internal.ShardMap | undefined;
  /** When the oldest shard still recovering was acquired; undefined when none is. */
  private recoveryStartedAt: number | undefined;
  private unsubscribe: (() => void) | undefined;
  private closed = false;

  /** One object for every entity (no closures per pool: a worker hosts 100,000). */
  private readonly entitySettings: PoolEntitySettings;

  constructor(options: ShardOwnershipOptions) {
    this.o = options;
    this.log = options.logger.child({ module: "ownership", node: options.nodeId });
    this.entitySettings = {
      journal: options.journal,
      logger: options.logger,
      fenceOnStart: true,
      ...(options.snapshotEvery !== undefined ? { snapshotEvery: options.snapshotEvery } : {}),
      ...(options.maxBatchEvents !== undefined ? { maxBatchEvents: options.maxBatchEvents } : {}),
      ...(options.backoff !== undefined ? { backoff: options.backoff } : {}),
      ...(options.metrics !== undefined ? { metrics: options.metrics } : {}),
      // Also while draining: a change committed then is as true as any (higher version wins).
      ...(options.onCommitted !== undefined ? { onCommitted: options.onCommitted } : {}),
      onSpecChanged: (e) => {
        const held = this.heldBy(e);
        if (held !== undefined) held.specDigest = undefined;
      },
      onFenced: (e) => {
        this.log.warn(
          { event: "ownership.pool_fenced", pool: e.pool, shard: e.shard, epoch: e.epoch },
          "pool fenced by a newer owner; this worker's shard map is stale",
        );
        this.forget(e);
      },
    };
  }

  /** Starts following the ShardMap source (applies its current map, if any, at once). */
  start(): void {
    if (this.unsubscribe !== undefined || this.closed) return;
    this.unsubscribe = this.o.source.subscribe((m) => this.apply(m));
    const current = this.o.source.current();
    if (current !== undefined) this.apply(current);
  }

  /** The ShardMap this worker follows, once known. */
  get shardMap(): internal.ShardMap | undefined {
    return this.map;
  }

  /**
   * Registers a listener called whenever a map is applied or a shard is acquired,
   * recovered or released (its appends finished): whenever {@link report} may change.
   */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Ready once the ShardMap is known and every owned shard is recovered. */
  readiness(): { ready: true } | { ready: false; reason: string } {
    if (this.closed) return { ready: false, reason: "worker is shutting down" };
    if (this.map === undefined) return { ready: false, reason: "shard map not known yet" };
    const recovering = [...this.shards.values()]
      .filter((s) => s.status === "recovering")
      .map((s) => s.shard)
      .sort((a, b) => a - b);
    if (recovering.length > 0) {
      const shown = recovering.slice(0, 20).join(", ");
      const more = recovering.length > 20 ? ", …" : "";
      const owned = this.countStatus("active") + recovering.length;
      return {
        ready: false,
        reason: `recovering ${recovering.length} of ${owned} owned shards: ${shown}${more}`,
      };
    }
    return { ready: true };
  }

  /** What this worker holds now, shard by shard (see {@link ShardHoldings}). */
  report(): ShardHoldings {
    const {
      SHARD_REPORT_STATE_RECOVERING,
      SHARD_REPORT_STATE_SERVING,
      SHARD_REPORT_STATE_DRAINED,
    } = internal.ShardReportState;
    const shards: internal.ShardReport[] = [];
    for (const h of this.shards.values()) {
      const serving = h.status === "active";
      shards.push({
        shard: h.shard,
        epoch: h.epoch,
        state: serving ? SHARD_REPORT_STATE_SERVING : SHARD_REPORT_STATE_RECOVERING,
        specDigest: serving ? this.specDigestOf(h) : "",
      });
    }
    const stillReleasing = new Set([...this.releasing.keys()].map((h) => h.shard));
    for (const a of this.map?.shards ?? []) {
      if (
        a.owner === this.o.nodeId &&
        a.state === internal.ShardState.SHARD_STATE_DRAINING &&
        !this.shards.has(a.shard) &&
        !stillReleasing.has(a.shard)
      ) {
        shards.push({
          shard: a.shard,
          epoch: a.epoch,
          state: SHARD_REPORT_STATE_DRAINED,
          specDigest: "",
        });
      }
    }
    shards.sort((x, y) => x.shard - y.shard);
    return { mapRevision: this.map?.revision ?? 0, shards };
  }

  /**
   * The digest of every existing pool of a serving shard with its spec in force, or ""
   * while any of its entities has no loaded state to tell. Kept until a spec changes
   * or an entity comes or goes; a report carries it as of the report (a spec changed
   * later shows in the next report, whatever else prompts that).
   */
  private specDigestOf(h: HeldShard): string {
    if (h.specDigest !== undefined) return h.specDigest;
    const digest = new SpecDigest();
    for (const e of h.entities.values()) {
      const { known, spec } = e.specInForce;
      if (!known) return "";
      if (spec !== undefined) digest.add(e.pool, spec);
    }
    h.specDigest = digest.toString();
    return h.specDigest;
  }

  /**
   * Shards this worker is not done with: held (recovering or serving), let go of with
   * appends still finishing, or drained and not moved away yet. 0 once it has none.
   */
  occupiedShards(): number {
    const shards = new Set(this.report().shards.map((r) => r.shard));
    for (const h of this.releasing.keys()) shards.add(h.shard);
    return shards.size;
  }

  /** Counts of owned shards and loaded pools. */
  stats(): OwnershipStats {
    let poolsLoaded = 0;
    for (const s of this.shards.values()) {
      for (const e of s.entities.values()) if (e.status === "ready") poolsLoaded++;
    }
    return {
      shardsOwned: this.countStatus("active") + this.countStatus("recovering"),
      shardsRecovering: this.countStatus("recovering"),
      shardsDraining: this.countStatus("draining"),
      poolsLoaded,
    };
  }

  /** Counters of every configured pool this worker serves (for gossip anti-entropy). */
  *ownedViews(): Iterable<PoolView> {
    for (const s of this.shards.values()) {
      if (s.status === "draining") continue;
      for (const e of s.entities.values()) {
        const v = e.view;
        if (v !== undefined) yield v;
      }
    }
  }

  /**
   * Routes a command to the pool's entity if this worker serves its shard; otherwise
   * answers where it lives. `deadline` is absolute ms (Date.now() clock). `callerEpoch`
   * is the shard's epoch in the caller's ShardMap (0 or undefined: not known): when it
   * is newer than this worker's map, the command waits up to {@link MAP_CATCH_UP_MS}
   * for this worker's map to catch up, and answers NOT_OWNER if it does not — a worker
   * never acts on an assignment its caller already knows to be superseded. Never rejects.
   */
  async execute<C extends EntityCommand>(
    pool: string,
    command: C,
    deadline?: number,
    callerEpoch?: number,
  ): Promise<ExecuteResult<C>> {
    const map = this.map;
    if (this.closed) {
      return {
        outcome: {
          kind: "unavailable",
          reason: "OWNER_UNAVAILABLE",
          message: "this worker is shutting down",
          retryDelayMs: SHARD_DRAINING_RETRY_MS,
        },
        shard: undefined,
        epoch: 0,
      };
    }
    if (map === undefined) {
      return {
        outcome: {
          kind: "unavailable",
          reason: "SHARD_RECOVERING",
          message: "this worker does not know the shard map yet",
          retryDelayMs: SHARD_RECOVERING_RETRY_MS,
        },
        shard: undefined,
        epoch: 0,
      };
    }
    const shard = shardOf(pool, map.shardCount);
    if (callerEpoch !== undefined && !(await this.mapReaches(shard, callerEpoch, deadline))) {
      const mine = this.map?.shards[shard]?.epoch ?? 0;
      return {
        outcome: {
          ...this.notOwner(
            shard,
            `this worker's shard map is behind the caller's (shard ${shard} at epoch ${mine} here, ${callerEpoch} in the caller's); retry`,
          ),
          retryDelayMs: SHARD_DRAINING_RETRY_MS,
        },
        shard,
        epoch: mine,
      };
    }
    const routed = await this.entityFor(pool, shard, command);
    if (!(routed instanceof PoolEntity))
      return { outcome: routed, shard, epoch: this.epochOf(shard) };
    const outcome = await routed.submit(command, deadline);
    if (outcome.kind === "not_owner") {
      if (routed.status === "fenced") this.forget(routed);
      return { outcome: this.notOwner(shard, outcome.message), shard, epoch: routed.epoch };
    }
    return { outcome, shard, epoch: routed.epoch };
  }

  /**
   * Stops following the map and drains every shard: queued commands answer
   * UNAVAILABLE (the gateway retries them elsewhere or later), in-flight appends finish.
   * Bounded by the appends' own timeouts. Idempotent.
   */
  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    const shutdown: EntityFailure = {
      kind: "unavailable",
      reason: "OWNER_UNAVAILABLE",
      message: "this worker is shutting down; retry with the same request",
      retryDelayMs: SHARD_DRAINING_RETRY_MS,
    };
    // One summary line for the whole shutdown, not two per shard (hundreds of lines).
    const held = [...this.shards.values()];
    if (held.length > 0) {
      this.log.info(
        { event: "ownership.shutdown_draining", shards: held.length },
        `worker shutting down; draining ${held.length} shards`,
      );
    }
    for (const h of held) this.release(h, "worker shutting down", shutdown, "debug");
    while (this.releasing.size > 0) await Promise.all([...this.releasing.values()]);
    if (held.length > 0) {
      this.log.info(
        { event: "ownership.shutdown_drained", shards: held.length },
        `${held.length} shards drained`,
      );
    }
  }

  private countStatus(status: ShardStatus): number {
    let n = 0;
    for (const s of this.shards.values()) if (s.status === status) n++;
    return n;
  }

  /**
   * Whether this worker's map has `shard` at `epoch` or newer, waiting for map changes
   * up to {@link MAP_CATCH_UP_MS} (or the deadline, if sooner) when it has not yet.
   */
  private mapReaches(shard: number, epoch: number, deadline?: number): Promise<boolean> {
    const reached = () => (this.map?.shards[shard]?.epoch ?? 0) >= epoch;
    if (reached()) return Promise.resolve(true);
    const waitMs = Math.min(MAP_CATCH_UP_MS, (deadline ?? Number.POSITIVE_INFINITY) - Date.now());
    if (!(waitMs > 0)) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        off();
        resolve(reached());
      };
      const timer = setTimeout(done, waitMs);
      const off = this.onChange(() => {
        if (reached() || this.closed) done();
      });
    });
  }

  private epochOf(shard: number): number {
    return this.shards.get(shard)?.epoch ?? this.map?.shards[shard]?.epoch ?? 0;
  }

  private async entityFor<C extends EntityCommand>(
    pool: string,
    shard: number,
    command: C,
  ): Promise<PoolEntity | CommandOutcome<C>> {
    const held = this.shards.get(shard);
    if (held === undefined || held.status === "draining") return this.notOwner(shard);
    if (held.status === "recovering") return recovering(shard);
    const known = held.entities.get(pool);
    if (known !== undefined) return known;
    if (command.type !== "configure") {
      // Not loaded by the warm recovery: either it does not exist (the usual case: answer
      // without creating anything in the journal) or it was created after the shard's
      // pools were listed. A read tells which, once per pool and epoch.
      if (held.absent.has(pool)) return absentOutcome(pool, command);
      let exists: boolean;
      try {
        const loaded = await this.o.journal.load(pool);
        exists = loaded.version > 0 || loaded.snapshot !== undefined;
      } catch (e: unknown) {
        if (!(e instanceof JournalUnavailableError)) {
          this.log.error({ err: e, pool, shard }, "pool lookup failed");
          return { kind: "internal", message: `pool ${pool} could not be read from the journal` };
        }
        return {
          kind: "unavailable",
          reason: "JOURNAL_UNAVAILABLE",
          message: `pool ${pool}: the journal is unavailable`,
          retryDelayMs: 100,
        };
      }
      // The shard may have moved, or a configure created the entity, while we read.
      if (this.shards.get(shard) !== held || held.status !== "active") {
        return this.notOwner(shard);
      }
      const raced = held.entities.get(pool);
      if (raced !== undefined) return raced;
      if (!exists) {
        if (held.absent.size >= MAX_ABSENT_POOLS_PER_SHARD) {
          const oldest = held.absent.values().next().value;
          if (oldest !== undefined) held.absent.delete(oldest);
        }
        held.absent.add(pool);
        return absentOutcome(pool, command);
      }
    }
    const entity = this.newEntity(held, pool);
    void entity.start();
    return entity;
  }

  private newEntity(held: HeldShard, pool: string, recovered?: LoadedPool): PoolEntity {
    const entity = new PoolEntity(
      {
        pool,
        shard: held.shard,
        epoch: held.epoch,
        ...(recovered !== undefined ? { recovered } : {}),
      },
      this.entitySettings,
    );
    held.entities.set(pool, entity);
    held.absent.delete(pool);
    held.specDigest = undefined;
    return entity;
  }

  /** The held shard `entity` belongs to; undefined once that shard was let go of. */
  private heldBy(entity: PoolEntity): HeldShard | undefined {
    const held = this.shards.get(entity.shard);
    return held !== undefined && held.entities.get(entity.pool) === entity ? held : undefined;
  }

  /** Drops a fenced entity, so that a later command tries (and fences) afresh. */
  private forget(entity: PoolEntity): void {
    const held = this.heldBy(entity);
    if (held !== undefined) {
      held.entities.delete(entity.pool);
      held.specDigest = undefined;
    }
  }

  private apply(map: internal.ShardMap): void {
    if (this.closed) return;
    if (this.map !== undefined && map.revision < this.map.revision) {
      this.log.warn(
        { revision: map.revision, current: this.map.revision },
        "ignoring an older shard map",
      );
      return;
    }
    if (this.map !== undefined && map.shardCount !== this.map.shardCount) {
      this.log.error(
        { shardCount: map.shardCount, current: this.map.shardCount },
        "the shard count changed; it is fixed at install — following the new map anyway",
      );
    }
    this.map = map;
    const wanted = new Map<number, internal.ShardAssignment>();
    for (const a of map.shards) {
      if (a.owner === this.o.nodeId && a.state === internal.ShardState.SHARD_STATE_ACTIVE) {
        wanted.set(a.shard, a);
      }
    }
    let released = 0;
    let acquired = 0;
    for (const held of [...this.shards.values()]) {
      const a = wanted.get(held.shard);
      if (a === undefined) {
        released++;
        const now = map.shards[held.shard];
        const why =
          now === undefined
            ? "shard not in the map"
            : now.owner === this.o.nodeId
              ? `shard state ${internal.shardStateToJSON(now.state)}`
              : `owner now ${now.owner === "" ? "(none)" : now.owner}`;
        this.release(held, why);
      } else if (a.epoch !== held.epoch) {
        released++;
        this.release(held, `epoch moved from ${held.epoch} to ${a.epoch}`);
      }
    }
    for (const a of wanted.values()) {
      if (!this.shards.has(a.shard)) {
        acquired++;
        this.acquire(a.shard, a.epoch);
      }
    }
    if (acquired > 0) this.recoveryStartedAt ??= performance.now();
    else if (!this.anyRecovering()) this.recoveryStartedAt = undefined;
    // One line per map change; the per-shard lines of acquire are at debug level.
    this.log.info(
      { revision: map.revision, owned: wanted.size, acquired, released },
      "shard map applied",
    );
    this.changed();
  }

  private acquire(shard: number, epoch: number): void {
    const held: HeldShard = {
      shard,
      epoch,
      status: "recovering",
      entities: new Map(),
      acquiredAt: performance.now(),
      specDigest: undefined,
      absent: new Set(),
    };
    this.shards.set(shard, held);
    this.log.debug({ shard, epoch }, "shard acquired; recovering");
    this.recover(held).catch((e: unknown) => {
      this.log.error({ err: e, shard, epoch }, "shard recovery failed");
    });
  }

  private async recover(held: HeldShard): Promise<void> {
    const current = () => this.shards.get(held.shard) === held && held.status === "recovering";
    const journal = this.o.journal;
    // A journal that can fence and load the whole shard at once (two calls, not two
    // per pool); the entities then start from what it loaded.
    let recovered: RecoveredShard | undefined;
    let pools: string[] | undefined;
    for (let attempt = 0; pools === undefined; attempt++) {
      if (attempt > 0) await delay(backoffDelayMs(attempt, this.o.backoff ?? DEFAULT_BACKOFF));
      if (!current()) return;
      try {
        if (journal.recoverShard !== undefined) {
          recovered = await journal.recoverShard(held.shard, held.epoch);
          pools = [...recovered.pools.keys()];
        } else {
          pools = await journal.listPools(held.shard);
        }
      } catch (e: unknown) {
        this.log.warn(
          { err: e, shard: held.shard, attempt },
          "recovering the shard's pools failed",
        );
      }
    }
    if (!current()) return;
    const entities = pools.map(
      (p) => held.entities.get(p) ?? this.newEntity(held, p, recovered?.pools.get(p)),
    );
    recovered = undefined;
    let next = 0;
    const concurrency = Math.max(1, this.o.recoveryConcurrency ?? 16);
    const loader = async () => {
      while (next < entities.length && current()) {
        const e = entities[next++] as PoolEntity;
        await e.start();
      }
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, entities.length) }, loader));
    if (!current()) return;
    held.status = "active";
    const seconds = (performance.now() - held.acquiredAt) / 1000;
    this.o.metrics?.observeRecovery(seconds);
    // Per shard at debug: the summary line below says when every owned shard serves.
    this.log.debug(
      {
        shard: held.shard,
        epoch: held.epoch,
        pools: entities.length,
        ms: Math.round(seconds * 1000),
      },
      "shard recovered; serving",
    );
    if (this.recoveryStartedAt !== undefined && !this.anyRecovering()) {
      this.log.info(
        {
          revision: this.map?.revision,
          owned: this.shards.size,
          ms: Math.round(performance.now() - this.recoveryStartedAt),
        },
        "every owned shard serving",
      );
      this.recoveryStartedAt = undefined;
    }
    this.changed();
  }

  private anyRecovering(): boolean {
    for (const h of this.shards.values()) if (h.status === "recovering") return true;
    return false;
  }

  private release(
    held: HeldShard,
    why: string,
    outcome?: EntityFailure,
    level: "info" | "debug" = "info",
  ): void {
    if (this.shards.get(held.shard) === held) this.shards.delete(held.shard);
    if (held.status === "draining") return;
    held.status = "draining";
    this.log[level](
      { event: "ownership.shard_leaving", shard: held.shard, epoch: held.epoch, why },
      "shard leaving; draining",
    );
    const drained = outcome ?? {
      kind: "not_owner",
      message: `this worker no longer serves shard ${held.shard} (${why})`,
    };
    const task = Promise.all([...held.entities.values()].map((e) => e.close(drained))).then(() => {
      held.entities.clear();
      this.log[level](
        { event: "ownership.shard_drained", shard: held.shard, epoch: held.epoch },
        "shard drained",
      );
    });
    this.releasing.set(held, task);
    void task.finally(() => {
      this.releasing.delete(held);
      this.changed();
    });
  }

  private notOwner(shard: number, message?: string): NotOwnerOutcome {
    const a = this.map?.shards[shard];
    const owner =
      a !== undefined && a.owner !== "" && a.owner !== this.o.nodeId ? a.owner : undefined;
    const handingOff =
      a !== undefined &&
      (a.state === internal.ShardState.SHARD_STATE_DRAINING ||
        (a.owner === this.o.nodeId && a.state === internal.ShardState.SHARD_STATE_ACTIVE));
    return {
      kind: "not_owner",
      message:
        message ??
        (owner !== undefined
          ? `shard ${shard} is owned by ${owner}`
          : handingOff
            ? `shard ${shard} is being handed off`
            : `shard ${shard} has no owner`),
      shard,
      epoch: a?.epoch ?? 0,
      owner,
      ownerAddress:
        owner === undefined ? undefined : this.map?.members.find((m) => m.id === owner)?.address,
      retryDelayMs: owner === undefined ? SHARD_DRAINING_RETRY_MS : undefined,
    };
  }

  private changed(): void {
    for (const l of this.listeners) {
      try {
        l();
      } catch (e: unknown) {
        this.log.error({ err: e }, "ownership listener failed");
      }
    }
  }
}

/** The answer to a command (other than configure) for a pool never configured. */
function absentOutcome<C extends EntityCommand>(pool: string, command: C): AnsweredOutcome<C> {
  // Each branch answers as AnsweredOutcome<C> says for its command's type; TypeScript
  // does not narrow the type parameter C by a check of command.type, hence the casts.
  if (command.type === "retire") {
    // Retiring a pool that never existed writes nothing, not even a fence.
    const ok: OkOutcome<ReplyTo<PoolCommand & { readonly type: "retire" }>> = {
      kind: "ok",
      reply: { type: "configured", changed: false },
      version: 0,
      view: undefined,
    };
    return ok as AnsweredOutcome<C>;
  }
  if (command.type === "read") return { kind: "view", view: undefined } as AnsweredOutcome<C>;
  const rejected: RejectedOutcome = {
    kind: "rejected",
    rejection: {
      code: "POOL_NOT_FOUND",
      message: `pool ${pool} does not exist (it has never been configured)`,
    },
    version: 0,
  };
  return rejected as AnsweredOutcome<C>;
}

function recovering(shard: number): CommandFailure {
  return {
    kind: "unavailable",
    reason: "SHARD_RECOVERING",
    message: `shard ${shard} is recovering on this worker`,
    retryDelayMs: SHARD_RECOVERING_RETRY_MS,
  };
}
