/**
 * The file-backed {@link ShardMapSource} and its atomic writer: how local mode
 * publishes a ShardMap to its workers and gateway, and how they follow it.
 */

import { type FSWatcher, watch } from "node:fs";
import { readFile, stat } from "node:fs/promises";
import { basename, dirname } from "node:path";
import { ShardMap, type ShardMapSource, shardMapProblem } from "@berth/proto";
import { writeFileAtomic } from "./atomic-file.js";

/** Options of {@link FileShardMapSource}. */
export interface FileShardMapSourceOptions {
  /** Fallback poll interval in milliseconds (default 2000), for when fs.watch misses events. */
  pollIntervalMs?: number;
  /** Whether to use fs.watch at all (default true); false polls only, e.g. on network filesystems. */
  watch?: boolean;
}

/** Counters of a {@link FileShardMapSource}, for metrics and tests. */
export interface FileShardMapSourceStats {
  /** Maps accepted (each of a higher revision than the one before). */
  accepted: number;
  /** Reads that failed other than "file missing": unreadable, partial or invalid content. */
  errors: number;
  /** The last such error, for people. */
  lastError: string | undefined;
}

/**
 * A {@link ShardMapSource} backed by a JSON file holding `ShardMap.toJSON(map)`
 * (written with {@link writeShardMapFile}). The first read starts at construction
 * (await {@link FileShardMapSource.ready} for it); then it watches the file's
 * directory with fs.watch (which survives the file being replaced by rename) and
 * polls as a fallback.
 * A missing file just means "no map yet"; a partial or invalid file is counted in
 * {@link stats} and ignored (the previous map stays current) — never thrown, never
 * logged. Listeners hear only maps of a higher revision.
 */
export class FileShardMapSource implements ShardMapSource {
  readonly #path: string;
  readonly #listeners = new Set<(map: ShardMap) => void>();
  readonly #stats: FileShardMapSourceStats = { accepted: 0, errors: 0, lastError: undefined };
  #map: ShardMap | undefined;
  #watcher: FSWatcher | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #reading: Promise<void> | undefined;
  #again = false;
  #lastSeen = "";
  /** Settles after the first read of the file (whatever its outcome). */
  readonly ready: Promise<void>;

  /**
   * @param path the JSON file to follow (it need not exist yet; its directory should)
   * @param options poll interval, and whether to watch
   */
  constructor(path: string, options: FileShardMapSourceOptions = {}) {
    this.#path = path;
    const name = basename(path);
    if (options.watch !== false) this.#watch(name);
    this.#timer = setInterval(() => this.#poll(), options.pollIntervalMs ?? 2000);
    this.#timer.unref();
    this.ready = this.#refresh();
  }

  #watch(name: string): void {
    try {
      this.#watcher = watch(dirname(this.#path), (_event, file) => {
        if (file === null || file === name) void this.#refresh();
      });
      // Like the poll timer, watching alone must not keep a process alive.
      this.#watcher.unref();
      this.#watcher.on("error", (e: unknown) => {
        // The directory went away or the platform gave up: the poll keeps going.
        this.#fail(`watch failed: ${String(e)}`);
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch (e: unknown) {
      this.#fail(`cannot watch ${dirname(this.#path)}: ${String(e)}; polling only`);
    }
  }

  /** @inheritdoc */
  current(): ShardMap | undefined {
    return this.#map;
  }

  /** @inheritdoc */
  subscribe(listener: (map: ShardMap) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Counters: maps accepted, read errors and the last error. */
  stats(): Readonly<FileShardMapSourceStats> {
    return { ...this.#stats };
  }

  /** @inheritdoc */
  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#listeners.clear();
  }

  #fail(message: string): void {
    this.#stats.errors++;
    this.#stats.lastError = message;
  }

  /** Re-reads the file; coalesces calls so at most one read runs and one waits. */
  #refresh(): Promise<void> {
    if (this.#reading !== undefined) {
      this.#again = true;
      return this.#reading;
    }
    this.#reading = (async () => {
      try {
        do {
          this.#again = false;
          await this.#read();
        } while (this.#again && !this.#closed);
      } finally {
        this.#reading = undefined;
      }
    })();
    return this.#reading;
  }

  #poll(): void {
    // Cheap check first: rename gives a new inode, rewrite a new mtime or size.
    stat(this.#path).then(
      (s) => {
        const seen = `${s.ino}:${s.size}:${s.mtimeMs}`;
        if (seen !== this.#lastSeen) void this.#refresh();
      },
      (e: unknown) => {
        if (!isMissing(e)) this.#fail(`cannot stat ${this.#path}: ${String(e)}`);
      },
    );
  }

  async #read(): Promise<void> {
    if (this.#closed) return;
    let map: ShardMap;
    try {
      const s = await stat(this.#path);
      this.#lastSeen = `${s.ino}:${s.size}:${s.mtimeMs}`;
      const text = await readFile(this.#path, "utf8");
      map = ShardMap.fromJSON(JSON.parse(text));
    } catch (e: unknown) {
      if (!isMissing(e)) this.#fail(`cannot read ${this.#path}: ${String(e)}`);
      return;
    }
    const problem = shardMapProblem(map);
    if (problem !== undefined) {
      this.#fail(`invalid shard map in ${this.#path}: ${problem}`);
      return;
    }
    if (this.#closed || (this.#map !== undefined && map.revision <= this.#map.revision)) return;
    this.#map = map;
    this.#stats.accepted++;
    // Outside the try: a throwing listener is a bug and must surface, not count as a bad file.
    for (const listener of [...this.#listeners]) listener(map);
  }
}

function isMissing(e: unknown): boolean {
  return typeof e === "object" && e !== null && (e as { code?: unknown }).code === "ENOENT";
}

/**
 * Writes `map` as `ShardMap.toJSON(map)` to `path` atomically (see writeFileAtomic):
 * readers see the old file or the new one, never a partial one.
 *
 * @param path destination file (its directory must exist)
 * @param map the map to publish
 */
export async function writeShardMapFile(path: string, map: ShardMap): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(ShardMap.toJSON(map), null, 2)}\n`);
}
