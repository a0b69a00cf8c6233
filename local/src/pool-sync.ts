// Applying CapacityPool manifests to the cluster, once and on every change.
import { type FSWatcher, watch } from "node:fs";
import { stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { internal } from "@berth/proto";
import type { PoolManifest } from "./manifests/index.js";

/** Sends one spec to its pool's owner (through the Router). */
export type Configure = (spec: internal.PoolSpec) => Promise<internal.ConfigureResponse>;

/** Outcome of applying a set of manifests. */
export interface ApplyResult {
  /** Pools whose Configure succeeded. */
  readonly configured: number;
  /** Of those, pools whose spec was not already in force. */
  readonly changed: number;
  /** Of the changed, pools that did not exist before (their first event). */
  readonly created: number;
  /** Of the changed, pools that existed with another spec. */
  readonly updated: number;
  readonly failures: readonly { readonly pool: string; readonly error: string }[];
}

/** Configures every pool, `concurrency` at a time. Never throws: failures are listed. */
export async function applyPools(
  specs: readonly internal.PoolSpec[],
  configure: Configure,
  concurrency = 32,
): Promise<ApplyResult> {
  let configured = 0;
  let changed = 0;
  let created = 0;
  const failures: { pool: string; error: string }[] = [];
  let next = 0;
  const lane = async () => {
    while (next < specs.length) {
      const spec = specs[next++] as internal.PoolSpec;
      try {
        const r = await configure(spec);
        configured++;
        if (r.changed) changed++;
        // A pool's first event is its first configure: version 1 means it is new.
        if (r.changed && r.pool?.version === 1) created++;
      } catch (e: unknown) {
        failures.push({ pool: spec.pool, error: e instanceof Error ? e.message : String(e) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, specs.length) }, lane));
  return { configured, changed, created, updated: changed - created, failures };
}

/** The log line of an {@link ApplyResult}, e.g. "configured 12 pools: 12 new". */
export function describeApplied(
  r: Pick<ApplyResult, "configured" | "created" | "updated">,
): string {
  const unchanged = r.configured - r.created - r.updated;
  const parts = [
    r.created > 0 ? `${r.created} new` : undefined,
    r.updated > 0 ? `${r.updated} updated` : undefined,
    unchanged > 0 ? `${unchanged} unchanged` : undefined,
  ].filter((p) => p !== undefined);
  return `configured ${r.configured} ${r.configured === 1 ? "pool" : "pools"}${parts.length > 0 ? `: ${parts.join(", ")}` : ""}`;
}

/** Specs that are new or differ from `applied` (keyed by pool id). */
export function changedSpecs(
  manifests: readonly PoolManifest[],
  applied: ReadonlyMap<string, string>,
): internal.PoolSpec[] {
  return manifests.map((m) => m.spec).filter((s) => applied.get(s.pool) !== specKey(s));
}

/** A stable comparison key of a spec. */
export function specKey(spec: internal.PoolSpec): string {
  const labels = Object.entries(spec.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return JSON.stringify([spec.capacity, labels, spec.window ?? null, spec.closed, spec.generation]);
}

/**
 * Watches manifest files and directories (through their directories, so editors
 * that save by rename are seen) and calls `onChange` once per burst of changes.
 */
export async function watchManifests(
  paths: readonly string[],
  onChange: () => void,
  debounceMs = 250,
): Promise<{ close(): void }> {
  const dirs = new Map<string, ((name: string) => boolean) | undefined>();
  for (const p of paths) {
    const abs = resolve(p);
    if ((await stat(abs)).isDirectory()) {
      dirs.set(abs, undefined);
    } else {
      const dir = dirname(abs);
      const files = new Set([abs]);
      const prev = dirs.get(dir);
      if (dirs.has(dir) && prev === undefined) continue;
      dirs.set(dir, (name) => files.has(resolve(dir, name)) || (prev?.(name) ?? false));
    }
  }
  let timer: NodeJS.Timeout | undefined;
  const watchers: FSWatcher[] = [];
  for (const [dir, accept] of dirs) {
    const w = watch(dir, (_event, name) => {
      if (name === null) return;
      const n = name.toString();
      const relevant = accept === undefined ? /\.ya?ml$/.test(n) : accept(n);
      if (!relevant) return;
      clearTimeout(timer);
      timer = setTimeout(onChange, debounceMs);
    });
    // A watch error (the directory was removed) must not crash the supervisor.
    w.on("error", () => w.close());
    watchers.push(w);
  }
  return {
    close() {
      clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
