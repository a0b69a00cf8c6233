// The operator process's core: leader election, then — while leading — informers on
// the ShardMap, worker Leases and CapacityPools, one de-duplicating work queue, and
// level-based reconciles planned by the pure functions in this package. Losing the
// lease stops every controller at once (a stale leader must not write): the
// ShardMap is only ever written with the resourceVersion it was planned from.
import {
  clusterClientOptions,
  type InternalTransport,
  parseRichStatus,
  plaintextTransport,
  WorkerServiceClient,
} from "@berth/common";
import {
  API_VERSION,
  CAPACITY_POOL_FINALIZER,
  CAPACITY_POOL_KIND,
  CAPACITY_POOL_PLURAL,
  type CapacityPool,
  GROUP,
  type KubeObject,
  LeaderElector,
  PodControllerOwner,
  poolIdOf,
  ResourceInformer,
  SHARD_MAP_KIND,
  SHARD_MAP_PLURAL,
  type ShardMapObject,
  shardMapOfResource,
  stripLastAppliedConfiguration,
  stripManagedFields,
  VERSION,
  WORKER_ADDRESS_ANNOTATION,
  WORKER_LEASE_LABELS,
} from "@berth/kubernetes";
import { internal, shardOf } from "@berth/proto";
import * as grpc from "@grpc/grpc-js";
import {
  CoordinationV1Api,
  CoreV1Api,
  CustomObjectsApi,
  type KubeConfig,
  PatchStrategy,
  setHeaderOptions,
} from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Registry } from "prom-client";
import { EventRecorder, type EventSubject } from "./adapters/events.js";
import {
  HandOffTimer,
  MemberTransitions,
  type OperatorMetrics,
  operatorMetrics,
} from "./adapters/operator-metrics.js";
import { LeaseMembership, planningHoldMs } from "./controller/membership.js";
import { PoolCounters } from "./controller/pool-counters.js";
import { type AppliedSpec, type RejectedSpec, reconcilePool } from "./controller/pool-reconcile.js";
import { reconcileShardMap } from "./controller/shard-map-reconcile.js";
import { processQueue, WorkQueue } from "./controller/work-queue.js";
import { WorkerReports } from "./controller/worker-reports.js";
import type { ShardChange } from "./planning/hand-off.js";

/** A worker Lease as the informer delivers it (JSON: times are strings). */
type LeaseObject = KubeObject & {
  metadata?: { name?: string; annotations?: Record<string, string> };
  spec?: { renewTime?: string; leaseDurationSeconds?: number; holderIdentity?: string };
};
type ShardMapItem = ShardMapObject & KubeObject;
type PoolItem = CapacityPool & KubeObject;

/** The work-queue key of the ShardMap (pool keys are "pool:<namespace>/<name>"). */
const SHARD_MAP_KEY = "shardmap";

/** Options of {@link startOperator}. */
export interface OperatorOptions {
  readonly kubeConfig: KubeConfig;
  /** The install's namespace: ShardMap, worker Leases, the leader Lease. */
  readonly namespace: string;
  /** Namespace whose CapacityPools are served; undefined: every namespace. */
  readonly poolNamespace?: string;
  /** Name of the ShardMap object. Default "berth". */
  readonly shardMapName?: string;
  /** Shard count the ShardMap is created with (fixed once created). */
  readonly shardCount: number;
  /** Quorum when the ShardMap's spec states none; default a majority of workers known. */
  readonly quorum?: number;
  /** This replica's identity (its pod name). */
  readonly identity: string;
  /** Sent on every call to a worker. */
  readonly clusterId: string;
  /**
   * Credentials of every worker client (reports, counters, pool commands): mutual TLS
   * with `--internal-tls-dir`; default plaintext. The caller owns it.
   */
  readonly transport?: InternalTransport;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly leaderElection?: {
    readonly leaseName?: string;
    readonly leaseDurationMs?: number;
    readonly renewDeadlineMs?: number;
    readonly retryPeriodMs?: number;
    /**
     * This replica's pod: its controller (the ReplicaSet, owned by the Deployment)
     * is added to the leader Lease's owners while this replica leads.
     */
    readonly leaseOwnerPod?: string;
  };
  /** Most shards draining or recovering at once. Default 32. */
  readonly maxMovesInProgress?: number;
  /** CapacityPool status writes per second, in total. Default 50. */
  readonly statusWritesPerSecond?: number;
  /** Least time between two status writes of one pool. Default 1 s. */
  readonly poolStatusIntervalMs?: number;
  /** Time between two gossip pulls of pool counters. Default 1 s. */
  readonly countersIntervalMs?: number;
  /** Concurrent reconciles. Default 8. */
  readonly workers?: number;
  /**
   * The set of live workers must be unchanged this long before shards move. Workers
   * killed together expire up to one renewal period apart; without this wait the first
   * expiry (quorum still met) would hand the dead workers' shards to each other just
   * before the second one freezes the map. Keep it above the workers' renewal period.
   * Default 1,000 ms.
   */
  readonly membershipStableMs?: number;
}

/** A running operator replica. */
export interface RunningOperator {
  /** Whether this replica leads (runs the controllers). */
  readonly isLeader: boolean;
  /** Ready once it follows the election (a standby is ready too). */
  readiness(): { ready: true } | { ready: false; reason: string };
  /** Gives up the lease (if held) and stops everything. */
  stop(): Promise<void>;
}

/** Starts leader election; controllers run while this replica leads. */
export function startOperator(o: OperatorOptions): RunningOperator {
  const log = o.logger.child({ component: "operator", identity: o.identity });
  const metrics = operatorMetrics(o.registry);
  let controllers: Controllers | undefined;
  const coordination = o.kubeConfig.makeApiClient(CoordinationV1Api);
  const ownerPod = o.leaderElection?.leaseOwnerPod;
  const owner =
    ownerPod === undefined
      ? undefined
      : new PodControllerOwner({
          api: o.kubeConfig.makeApiClient(CoreV1Api),
          namespace: o.namespace,
          pod: ownerPod,
          logger: log.child({ module: "lease-owner" }),
        });
  owner?.start();
  const elector = new LeaderElector({
    api: coordination,
    namespace: o.namespace,
    name: o.leaderElection?.leaseName ?? "berth-operator",
    identity: o.identity,
    ...(owner === undefined ? {} : { owner }),
    ...(o.leaderElection?.leaseDurationMs === undefined
      ? {}
      : { leaseDurationMs: o.leaderElection.leaseDurationMs }),
    ...(o.leaderElection?.renewDeadlineMs === undefined
      ? {}
      : { renewDeadlineMs: o.leaderElection.renewDeadlineMs }),
    ...(o.leaderElection?.retryPeriodMs === undefined
      ? {}
      : { retryPeriodMs: o.leaderElection.retryPeriodMs }),
    onStartedLeading: () => {
      log.info({ event: "operator.leading" }, "became the leader; starting controllers");
      metrics.leader.set(1);
      controllers = new Controllers(o, log, metrics);
      controllers.start();
    },
    onStoppedLeading: () => {
      log.warn({ event: "operator.not_leading" }, "lost the leadership; stopping controllers");
      metrics.leader.set(0);
      const c = controllers;
      controllers = undefined;
      void c?.stop();
    },
    onError: (e: unknown) =>
      log.debug({ err: (e as Error).message }, "leader election round failed; retrying"),
  });
  elector.start();
  return {
    get isLeader() {
      return elector.isLeader;
    },
    readiness: () => ({ ready: true }),
    async stop() {
      owner?.stop();
      await elector.stop({ release: true });
      const c = controllers;
      controllers = undefined;
      await c?.stop();
    },
  };
}

/** The controllers of one term of leadership. */
class Controllers {
  readonly #o: OperatorOptions;
  readonly #log: Logger;
  readonly #m: OperatorMetrics;
  readonly #custom: CustomObjectsApi;
  readonly #events: EventRecorder;
  readonly #queue = new WorkQueue({ urgent: (key) => key === SHARD_MAP_KEY });
  readonly #membership = new LeaseMembership(() => performance.now());
  readonly #handOffs: HandOffTimer;
  readonly #transitions: MemberTransitions;
  readonly #reports: WorkerReports;
  readonly #counters: PoolCounters;
  readonly #shardMaps: ResourceInformer<ShardMapItem>;
  readonly #leases: ResourceInformer<LeaseObject>;
  readonly #pools: ResourceInformer<PoolItem>;
  readonly #applied = new Map<string, AppliedSpec>();
  readonly #rejected = new Map<string, RejectedSpec>();
  readonly #lastStatusAt = new Map<string, number>();
  readonly #poolsByShard = new Map<number, Set<string>>();
  readonly #workers = new Map<string, WorkerServiceClient>();
  /** The live members last seen, and when one last joined or was lost (monotonic ms). */
  #liveIds = new Set<string>();
  #lastJoinAt: number | undefined;
  #lastLossAt: number | undefined;
  /** When this term's controllers started (monotonic ms). */
  #startedAt = 0;
  /** The last map this term published or read, for diffing shard changes. */
  #published: internal.ShardMap | undefined;
  #statusTokens: number;
  #statusAt = performance.now();
  #loops: Promise<void> | undefined;
  readonly #unsubscribe: (() => void)[] = [];

  constructor(o: OperatorOptions, log: Logger, m: OperatorMetrics) {
    this.#o = o;
    this.#log = log;
    this.#m = m;
    this.#handOffs = new HandOffTimer(
      (seconds) => m.handOffSeconds.observe(seconds),
      () => performance.now(),
    );
    this.#transitions = new MemberTransitions((to) => m.memberTransitions.inc({ to }));
    this.#custom = o.kubeConfig.makeApiClient(CustomObjectsApi);
    this.#events = new EventRecorder({
      api: o.kubeConfig.makeApiClient(CoreV1Api),
      component: "berth-operator",
      instance: o.identity,
      logger: log,
    });
    this.#statusTokens = o.statusWritesPerSecond ?? 50;
    const transport = o.transport === undefined ? {} : { transport: o.transport };
    this.#reports = new WorkerReports({ clusterId: o.clusterId, logger: log, ...transport });
    this.#counters = new PoolCounters({
      ...transport,
      clusterId: o.clusterId,
      logger: log,
      ...(o.countersIntervalMs === undefined ? {} : { intervalMs: o.countersIntervalMs }),
      onChanged: (pools) => {
        for (const p of pools) this.#queue.add(`pool:${p}`);
      },
    });
    const ns = o.namespace;
    this.#shardMaps = new ResourceInformer<ShardMapItem>({
      kubeConfig: o.kubeConfig,
      path: `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${SHARD_MAP_PLURAL}`,
      fieldSelector: `metadata.name=${this.#shardMapName}`,
      logger: log,
      name: "shardmaps",
      transform: stripManagedFields,
    });
    this.#leases = new ResourceInformer<LeaseObject>({
      kubeConfig: o.kubeConfig,
      path: `/apis/coordination.k8s.io/v1/namespaces/${ns}/leases`,
      labelSelector: Object.entries(WORKER_LEASE_LABELS)
        .map(([k, v]) => `${k}=${v}`)
        .join(","),
      logger: log,
      name: "worker-leases",
      transform: stripManagedFields,
    });
    this.#pools = new ResourceInformer<PoolItem>({
      kubeConfig: o.kubeConfig,
      path:
        o.poolNamespace === undefined
          ? `/apis/${GROUP}/${VERSION}/${CAPACITY_POOL_PLURAL}`
          : `/apis/${GROUP}/${VERSION}/namespaces/${o.poolNamespace}/${CAPACITY_POOL_PLURAL}`,
      logger: log,
      name: "capacitypools",
      // Pools are only PATCHed (finalizers, status), never PUT: the last-applied copy
      // of each manifest can go too.
      transform: (pool) => stripLastAppliedConfiguration(stripManagedFields(pool)),
    });
  }

  get #shardMapName(): string {
    return this.#o.shardMapName ?? "berth";
  }

  start(): void {
    this.#startedAt = performance.now();
    this.#unsubscribe.push(
      this.#shardMaps.onChange((e) => {
        this.#queue.add(SHARD_MAP_KEY);
        if (e.type !== "deleted") this.#onMapSeen(e.object);
      }),
      this.#leases.onChange((e) => {
        const name = e.object.metadata?.name;
        if (name === undefined) return;
        const changed =
          e.type === "deleted"
            ? this.#membership.remove(name)
            : this.#membership.observe({
                name,
                renewTime: stringOf(e.object.spec?.renewTime),
                leaseDurationSeconds: e.object.spec?.leaseDurationSeconds,
                address: e.object.metadata?.annotations?.[WORKER_ADDRESS_ANNOTATION],
              });
        if (changed) this.#queue.add(SHARD_MAP_KEY);
      }),
      this.#pools.onChange((e) => {
        const id = poolIdOf(e.object);
        this.#index(id, e.type === "deleted");
        if (e.type === "deleted") {
          this.#applied.delete(id);
          this.#rejected.delete(id);
          this.#lastStatusAt.delete(id);
          return;
        }
        this.#queue.add(`pool:${id}`);
      }),
      this.#reports.onChange(() => this.#queue.add(SHARD_MAP_KEY)),
    );
    this.#shardMaps.start();
    this.#leases.start();
    this.#pools.start();
    this.#counters.start();
    this.#loops = processQueue(this.#queue, (key) => this.#reconcile(key), {
      workers: this.#o.workers ?? 8,
      onError: (key, e) =>
        this.#log.warn(
          { key, err: (e as Error).message },
          "reconcile failed; retrying with backoff",
        ),
    });
    this.#queue.add(SHARD_MAP_KEY);
  }

  async stop(): Promise<void> {
    for (const u of this.#unsubscribe.splice(0)) u();
    this.#queue.shutDown();
    this.#shardMaps.stop();
    this.#leases.stop();
    this.#pools.stop();
    this.#counters.stop();
    this.#reports.close();
    for (const c of this.#workers.values()) c.close();
    this.#workers.clear();
    await this.#loops;
  }

  async #reconcile(key: string): Promise<{ requeueAfterMs?: number } | undefined> {
    const controller = key === SHARD_MAP_KEY ? "shardmap" : "pool";
    const end = this.#m.reconcileSeconds.startTimer({ controller });
    this.#m.queueDepth.set(this.#queue.depth);
    try {
      const r =
        key === SHARD_MAP_KEY
          ? await this.#reconcileShardMap()
          : await this.#reconcilePool(key.slice("pool:".length));
      this.#m.reconciles.inc({ controller, result: "ok" });
      return r;
    } catch (e: unknown) {
      this.#m.reconciles.inc({ controller, result: "error" });
      throw e;
    } finally {
      end();
    }
  }

  async #reconcileShardMap(): Promise<{ requeueAfterMs?: number }> {
    if (!this.#shardMaps.hasSynced || !this.#leases.hasSynced) return { requeueAfterMs: 100 };
    const o = this.#o;
    const resource = this.#shardMaps.get(`${o.namespace}/${this.#shardMapName}`);
    const members = this.#membership.members();
    this.#transitions.observe(members);
    // Streams to every member that might own or take a shard.
    this.#reports.track(members.filter((m) => m.live));
    this.#counters.setMembers(members.filter((m) => m.live));
    const liveMembers = members.filter((m) => m.live);
    const liveIds = new Set(liveMembers.map((m) => m.id));
    const now = performance.now();
    if (liveMembers.some((m) => !this.#liveIds.has(m.id))) this.#lastJoinAt = now;
    if ([...this.#liveIds].some((id) => !liveIds.has(id))) this.#lastLossAt = now;
    this.#liveIds = liveIds;
    const hold = planningHoldMs({
      now,
      stableMs: o.membershipStableMs ?? 1_000,
      lastJoinAt: this.#lastJoinAt,
      lastLossAt: this.#lastLossAt,
      live: liveMembers,
    });
    if (resource !== undefined && hold > 0) return { requeueAfterMs: hold + 1 };
    // A new term knows nothing of drains in progress until the owners report: planning
    // before then would cancel them. Wait (briefly) for every live worker's first report.
    const unreported = members.filter((m) => m.live && this.#reports.latest(m.id) === undefined);
    if (resource !== undefined && unreported.length > 0 && now - this.#startedAt < 5_000) {
      return { requeueAfterMs: 100 };
    }
    const current = resource === undefined ? undefined : shardMapOfResource(resource);
    const map = current?.ok === true ? current.map : undefined;
    const action = reconcileShardMap({
      resource,
      namespace: o.namespace,
      name: this.#shardMapName,
      shardCount: o.shardCount,
      defaultQuorum: o.quorum,
      members,
      reports: map === undefined ? new Map() : this.#reports.reportsFor(map),
      leaving: this.#reports.leaving(),
      maxMovesInProgress: o.maxMovesInProgress ?? 32,
      now: new Date().toISOString(),
    });
    const live = members.filter((m) => m.live).length;
    this.#m.membersLive.set(live);
    const nextExpiry = this.#membership.nextExpiryInMs();
    const requeue = { requeueAfterMs: Math.min(5_000, (nextExpiry ?? 5_000) + 1) };
    switch (action.kind) {
      case "create": {
        this.#log.info({ name: this.#shardMapName, shards: o.shardCount }, "creating the ShardMap");
        await this.#custom.createNamespacedCustomObject({
          group: GROUP,
          version: VERSION,
          namespace: o.namespace,
          plural: SHARD_MAP_PLURAL,
          body: action.object,
        });
        return requeue;
      }
      case "unusable": {
        this.#log.error(
          { reason: action.reason },
          "the ShardMap's status is unusable; not planning",
        );
        await this.#events.record(this.#mapSubject(resource), "Warning", "Unusable", action.reason);
        return { requeueAfterMs: 10_000 };
      }
      case "none":
        this.#observeMap(action.map, action.quorumLost, live);
        return requeue;
      case "write-status": {
        const body = { ...resource, status: action.status };
        try {
          const written = (await this.#custom.replaceNamespacedCustomObjectStatus({
            group: GROUP,
            version: VERSION,
            namespace: o.namespace,
            plural: SHARD_MAP_PLURAL,
            name: this.#shardMapName,
            body,
          })) as ShardMapObject;
          this.#m.statusWrites.inc({ resource: "shardmap", result: "ok" });
          this.#onMapSeen(written);
        } catch (e: unknown) {
          this.#m.statusWrites.inc({ resource: "shardmap", result: "error" });
          // 409: planned from a stale copy; the informer brings the new one.
          if (httpCode(e) === 409) return { requeueAfterMs: 50 };
          throw e;
        }
        this.#handOffs.published(action.changes);
        this.#observeMap(action.map, action.quorumLost, live);
        for (const c of action.changes) this.#m.shardMoves.inc({ kind: c.kind });
        if (action.changes.length > 0) {
          this.#log.info(
            {
              event: "operator.shard_map_published",
              revision: action.map.revision,
              changes: summarize(action.changes),
            },
            "published the ShardMap",
          );
          void this.#events.record(
            this.#mapSubject(resource),
            "Normal",
            "ShardsMoved",
            `revision ${action.map.revision}: ${describeChanges(action.changes)}`,
          );
        }
        if (action.quorumChanged) {
          const reason = action.quorumLost ? "QuorumLost" : "QuorumRegained";
          const message = action.quorumLost
            ? `${live} live workers, fewer than the quorum of ${action.map.quorum}: the map is frozen`
            : `${live} live workers, quorum ${action.map.quorum}: shards may move again`;
          (action.quorumLost ? this.#log.warn : this.#log.info).call(this.#log, { live }, message);
          void this.#events.record(
            this.#mapSubject(resource),
            action.quorumLost ? "Warning" : "Normal",
            reason,
            message,
          );
        }
        return requeue;
      }
    }
  }

  #observeMap(map: internal.ShardMap, quorumLost: boolean, live: number): void {
    this.#m.quorum.set(map.quorum);
    this.#m.quorumMargin.set(live - map.quorum);
    this.#m.quorumLost.set(quorumLost ? 1 : 0);
    this.#m.shardsUnassigned.set(map.shards.filter((s) => s.owner === "").length);
    const reports = this.#reports.reportsFor(map);
    this.#handOffs.observed(map, (shard) => reports.get(shard)?.state === "serving");
    this.#m.shardsMoving.set(
      map.shards.filter(
        (s) =>
          s.owner !== "" &&
          (s.state === internal.ShardState.SHARD_STATE_DRAINING ||
            reports.get(s.shard)?.state !== "serving"),
      ).length,
    );
    // Pools follow their shard's owner and its reports: look at every pool of a shard
    // whose assignment or report changed.
    const before = this.#published;
    this.#published = map;
    for (const s of map.shards) {
      const b = before?.shards[s.shard];
      const r = reports.get(s.shard);
      if (
        b === undefined ||
        b.owner !== s.owner ||
        b.epoch !== s.epoch ||
        b.state !== s.state ||
        r?.state === "serving"
      ) {
        for (const id of this.#poolsByShard.get(s.shard) ?? []) {
          const a = this.#applied.get(id);
          if (a === undefined || a.owner !== s.owner || a.epoch !== s.epoch) {
            this.#queue.add(`pool:${id}`);
          }
        }
      }
    }
  }

  #onMapSeen(object: ShardMapObject): void {
    const parsed = shardMapOfResource(object);
    if (parsed.ok && parsed.map.revision !== this.#published?.revision) {
      this.#observeMap(parsed.map, false, this.#membership.members().filter((m) => m.live).length);
    }
  }

  async #reconcilePool(id: string): Promise<{ requeueAfterMs?: number } | undefined> {
    if (!this.#pools.hasSynced || !this.#shardMaps.hasSynced) return { requeueAfterMs: 100 };
    const pool = this.#pools.get(id);
    if (pool === undefined) return undefined;
    const resource = this.#shardMaps.get(`${this.#o.namespace}/${this.#shardMapName}`);
    const parsed = resource === undefined ? undefined : shardMapOfResource(resource);
    const map = parsed?.ok === true ? parsed.map : undefined;
    const counter = this.#counters.get(id);
    const plan = reconcilePool({
      pool,
      map,
      reports: map === undefined ? new Map() : this.#reports.reportsFor(map),
      applied: this.#applied.get(id),
      rejected: this.#rejected.get(id),
      counters: counter === undefined ? undefined : counter,
      now: new Date().toISOString(),
    });
    const ns = pool.metadata.namespace ?? "default";
    const name = pool.metadata.name;
    const target = {
      group: GROUP,
      version: VERSION,
      namespace: ns,
      plural: CAPACITY_POOL_PLURAL,
      name,
    };
    if (plan.addFinalizer) {
      await this.#custom.patchNamespacedCustomObject(
        {
          ...target,
          body: {
            metadata: {
              finalizers: [...(pool.metadata.finalizers ?? []), CAPACITY_POOL_FINALIZER],
              resourceVersion: pool.metadata.resourceVersion,
            },
          },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      // The informer brings the object back with its finalizer; reconcile from that.
      return undefined;
    }
    if (plan.configure !== undefined) {
      const c = plan.configure;
      try {
        const r = await configure(this.#worker(c.address), c.spec, c.epoch);
        this.#applied.set(id, {
          key: c.key,
          owner: c.owner,
          epoch: c.epoch,
          reserved: r.pool?.reserved ?? 0,
          version: r.pool?.version ?? 0,
        });
        this.#rejected.delete(id);
      } catch (e: unknown) {
        const s = parseRichStatus(e);
        if (s.code === grpc.status.INVALID_ARGUMENT) {
          this.#rejected.set(id, { key: c.key, message: s.message });
          void this.#events.record(this.#poolSubject(pool), "Warning", "SpecRejected", s.message);
        } else {
          // Not the owner any more, recovering, unreachable: the map or a report will
          // change; try again then (and with backoff meanwhile).
          throw new Error(
            `configure ${id} on ${c.owner}: ${s.reason ?? grpc.status[s.code]} ${s.message}`,
          );
        }
      }
      return this.#reconcilePool(id);
    }
    if (plan.status !== undefined) {
      const wait = this.#statusDelayMs(id);
      if (wait > 0) return { requeueAfterMs: wait };
      try {
        await this.#custom.patchNamespacedCustomObjectStatus(
          { ...target, body: { status: plan.status } },
          setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
        );
        this.#m.statusWrites.inc({ resource: "capacitypool", result: "ok" });
      } catch (e: unknown) {
        this.#m.statusWrites.inc({ resource: "capacitypool", result: "error" });
        if (httpCode(e) === 404) return undefined;
        throw e;
      }
    }
    if (plan.removeFinalizer) {
      await this.#custom.patchNamespacedCustomObject(
        {
          ...target,
          body: {
            metadata: {
              finalizers: (pool.metadata.finalizers ?? []).filter(
                (f) => f !== CAPACITY_POOL_FINALIZER,
              ),
              resourceVersion: pool.metadata.resourceVersion,
            },
          },
        },
        setHeaderOptions("Content-Type", PatchStrategy.MergePatch),
      );
      this.#log.info({ pool: id }, "pool deleted: closed on its owner, finalizer removed");
    }
    return undefined;
  }

  /** 0 when a status write of `id` may go now (and takes a token), else ms to wait. */
  #statusDelayMs(id: string): number {
    const now = performance.now();
    const last = this.#lastStatusAt.get(id);
    const interval = this.#o.poolStatusIntervalMs ?? 1_000;
    if (last !== undefined && now - last < interval) return Math.ceil(interval - (now - last));
    const rate = this.#o.statusWritesPerSecond ?? 50;
    this.#statusTokens = Math.min(
      rate,
      this.#statusTokens + ((now - this.#statusAt) / 1000) * rate,
    );
    this.#statusAt = now;
    if (this.#statusTokens < 1) return Math.ceil(((1 - this.#statusTokens) / rate) * 1000);
    this.#statusTokens -= 1;
    this.#lastStatusAt.set(id, now);
    return 0;
  }

  #index(id: string, removed: boolean): void {
    const shard = shardOf(id, this.#o.shardCount);
    let set = this.#poolsByShard.get(shard);
    if (removed) {
      set?.delete(id);
      return;
    }
    if (set === undefined) {
      set = new Set();
      this.#poolsByShard.set(shard, set);
    }
    set.add(id);
  }

  #worker(address: string): WorkerServiceClient {
    let c = this.#workers.get(address);
    if (c === undefined) {
      const transport = this.#o.transport ?? plaintextTransport();
      c = new WorkerServiceClient(address, transport.channelCredentials, {
        ...transport.channelOptions,
        ...clusterClientOptions(this.#o.clusterId),
      });
      this.#workers.set(address, c);
    }
    return c;
  }

  #mapSubject(resource: ShardMapObject | undefined): EventSubject {
    return {
      apiVersion: API_VERSION,
      kind: SHARD_MAP_KIND,
      namespace: this.#o.namespace,
      name: resource?.metadata.name ?? this.#shardMapName,
    };
  }

  #poolSubject(pool: CapacityPool): EventSubject {
    return {
      apiVersion: API_VERSION,
      kind: CAPACITY_POOL_KIND,
      namespace: pool.metadata.namespace ?? "default",
      name: pool.metadata.name,
      ...(pool.metadata.uid === undefined ? {} : { uid: pool.metadata.uid }),
    };
  }
}

function configure(
  client: WorkerServiceClient,
  spec: internal.PoolSpec,
  epoch: number,
): Promise<internal.ConfigureResponse> {
  return new Promise((resolve, reject) => {
    client.configure(
      { spec, epoch },
      new grpc.Metadata(),
      { deadline: Date.now() + 5_000 },
      (err: grpc.ServiceError | null, res?: internal.ConfigureResponse) => {
        if (err !== null || res === undefined) reject(err ?? new Error("empty configure response"));
        else resolve(res);
      },
    );
  });
}

function stringOf(t: unknown): string | undefined {
  if (t === undefined || t === null) return undefined;
  if (t instanceof Date) return t.toISOString();
  return String(t);
}

function httpCode(e: unknown): number | undefined {
  const code = (e as { code?: unknown }).code;
  return typeof code === "number" ? code : undefined;
}

function summarize(changes: readonly ShardChange[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const c of changes) out[c.kind] = (out[c.kind] ?? 0) + 1;
  return out;
}

function describeChanges(changes: readonly ShardChange[]): string {
  return Object.entries(summarize(changes))
    .map(([k, n]) => `${n} ${k}`)
    .join(", ");
}
