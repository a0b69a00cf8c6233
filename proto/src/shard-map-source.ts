/**
 * Where a process gets its current ShardMap from: the {@link ShardMapSource} contract,
 * the check every map must pass, and an in-memory source. The file-backed source and
 * writer (local mode) are in @berth/common; the Kubernetes one in @berth/kubernetes.
 */

import type { ShardMap } from "./gen/berth/internal/v1/worker.js";

/** A source of ShardMaps whose revisions only ever grow. */
export interface ShardMapSource {
  /** The newest map seen so far, or undefined before the first one. */
  current(): ShardMap | undefined;
  /**
   * Calls `listener` with every later map of a higher revision (not with the
   * current one: read {@link ShardMapSource.current} for that).
   *
   * @returns a function that removes the listener
   */
  subscribe(listener: (map: ShardMap) => void): () => void;
  /** Stops watching and drops every listener. Idempotent. */
  close(): void;
}

/**
 * Returns why a value is not a usable ShardMap, or undefined if it is: revision
 * ≥ 1, shard count ≥ 1, exactly one assignment per shard in order, epochs ≥ 1 for
 * owned shards, every owner listed in `members`.
 *
 * @param map a decoded map (e.g. from `ShardMap.fromJSON`)
 */
export function shardMapProblem(map: ShardMap): string | undefined {
  if (!Number.isSafeInteger(map.revision) || map.revision < 1) {
    return `revision must be a positive integer, got ${map.revision}`;
  }
  if (!Number.isSafeInteger(map.shardCount) || map.shardCount < 1) {
    return `shard count must be a positive integer, got ${map.shardCount}`;
  }
  if (map.shards.length !== map.shardCount) {
    return `map lists ${map.shards.length} shards; its shard count is ${map.shardCount}`;
  }
  const members = new Set(map.members.map((m) => m.id));
  for (let i = 0; i < map.shards.length; i++) {
    const s = map.shards[i] as ShardMap["shards"][number];
    if (s.shard !== i) return `entry ${i} is for shard ${s.shard}`;
    if (s.owner !== "" && !members.has(s.owner)) {
      return `shard ${i} is owned by ${JSON.stringify(s.owner)}, who is not a member`;
    }
    if (s.owner !== "" && s.epoch < 1) return `shard ${i} has epoch ${s.epoch}`;
  }
  return undefined;
}

function notify(listeners: Iterable<(map: ShardMap) => void>, map: ShardMap): void {
  for (const listener of [...listeners]) listener(map);
}

/** An in-memory {@link ShardMapSource}: tests, and processes that plan in-process. */
export class StaticShardMapSource implements ShardMapSource {
  #map: ShardMap | undefined;
  readonly #listeners = new Set<(map: ShardMap) => void>();

  /** @param initial the first map, if any */
  constructor(initial?: ShardMap) {
    this.#map = initial;
  }

  /** @inheritdoc */
  current(): ShardMap | undefined {
    return this.#map;
  }

  /**
   * Publishes `map` if its revision is higher than the current one; listeners run
   * synchronously, and what they throw propagates to the caller.
   *
   * @returns whether the map was accepted
   */
  set(map: ShardMap): boolean {
    if (this.#map !== undefined && map.revision <= this.#map.revision) return false;
    this.#map = map;
    notify(this.#listeners, map);
    return true;
  }

  /** @inheritdoc */
  subscribe(listener: (map: ShardMap) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** @inheritdoc */
  close(): void {
    this.#listeners.clear();
  }
}
