// How local mode starts a worker or gateway child: from the esbuild bundle in
// <package>/dist/ when it is at least as new as every source it was built from (what
// `npm ci` leaves: its `prepare` script runs `npm run build`), else from the sources
// through tsx. A bundle starts in well under half the time (no TypeScript compiled at
// start), which is most of a restart's wall time; a stale one would run code the
// developer has since changed, so any newer source file means the sources run.
import { readdirSync, statSync } from "node:fs";
import { join, relative, resolve } from "node:path";

/** The packages a worker or gateway bundle is built from, besides its own. */
const SHARED_PACKAGES = ["proto", "common", "kubernetes"] as const;

/** What a child runs, and why. */
export interface ChildEntry {
  /** `node` arguments before the child's own flags (loaders and the entry file). */
  readonly nodeArgs: readonly string[];
  /** "bundle" (dist/main.js) or "sources" (src/main.ts through tsx). */
  readonly kind: "bundle" | "sources";
  /** Why the sources run, when they do; for the log. */
  readonly reason?: string;
}

/**
 * The entry of `pkg` ("worker" or "gateway") under `root`, with `preload` (a module
 * every child imports first) in front of it.
 */
export function childEntry(root: string, pkg: "worker" | "gateway", preload: string): ChildEntry {
  const bundle = resolve(root, pkg, "dist/main.js");
  const sources = resolve(root, pkg, "src/main.ts");
  const fromSources = (reason: string): ChildEntry => ({
    nodeArgs: ["--import", "tsx", "--import", preload, sources],
    kind: "sources",
    reason,
  });
  let builtMs: number;
  try {
    builtMs = statSync(bundle).mtimeMs;
  } catch {
    return fromSources(`${pkg}/dist/main.js does not exist (npm run build makes it)`);
  }
  for (const p of [pkg, ...SHARED_PACKAGES]) {
    const newer = newerSource(resolve(root, p, "src"), builtMs);
    if (newer !== undefined) {
      return fromSources(`${relative(root, newer)} changed since npm run build`);
    }
  }
  return {
    nodeArgs: ["--enable-source-maps", "--import", preload, bundle],
    kind: "bundle",
  };
}

/** A .ts file under `dir` (tests aside) modified after `sinceMs`, if any. */
function newerSource(dir: string, sinceMs: number): string | undefined {
  let entries: import("node:fs").Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return undefined;
  }
  for (const e of entries) {
    const path = join(dir, e.name);
    if (e.isDirectory()) {
      const found = newerSource(path, sinceMs);
      if (found !== undefined) return found;
    } else if (e.name.endsWith(".ts") && !e.name.endsWith(".test.ts")) {
      if (statSync(path).mtimeMs > sinceMs) return path;
    }
  }
  return undefined;
}
