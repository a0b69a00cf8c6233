// The ShardMap resource and the proto ShardMap, both ways: the operator writes a
// planned map into the resource's status (shardMapStatusOf); workers and gateways
// read it back (shardMapOfResource) through ShardMapResourceSource, the Kubernetes
// ShardMapSource. The proto map is the truth; the status adds what people and
// `kubectl get` want to see (live flags, counts, conditions).
import { internal, type ShardMapSource, shardMapProblem } from "@berth/proto";
import type { KubeConfig } from "@kubernetes/client-node";
import type { Logger } from "pino";
import type { Condition } from "./api/v1alpha1/conditions.js";
import { GROUP, VERSION } from "./api/v1alpha1/group-version.js";
import {
  SHARD_MAP_PLURAL,
  SHARD_STATES,
  type ShardMapObject,
  type ShardMapStatus,
  type ShardStateName,
} from "./api/v1alpha1/shard-map.js";
import { type InformerEvent, type KubeObject, ResourceInformer } from "./informer.js";
import { LogThrottle } from "./log-throttle.js";

const { ShardState } = internal;

const STATE_NAMES: ReadonlyMap<internal.ShardState, ShardStateName> = new Map([
  [ShardState.SHARD_STATE_ACTIVE, "Active"],
  [ShardState.SHARD_STATE_DRAINING, "Draining"],
  [ShardState.SHARD_STATE_UNASSIGNED, "Unassigned"],
]);
const STATES_BY_NAME: ReadonlyMap<string, internal.ShardState> = new Map(
  [...STATE_NAMES].map(([state, name]) => [name, state]),
);

/** What the operator observed besides the map itself, for {@link shardMapStatusOf}. */
export interface ShardMapObservation {
  /** Ids of the members whose Lease is being renewed. */
  readonly live: ReadonlySet<string>;
  readonly conditions?: readonly Condition[];
  /** The ShardMap's metadata.generation this status is for. */
  readonly observedGeneration?: number;
  /** Shards whose new owner has not reported serving them yet (counted as moving). */
  readonly recovering?: ReadonlySet<number>;
}

/**
 * The ShardMap resource's status for a proto map: members with live flags, shards
 * with CamelCase states, the quorum and the counts `kubectl get shardmaps` shows.
 *
 * @throws RangeError for a shard whose state the resource cannot spell (unspecified)
 */
export function shardMapStatusOf(
  map: internal.ShardMap,
  observed: ShardMapObservation,
): ShardMapStatus {
  const members = map.members.map((m) => ({
    id: m.id,
    address: m.address,
    live: observed.live.has(m.id),
  }));
  const shards = map.shards.map((s) => {
    const state = STATE_NAMES.get(s.state);
    if (state === undefined) {
      throw new RangeError(
        `shard ${s.shard} has state ${internal.shardStateToJSON(s.state)}, which a ShardMap resource cannot express`,
      );
    }
    return { shard: s.shard, owner: s.owner, epoch: s.epoch, state };
  });
  return {
    revision: map.revision,
    ...(observed.observedGeneration === undefined
      ? {}
      : { observedGeneration: observed.observedGeneration }),
    quorum: map.quorum,
    memberCount: members.length,
    liveMembers: members.filter((m) => m.live).length,
    movingShards: shards.filter(
      (s) => s.state === "Draining" || observed.recovering?.has(s.shard) === true,
    ).length,
    unassignedShards: shards.filter((s) => s.state === "Unassigned").length,
    members,
    shards,
    ...(observed.conditions === undefined ? {} : { conditions: observed.conditions }),
  };
}

/**
 * The proto map a ShardMap resource publishes, or why it publishes none usable: no
 * status yet, a missing or bad revision, an unknown state, an epoch JSON cannot
 * carry exactly, or any {@link shardMapProblem}. An absent status.quorum reads as 0
 * (the proto default), as the proto JSON mapping does.
 */
export function shardMapOfResource(
  object: ShardMapObject,
): { ok: true; map: internal.ShardMap } | { ok: false; reason: string } {
  const status = object.status;
  if (status === undefined) return { ok: false, reason: "no status yet" };
  const revision = status.revision;
  if (revision === undefined) return { ok: false, reason: "status.revision is not set" };
  if (!Number.isSafeInteger(revision) || revision < 1) {
    return { ok: false, reason: `status.revision must be a positive integer, got ${revision}` };
  }
  const shards: internal.ShardAssignment[] = [];
  for (const [i, s] of (status.shards ?? []).entries()) {
    const state = STATES_BY_NAME.get(s.state);
    if (state === undefined) {
      return {
        ok: false,
        reason: `status.shards[${i}].state ${JSON.stringify(s.state)} is not one of ${SHARD_STATES.join(", ")}`,
      };
    }
    if (!Number.isSafeInteger(s.epoch)) {
      return { ok: false, reason: `status.shards[${i}].epoch ${s.epoch} is not a safe integer` };
    }
    shards.push({ shard: s.shard, owner: s.owner, epoch: s.epoch, state });
  }
  const map: internal.ShardMap = {
    revision,
    shardCount: object.spec.shardCount,
    members: (status.members ?? []).map((m) => ({ id: m.id, address: m.address })),
    shards,
    quorum: status.quorum ?? 0,
  };
  const problem = shardMapProblem(map);
  return problem === undefined ? { ok: true, map } : { ok: false, reason: problem };
}

/** Options of a {@link ShardMapResourceSource}. */
export interface ShardMapResourceSourceOptions {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  /** The ShardMap object's name. */
  readonly name: string;
  readonly logger?: Logger;
  /** Backoff of the underlying watch (as ResourceInformer's restartDelayMs). */
  readonly restartDelayMs?: { readonly initial: number; readonly max: number };
}

/** Counters of a {@link ShardMapResourceSource}, for metrics and tests. */
export interface ShardMapResourceSourceStats {
  /** Maps published (each of a higher revision than the one before). */
  published: number;
  /** Versions of the object not published: unusable, or not a higher revision. */
  ignored: number;
  /** Why the last one was ignored. */
  lastIgnored: string | undefined;
}

/**
 * A {@link ShardMapSource} that follows one ShardMap object through a
 * {@link ResourceInformer} (field selector `metadata.name=<name>`). Only maps of a
 * higher revision than the current one are published; an unusable object, a lower
 * revision or a deletion is logged (rate-limited) and ignored, and the current map
 * stays. Call {@link start}; {@link synced} resolves once the first list is in
 * (`current()` is still undefined then if nothing usable is published yet).
 */
export class ShardMapResourceSource implements ShardMapSource {
  readonly #informer: ResourceInformer<ShardMapObject & KubeObject>;
  readonly #listeners = new Set<(map: internal.ShardMap) => void>();
  readonly #throttle = new LogThrottle();
  readonly #logger: Logger | undefined;
  readonly #stats: ShardMapResourceSourceStats = {
    published: 0,
    ignored: 0,
    lastIgnored: undefined,
  };
  readonly #object: string;
  #map: internal.ShardMap | undefined;

  constructor(options: ShardMapResourceSourceOptions) {
    this.#logger = options.logger;
    this.#object = `${options.namespace}/${options.name}`;
    this.#informer = new ResourceInformer({
      kubeConfig: options.kubeConfig,
      path: `/apis/${GROUP}/${VERSION}/namespaces/${options.namespace}/${SHARD_MAP_PLURAL}`,
      fieldSelector: `metadata.name=${options.name}`,
      name: `shardmap ${this.#object}`,
      ...(options.logger === undefined ? {} : { logger: options.logger }),
      ...(options.restartDelayMs === undefined ? {} : { restartDelayMs: options.restartDelayMs }),
    });
    this.#informer.onChange((e) => this.#changed(e));
  }

  /** Starts watching the object. Idempotent. */
  start(): void {
    this.#informer.start();
  }

  /** Resolves after the first complete list; rejects if `signal` aborts first. */
  synced(signal?: AbortSignal): Promise<void> {
    return this.#informer.synced(signal);
  }

  /** @inheritdoc */
  current(): internal.ShardMap | undefined {
    return this.#map;
  }

  /** @inheritdoc */
  subscribe(listener: (map: internal.ShardMap) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops watching and drops every listener. Idempotent. */
  close(): void {
    this.#informer.stop();
    this.#listeners.clear();
  }

  /** Counters: maps published, versions ignored and why the last one was. */
  stats(): ShardMapResourceSourceStats {
    return { ...this.#stats };
  }

  #changed(e: InformerEvent<ShardMapObject & KubeObject>): void {
    const resourceVersion = e.object.metadata.resourceVersion;
    if (e.type === "deleted") {
      this.#ignore("the object was deleted (the current map stays)", resourceVersion);
      return;
    }
    const read = shardMapOfResource(e.object);
    if (!read.ok) {
      this.#ignore(`unusable: ${read.reason}`, resourceVersion);
      return;
    }
    const current = this.#map;
    if (current !== undefined && read.map.revision <= current.revision) {
      // Equal: a status update that did not change the map (conditions, live flags).
      if (read.map.revision < current.revision) {
        this.#ignore(
          `revision ${read.map.revision} is below the current ${current.revision}`,
          resourceVersion,
        );
      }
      return;
    }
    this.#map = read.map;
    this.#stats.published++;
    this.#logger?.info(
      {
        event: "shard_map.followed",
        shardMap: this.#object,
        revision: read.map.revision,
        resourceVersion,
      },
      "ShardMap published",
    );
    for (const listener of [...this.#listeners]) {
      try {
        listener(read.map);
      } catch (err: unknown) {
        this.#logger?.error({ shardMap: this.#object, err }, "ShardMap listener threw");
      }
    }
  }

  #ignore(why: string, resourceVersion: string | undefined): void {
    this.#stats.ignored++;
    this.#stats.lastIgnored = why;
    const d = this.#throttle.failure(why);
    if (d.log) {
      this.#logger?.warn(
        { shardMap: this.#object, resourceVersion, reason: why, suppressed: d.suppressed },
        "ShardMap version not published",
      );
    }
  }
}
