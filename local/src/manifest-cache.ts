// Parsed CapacityPool manifests, remembered by each file's content (SHA-256), so that a
// restart on unchanged files does not parse YAML again: at 100,000 pools parsing is
// ~13 s of one core, more than the rest of a restart. A changed file is parsed and
// validated as always; the cache only ever answers for bytes it has validated before,
// with this build's parser (its fingerprint is part of the key).
import { createHash } from "node:crypto";
import { readFile, rename, writeFile } from "node:fs/promises";
import { poolSpecOf, validateCapacityPool } from "@berth/kubernetes";
import { internal } from "@berth/proto";
import {
  expandManifestPaths,
  ManifestError,
  type ManifestProblem,
  mergePoolManifests,
  type PoolManifest,
  parseCapacityPools,
} from "./manifests/index.js";

/** Bumped whenever the file's layout changes. */
const FORMAT = 1;

/** The parser and validator this build runs: a cache written by another build is not used. */
const FINGERPRINT = createHash("sha256")
  .update(
    [parseCapacityPools, mergePoolManifests, validateCapacityPool, poolSpecOf]
      .map(String)
      .join("\n"),
  )
  .digest("hex");

interface CachedFile {
  readonly sha256: string;
  readonly manifests: readonly PoolManifest[];
}

interface CacheFile {
  readonly format: number;
  readonly fingerprint: string;
  /** By path, as the user wrote it (PoolManifest.file). */
  readonly files: Readonly<Record<string, { sha256: string; manifests: unknown[] }>>;
}

/**
 * Reads and validates every CapacityPool in the given files and directories, like
 * `loadPoolManifests`, reusing the parse of any file whose content is unchanged since
 * it was last parsed (in this process or, through {@link save}, a previous one).
 */
export class ManifestCache {
  private files = new Map<string, CachedFile>();
  private dirty = false;

  private constructor(private readonly path: string | undefined) {}

  /**
   * A cache backed by `path` (read now if it exists and was written by this build;
   * any problem with it just means an empty cache), or in memory only.
   */
  static async open(path: string | undefined): Promise<ManifestCache> {
    const cache = new ManifestCache(path);
    if (path === undefined) return cache;
    let parsed: CacheFile;
    try {
      parsed = JSON.parse(await readFile(path, "utf8")) as CacheFile;
    } catch {
      return cache;
    }
    if (parsed?.format !== FORMAT || parsed.fingerprint !== FINGERPRINT) return cache;
    try {
      for (const [file, entry] of Object.entries(parsed.files)) {
        cache.files.set(file, {
          sha256: entry.sha256,
          manifests: entry.manifests.map((m) => {
            const r = m as { spec: unknown; document: number; line: number };
            return {
              spec: internal.PoolSpec.fromJSON(r.spec),
              file,
              document: r.document,
              line: r.line,
            };
          }),
        });
      }
    } catch {
      cache.files.clear();
    }
    return cache;
  }

  /**
   * Every CapacityPool of `paths`, in file order.
   *
   * @throws ManifestError with every problem of every file
   */
  async load(paths: readonly string[]): Promise<PoolManifest[]> {
    const files = await expandManifestPaths(paths);
    const perFile: (readonly PoolManifest[])[] = [];
    const problems: ManifestProblem[] = [];
    const seen = new Set<string>();
    for (const file of files) {
      seen.add(file);
      let bytes: Buffer;
      try {
        bytes = await readFile(file);
      } catch (e: unknown) {
        problems.push({ file, document: 0, path: "", message: `cannot read: ${errorText(e)}` });
        continue;
      }
      const sha256 = createHash("sha256").update(bytes).digest("hex");
      const cached = this.files.get(file);
      if (cached !== undefined && cached.sha256 === sha256) {
        perFile.push(cached.manifests);
        continue;
      }
      try {
        const manifests = parseCapacityPools(bytes.toString("utf8"), file);
        this.files.set(file, { sha256, manifests });
        this.dirty = true;
        perFile.push(manifests);
      } catch (e: unknown) {
        if (this.files.delete(file)) this.dirty = true;
        if (e instanceof ManifestError) problems.push(...e.problems);
        else
          problems.push({ file, document: 0, path: "", message: `cannot read: ${errorText(e)}` });
      }
    }
    for (const file of [...this.files.keys()]) {
      if (!seen.has(file)) {
        this.files.delete(file);
        this.dirty = true;
      }
    }
    if (problems.length > 0) throw new ManifestError(problems);
    return mergePoolManifests(perFile);
  }

  /** Writes the cache to its file (atomically) if anything changed since it was read. */
  async save(): Promise<void> {
    if (this.path === undefined || !this.dirty) return;
    const files: CacheFile["files"] = Object.fromEntries(
      [...this.files].map(([file, c]) => [
        file,
        {
          sha256: c.sha256,
          manifests: c.manifests.map((m) => ({
            spec: internal.PoolSpec.toJSON(m.spec),
            document: m.document,
            line: m.line,
          })),
        },
      ]),
    );
    const body: CacheFile = { format: FORMAT, fingerprint: FINGERPRINT, files };
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(body));
    await rename(tmp, this.path);
    this.dirty = false;
  }
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
