// Applying CapacityPool manifests to the cluster, once and on every change. Which
// specs to send is the operator's CapacityPool → Configure diff (configuresNeeded in
// @berth/operator); this is its local adapter: manifests in, Configure through the
// Router out.
import { type FSWatcher, watch } from "node:fs";
import { stat } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { digestedSpecOf, SpecDigest } from "@berth/common";
import { type AcceptedSpec, configuresNeeded } from "@berth/operator";
import { internal, shardOf } from "@berth/proto";
import type { Log } from "./cluster-log.js";
import type { PoolManifest } from "./manifests/index.js";
import type { ShardReports } from "./shard-reports.js";

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

/** Options of {@link PoolSync}. */
export interface PoolSyncOptions {
  /** Reads and parses the manifests again. @throws ManifestError when they are invalid */
  readonly load: () => Promise<PoolManifest[]>;
  /** Remembers the parsed manifests for the next start; never rejects. */
  readonly saveCache: () => Promise<void>;
  /** Sends one spec to its pool's owner; `initial`: as part of the start. */
  readonly configure: (
    spec: internal.PoolSpec,
    initial: boolean,
  ) => Promise<internal.ConfigureResponse>;
  /** At start: which of `specs` their owners already hold in force (none is sent). */
  readonly inForce: (
    specs: readonly internal.PoolSpec[],
  ) => Promise<ReadonlySet<internal.PoolSpec>>;
  /** Configures in flight at once. */
  readonly concurrency: number;
  readonly log: Log;
}

/** The pools of the manifests, kept configured: what was accepted, and the manifests' order. */
export class PoolSync {
  readonly #o: PoolSyncOptions;
  readonly #accepted = new Map<string, AcceptedSpec>();
  #order: string[];

  constructor(options: PoolSyncOptions, manifests: readonly PoolManifest[]) {
    this.#o = options;
    this.#order = manifests.map((m) => m.spec.pool);
  }

  /** Pool ids configured, in manifest order. */
  get pools(): string[] {
    return this.#order.filter((p) => this.#accepted.has(p));
  }

  /** How many pools are configured. */
  get size(): number {
    return this.#accepted.size;
  }

  /**
   * Sends a Configure for every spec of `list` not in force. At start (`initial`),
   * specs the owners report in force are not sent, and a failure rejects; later
   * ones are logged and retried at the next apply.
   *
   * @throws Error at start when some pools could not be configured
   */
  async apply(list: readonly PoolManifest[], initial: boolean): Promise<void> {
    const { log } = this.#o;
    const pending = configuresNeeded({
      desired: list.map((m) => m.spec),
      accepted: (pool) => this.#accepted.get(pool),
    });
    if (pending.length === 0) return;
    let send = pending;
    let inForce = 0;
    if (initial) {
      const skip = await this.#o.inForce(pending.map((p) => p.spec));
      inForce = skip.size;
      for (const p of pending)
        if (skip.has(p.spec)) this.#accepted.set(p.spec.pool, { key: p.key });
      send = pending.filter((p) => !skip.has(p.spec));
    }
    const result = await applyPools(
      send.map((p) => p.spec),
      (spec) => this.#o.configure(spec, initial),
      this.#o.concurrency,
    );
    const failed = new Set(result.failures.map((f) => f.pool));
    for (const p of send)
      if (!failed.has(p.spec.pool)) this.#accepted.set(p.spec.pool, { key: p.key });
    if (result.failures.length === 0 && inForce > 0) {
      log("info", `${inForce} pools already in force on their owners; no Configure sent for them`, {
        inForce,
      });
    }
    if (result.failures.length > 0) {
      const first = result.failures.slice(0, 5).map((f) => `${f.pool}: ${f.error}`);
      const message = `${result.failures.length} of ${send.length} pools could not be configured:\n  ${first.join("\n  ")}`;
      if (initial) throw new Error(message);
      log("error", message);
    }
    const total = { ...result, configured: result.configured + inForce };
    log("info", describeApplied(total), {
      event: "local.pools_configured",
      configured: total.configured,
      created: total.created,
      updated: total.updated,
      unchanged: total.configured - total.created - total.updated,
    });
  }

  /** Re-reads the manifests and configures new or changed pools; invalid ones change nothing. */
  async reload(): Promise<void> {
    const { log } = this.#o;
    let list: PoolManifest[];
    try {
      list = await this.#o.load();
    } catch (e: unknown) {
      log("error", "manifests changed but are invalid; keeping the pools as they are", {
        error: e instanceof Error ? e.message : String(e),
      });
      return;
    }
    await this.#o.saveCache();
    const ids = new Set(list.map((m) => m.spec.pool));
    const removed = [...this.#accepted.keys()].filter((p) => !ids.has(p));
    if (removed.length > 0) {
      log("warn", "pools removed from the manifests keep being served (there is no delete yet)", {
        pools: removed,
      });
    }
    const known = new Set(this.#order);
    this.#order = [...this.#order, ...list.map((m) => m.spec.pool).filter((p) => !known.has(p))];
    await this.apply(list, false);
  }
}

/** Longest wait, at start, for every shard's owner to report it serving (specs in force). */
const IN_FORCE_WAIT_MS = 10_000;

/**
 * The specs (of `specs`) whose shard's owner, serving it at the map's epoch, reports
 * exactly these specs in force for the shard's pools (and no other pool). Waits a
 * little for every owner to report its shards SERVING; a shard it does not report so
 * (or with another digest) is configured pool by pool as before.
 */
export async function specsInForce(
  specs: readonly internal.PoolSpec[],
  map: internal.ShardMap,
  reports: ShardReports,
): Promise<Set<internal.PoolSpec>> {
  const serving = (shard: number) => {
    const a = map.shards[shard];
    const r = a === undefined ? undefined : reports.reportOf(a.owner, shard);
    return a !== undefined &&
      r !== undefined &&
      r.epoch === a.epoch &&
      r.state === internal.ShardReportState.SHARD_REPORT_STATE_SERVING
      ? r
      : undefined;
  };
  try {
    await reports.waitFor(
      "every shard's owner reports it serving",
      () => map.shards.every((a) => a.owner === "" || serving(a.shard) !== undefined),
      IN_FORCE_WAIT_MS,
    );
  } catch {
    // Whatever is not reported serving by now is configured pool by pool.
  }
  const byShard = new Map<number, internal.PoolSpec[]>();
  for (const spec of specs) {
    const shard = shardOf(spec.pool, map.shardCount);
    const list = byShard.get(shard);
    if (list === undefined) byShard.set(shard, [spec]);
    else list.push(spec);
  }
  const skip = new Set<internal.PoolSpec>();
  for (const [shard, list] of byShard) {
    const reported = serving(shard)?.specDigest ?? "";
    if (reported === "") continue;
    const digest = new SpecDigest();
    let retires = false;
    for (const spec of list) {
      const d = digestedSpecOf(spec);
      if (d === undefined) retires = true;
      else digest.add(spec.pool, d);
    }
    if (!retires && digest.toString() === reported) for (const spec of list) skip.add(spec);
  }
  return skip;
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
