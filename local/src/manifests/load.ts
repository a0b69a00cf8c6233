// Reading manifest files and directories from disk (the IO around capacity-pool.ts).
import { readdir, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { mergePoolManifests, type PoolManifest, parseCapacityPools } from "./capacity-pool.js";
import { ManifestError } from "./errors.js";

/**
 * Expands manifest paths: a file stands for itself, a directory for its `*.yaml`
 * and `*.yml` files (not recursive), sorted by name so the order is stable.
 *
 * @throws ManifestError when a path does not exist or a directory holds no YAML
 */
export async function expandManifestPaths(paths: readonly string[]): Promise<string[]> {
  const files: string[] = [];
  for (const path of paths) {
    let isDirectory: boolean;
    try {
      isDirectory = (await stat(path)).isDirectory();
    } catch (e: unknown) {
      throw new ManifestError([
        { file: path, document: 0, path: "", message: `cannot read: ${errorText(e)}` },
      ]);
    }
    if (!isDirectory) {
      files.push(path);
      continue;
    }
    const names = (await readdir(path))
      .filter((n) => n.endsWith(".yaml") || n.endsWith(".yml"))
      .sort();
    if (names.length === 0) {
      throw new ManifestError([
        { file: path, document: 0, path: "", message: "directory holds no *.yaml or *.yml file" },
      ]);
    }
    files.push(...names.map((n) => join(path, n)));
  }
  return files;
}

/**
 * Reads and validates every CapacityPool in the given files and directories.
 *
 * @throws ManifestError with every problem of every file
 */
export async function loadPoolManifests(paths: readonly string[]): Promise<PoolManifest[]> {
  const files = await expandManifestPaths(paths);
  const perFile: PoolManifest[][] = [];
  const problems: ManifestError["problems"][number][] = [];
  for (const file of files) {
    try {
      perFile.push(parseCapacityPools(await readFile(file, "utf8"), file));
    } catch (e: unknown) {
      if (e instanceof ManifestError) {
        problems.push(...e.problems);
        continue;
      }
      problems.push({ file, document: 0, path: "", message: `cannot read: ${errorText(e)}` });
    }
  }
  if (problems.length > 0) throw new ManifestError(problems);
  return mergePoolManifests(perFile);
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
