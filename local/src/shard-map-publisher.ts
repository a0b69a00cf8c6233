// The local cluster's ShardMap publisher: the map in force, written atomically to
// <dataDir>/shard-map.json (which the gateway and workers follow) and handed to the
// supervisor's own Router.
import { existsSync } from "node:fs";
import { readFile, rename, rm } from "node:fs/promises";
import { writeShardMapFile } from "@berth/common";
import { planShardMapAtStart } from "@berth/operator";
import { internal, StaticShardMapSource } from "@berth/proto";
import type { Log } from "./cluster-log.js";
import { manualMoves } from "./shard-map-ops.js";

/** The map in force, its file and the in-process source that follows it. */
export class ShardMapPublisher {
  readonly file: string;
  /** Followed by the supervisor's Router. */
  readonly source: StaticShardMapSource;
  #map: internal.ShardMap;
  readonly #previous: internal.ShardMap | undefined;

  private constructor(
    file: string,
    map: internal.ShardMap,
    previous: internal.ShardMap | undefined,
  ) {
    this.file = file;
    this.#map = map;
    this.#previous = previous;
    // Empty until publishPlanned: with port 0 the planned map's addresses come later.
    this.source = new StaticShardMapSource();
  }

  /** Where {@link withhold} keeps the previous run's map until this start's is written. */
  get #previousFile(): string {
    return `${this.file}.previous`;
  }

  /**
   * Plans the map of this start from the one `file` holds (or, when a start that had
   * withheld it ended before writing its own, `<file>.previous`), if any (see
   * planShardMapAtStart); writes nothing yet ({@link publishPlanned} does).
   *
   * @throws ShardCountMismatchError when `file` was written for another shard count
   * @throws Error when `file` is not a ShardMap
   */
  static async plan(
    file: string,
    members: readonly internal.Member[],
    shardCount: number,
  ): Promise<ShardMapPublisher> {
    const previous = (await readPreviousMap(file)) ?? (await readPreviousMap(`${file}.previous`));
    const map = planShardMapAtStart({ members, shardCount, previous, previousPath: file });
    return new ShardMapPublisher(file, map, previous);
  }

  /** The map in force. */
  get map(): internal.ShardMap {
    return this.#map;
  }

  /**
   * With port 0 the children start before this start's map can be written (its member
   * addresses are those the workers report), and must not follow the previous run's
   * map meanwhile: its addresses are stale (another program may listen there now), and
   * a worker counts as ready only once it knows a map. Moves the file aside to
   * `<file>.previous`, never deleting it: its epochs must survive a start that ends
   * before {@link publishPlanned} (epochs only grow; the journal fences by them).
   */
  async withhold(): Promise<void> {
    try {
      await rename(this.file, this.#previousFile);
    } catch (e: unknown) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
  }

  /**
   * Gives the planned map's members the gRPC addresses the workers reported (by id),
   * before {@link publishPlanned}.
   */
  locate(addresses: ReadonlyMap<string, string>): void {
    this.#map = {
      ...this.#map,
      members: this.#map.members.map((m) => ({ ...m, address: addresses.get(m.id) ?? m.address })),
    };
  }

  /** Writes the planned map, and says which manual moves of the previous run it kept. */
  async publishPlanned(log: Log): Promise<void> {
    await writeShardMapFile(this.file, this.#map);
    this.source.set(this.#map);
    await rm(this.#previousFile, { force: true });
    const map = this.#map;
    const previous = this.#previous;
    const kept = manualMoves(map);
    if (previous !== undefined && kept > 0) {
      log(
        "info",
        `kept ${kept} manual shard ${kept === 1 ? "move" : "moves"} of the previous run`,
        { event: "local.kept_manual_moves", moves: kept },
      );
    } else if (previous !== undefined && manualMoves(previous) > 0) {
      const n = manualMoves(previous);
      log(
        "warn",
        `the workers changed (${previous.members.length} → ${map.members.length}): shards were planned afresh and ${n} manual shard ${n === 1 ? "move" : "moves"} of the previous run ${n === 1 ? "is" : "are"} not kept`,
        { moves: n },
      );
    }
    log("info", "ShardMap written", {
      file: this.file,
      revision: map.revision,
      shards: map.shardCount,
      quorum: map.quorum,
    });
  }

  /** Writes `next` to the file, then makes it the map in force. */
  async publish(next: internal.ShardMap): Promise<void> {
    await writeShardMapFile(this.file, next);
    this.#map = next;
    this.source.set(next);
  }

  close(): void {
    this.source.close();
  }
}

async function readPreviousMap(path: string): Promise<internal.ShardMap | undefined> {
  if (!existsSync(path)) return undefined;
  const text = await readFile(path, "utf8");
  try {
    return internal.ShardMap.fromJSON(JSON.parse(text));
  } catch (e: unknown) {
    throw new Error(
      `${path} is not a ShardMap (${e instanceof Error ? e.message : String(e)}); remove it or use another --data-dir`,
    );
  }
}
