// CapacityPools for `npm run bench:k8s`: manifests, creation with kubectl in batches,
// a watch that records when each pool turns Ready, and scenario 3 — N pools created
// at once: time until every one is Ready, the operator's memory, kube-apiserver's
// memory and the write requests the operator causes.
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { CAPACITY_POOL_PLURAL, GROUP, ResourceInformer, VERSION } from "@berth/kubernetes";
import { until } from "@berth/testing/kubernetes";
import type { LoadPool } from "./kubernetes-load.js";
import { type KubernetesSystem, memoryOf, type PoolItem } from "./kubernetes-system.js";

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** A CapacityPool manifest. */
export function poolManifest(namespace: string, name: string, capacity: number): string {
  return `apiVersion: berth.dev/v1alpha1\nkind: CapacityPool\nmetadata:\n  name: ${name}\n  namespace: ${namespace}\n  labels:\n    bench: k8s\nspec:\n  capacity: ${capacity}\n`;
}

const isReady = (p: PoolItem) =>
  p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

/** Watches every CapacityPool; records when each was first seen Ready. */
export class PoolWatch {
  readonly informer: ResourceInformer<PoolItem>;
  /** "namespace/name" → epoch ms first seen Ready. */
  readonly readyAt = new Map<string, number>();
  /** "namespace/name" → epoch ms first seen with any status. */
  readonly statusAt = new Map<string, number>();
  readonly #off: () => void;

  constructor(system: KubernetesSystem) {
    this.informer = new ResourceInformer<PoolItem>({
      kubeConfig: system.kubeConfig,
      path: `/apis/${GROUP}/${VERSION}/${CAPACITY_POOL_PLURAL}`,
      name: "bench-pools",
      restartDelayMs: { initial: 200, max: 2_000 },
    });
    this.#off = this.informer.onChange((e) => {
      if (e.type === "deleted") return;
      const key = `${e.object.metadata.namespace}/${e.object.metadata.name}`;
      if (e.object.status !== undefined && !this.statusAt.has(key))
        this.statusAt.set(key, Date.now());
      if (isReady(e.object) && !this.readyAt.has(key)) this.readyAt.set(key, Date.now());
    });
    this.informer.start();
  }

  stop(): void {
    this.#off();
    this.informer.stop();
  }
}

/**
 * Writes `manifests` into files of `batch` documents and runs `kubectl create -f` on
 * them, `parallel` at a time. Resolves with the time it took.
 */
export async function createManifests(
  system: KubernetesSystem,
  manifests: readonly string[],
  o: { dir: string; batch: number; parallel: number; log?: (line: string) => void },
): Promise<number> {
  mkdirSync(o.dir, { recursive: true });
  const files: string[] = [];
  for (let i = 0; i < manifests.length; i += o.batch) {
    const file = join(o.dir, `pools-${String(files.length).padStart(4, "0")}.yaml`);
    writeFileSync(file, manifests.slice(i, i + o.batch).join("---\n"));
    files.push(file);
  }
  const started = Date.now();
  let next = 0;
  let done = 0;
  const runner = async () => {
    while (next < files.length) {
      const file = files[next++] as string;
      await system.kubectl("create", "-f", file, "-o", "name");
      done++;
      o.log?.(`created ${Math.min(done * o.batch, manifests.length)}/${manifests.length} pools`);
    }
  };
  await Promise.all(Array.from({ length: Math.min(o.parallel, files.length) }, runner));
  return Date.now() - started;
}

/** The load's pools: every third is small (capacity 12, so it fills), the others large. */
export function loadPools(count: number): LoadPool[] {
  return Array.from({ length: count }, (_, i) => ({
    id: `bench/load-${String(i).padStart(4, "0")}`,
    capacity: i % 3 === 0 ? 12 : 1_000_000,
  }));
}

/** Creates the load's pools and waits until all are Ready. */
export async function createLoadPools(
  system: KubernetesSystem,
  pools: readonly LoadPool[],
  dir: string,
): Promise<void> {
  const watch = new PoolWatch(system);
  try {
    await createManifests(
      system,
      pools.map((p) => {
        const [ns, name] = p.id.split("/") as [string, string];
        return poolManifest(ns, name, p.capacity);
      }),
      { dir, batch: 500, parallel: 1 },
    );
    await until(
      `the ${pools.length} load pools to be Ready`,
      () => pools.every((p) => watch.readyAt.has(p.id)),
      300_000,
      () => `${watch.readyAt.size} Ready`,
    );
  } finally {
    watch.stop();
  }
}

/** One sample of the processes and counters scenario 3 follows. */
export interface ManyPoolsSample {
  /** ms after the first create. */
  readonly t: number;
  readonly ready: number;
  readonly withStatus: number;
  readonly operatorRss?: number;
  readonly apiServerRss?: number;
  readonly etcdRss?: number;
  /** berth_operator_status_writes_total of the leader, all results. */
  readonly statusWrites?: number;
  readonly queueDepth?: number;
  /** Mutating requests kube-apiserver served, by "VERB resource[/subresource]". */
  readonly writes?: Record<string, number>;
}

/** What scenario 3 measured. */
export interface ManyPoolsResult {
  readonly pools: number;
  readonly batch: number;
  readonly parallel: number;
  readonly createMs: number;
  /** ms after the first create until all were Ready (undefined: timed out). */
  readonly allReadyMs: number | undefined;
  readonly readyMs: { p50: number; p90: number; p99: number };
  readonly firstStatusMs: number | undefined;
  readonly readyCount: number;
  /**
   * The leading operator: peak RSS (VmHWM), RSS at the start and end, and its V8 heap in
   * use at the end (its nodejs_heap_size_used_bytes after the quiet period: closer to
   * the live set than RSS, which keeps the peak's pages).
   */
  readonly operator: {
    name: string;
    hwm: number;
    startRss: number;
    endRss: number;
    endHeapUsed: number | undefined;
  };
  readonly standbyHwm: number | undefined;
  readonly apiServer: { hwm: number; startRss: number; peakSampledRss: number; endRss: number };
  readonly etcd: { hwm: number; endRss: number };
  /** Status writes of the operator: total, mean per second until all Ready, peak over 5 s. */
  readonly statusWrites: { total: number; meanPerSecond: number; peakPerSecond: number };
  /** kube-apiserver mutating requests from the first create to all Ready, by verb/resource. */
  readonly apiWrites: Record<string, number>;
  /** …and per second over that time. */
  readonly apiWritesPerSecond: number;
  /** Mutating requests per second in the quiet period after all were Ready. */
  readonly quietWritesPerSecond: Record<string, number>;
  readonly quietSeconds: number;
  readonly samples: readonly ManyPoolsSample[];
  /** Shard changes the operator published during the run (none expected: no member changed). */
  readonly shardChanges: Record<string, number>;
}

const MUTATING = ["POST", "PUT", "PATCH", "DELETE", "APPLY", "DELETECOLLECTION"];

/** Sums the series `name{…}` of mutating verbs by "VERB resource[/subresource]". */
function byRequest(metrics: string, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of metrics.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const labels = line.slice(line.indexOf("{") + 1, line.lastIndexOf("}"));
    const get = (k: string) => new RegExp(`(?:^|,)${k}="([^"]*)"`).exec(labels)?.[1] ?? "";
    const verb = get("verb");
    if (!MUTATING.includes(verb)) continue;
    const sub = get("subresource");
    const key = `${verb} ${get("resource")}${sub ? `/${sub}` : ""}`;
    out[key] = (out[key] ?? 0) + Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return out;
}

/** Sums apiserver_request_total by "VERB resource[/subresource]" for mutating verbs. */
export function apiWritesOf(metrics: string): Record<string, number> {
  return byRequest(metrics, "apiserver_request_total");
}

/** kube-apiserver's own time serving mutating requests: sum (s) and count, by request. */
export function apiLatencyOf(metrics: string): Record<string, { sum: number; count: number }> {
  const sums = byRequest(metrics, "apiserver_request_duration_seconds_sum");
  const counts = byRequest(metrics, "apiserver_request_duration_seconds_count");
  return Object.fromEntries(
    Object.entries(counts).map(([k, count]) => [k, { sum: sums[k] ?? 0, count }]),
  );
}

function diff(a: Record<string, number>, b: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(a)) {
    const d = v - (b[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
}

function counterSum(metrics: string, name: string, filter?: RegExp): number {
  let sum = 0;
  for (const line of metrics.split("\n")) {
    if (!line.startsWith(name) || line[name.length] === "_") continue;
    if (filter !== undefined && !filter.test(line)) continue;
    const v = Number(line.slice(line.lastIndexOf(" ") + 1));
    if (Number.isFinite(v)) sum += v;
  }
  return sum;
}

function changesOf(metrics: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const m of metrics.matchAll(/^berth_operator_shard_changes_total\{kind="([^"]+)"\} (\d+)/gm))
    out[m[1] as string] = Number(m[2]);
  return out;
}

/** Scenario 3: creates `count` pools and follows the system until all are Ready. */
export async function runManyPools(
  system: KubernetesSystem,
  o: {
    count: number;
    batch: number;
    parallel: number;
    timeoutMs: number;
    quietMs: number;
    log: (line: string) => void;
  },
): Promise<ManyPoolsResult> {
  const leader = await system.leader();
  if (leader === undefined) throw new Error("no operator leads");
  const standby = system.operators.find((p) => p !== leader);
  const watch = new PoolWatch(system);
  await watch.informer.synced();
  const rss0 = {
    operator: memoryOf(leader.pid)?.rss ?? 0,
    apiServer: memoryOf(system.cp.pids().apiServer)?.rss ?? 0,
  };
  const writes0 = apiWritesOf(await system.apiServerMetrics());
  const opMetrics0 = await leader.metrics();
  const status0 = counterSum(opMetrics0, "berth_operator_status_writes_total", /capacitypool/);
  const changes0 = changesOf(opMetrics0);
  const samples: ManyPoolsSample[] = [];
  const manifests = Array.from({ length: o.count }, (_, i) =>
    poolManifest("bench", `many-${String(i).padStart(5, "0")}`, 100 + (i % 900)),
  );
  const started = Date.now();
  let sampling = true;
  let peakApiRss = rss0.apiServer;
  const sampler = (async () => {
    for (let n = 0; sampling; n++) {
      const apiRss = memoryOf(system.cp.pids().apiServer)?.rss;
      if (apiRss !== undefined) peakApiRss = Math.max(peakApiRss, apiRss);
      // Counters every 5 s (a scrape of kube-apiserver's /metrics is itself a few MB).
      let extra: Partial<ManyPoolsSample> = {};
      if (n % 5 === 0) {
        const [op, api] = await Promise.all([
          leader.metrics().catch(() => ""),
          system.apiServerMetrics().catch(() => ""),
        ]);
        extra = {
          statusWrites:
            counterSum(op, "berth_operator_status_writes_total", /capacitypool/) - status0,
          queueDepth: counterSum(op, "berth_operator_queue_depth"),
          writes: diff(apiWritesOf(api), writes0),
        };
      }
      const opRss = memoryOf(leader.pid)?.rss;
      const etcdRss = memoryOf(system.cp.pids().etcd)?.rss;
      const sample: ManyPoolsSample = {
        t: Date.now() - started,
        ready: watch.readyAt.size,
        withStatus: watch.statusAt.size,
        ...(opRss === undefined ? {} : { operatorRss: opRss }),
        ...(apiRss === undefined ? {} : { apiServerRss: apiRss }),
        ...(etcdRss === undefined ? {} : { etcdRss }),
        ...extra,
      };
      samples.push(sample);
      if (n % 10 === 0) {
        o.log(
          `+${(sample.t / 1000).toFixed(0)} s: ${sample.ready}/${o.count} Ready, ${sample.withStatus} with a status; operator RSS ${mib(sample.operatorRss)} MiB, kube-apiserver RSS ${mib(sample.apiServerRss)} MiB${sample.statusWrites === undefined ? "" : `, ${sample.statusWrites} status writes, queue ${sample.queueDepth}`}`,
        );
      }
      await sleep(1000);
    }
  })();
  const createMs = await createManifests(system, manifests, {
    dir: join(system.dir, "many-pools"),
    batch: o.batch,
    parallel: o.parallel,
    log: (l) => {
      if (/ (\d+)000\//.test(l) || l.includes(`${o.count}/${o.count}`)) o.log(l);
    },
  });
  o.log(`kubectl create of ${o.count} pools took ${(createMs / 1000).toFixed(1)} s`);
  await until(`all ${o.count} pools Ready`, () => watch.readyAt.size >= o.count, o.timeoutMs).catch(
    (e: unknown) => o.log((e as Error).message),
  );
  const allReadyAt =
    watch.readyAt.size >= o.count
      ? [...watch.readyAt.values()].reduce((a, b) => Math.max(a, b), 0)
      : undefined;
  // The quiet period: what the operator writes when nothing changes.
  const quietFrom = apiWritesOf(await system.apiServerMetrics());
  const quietStatus0 = counterSum(
    await leader.metrics(),
    "berth_operator_status_writes_total",
    /capacitypool/,
  );
  o.log(`all Ready (or timed out); measuring ${o.quietMs / 1000} s of quiet`);
  await sleep(o.quietMs);
  const quietTo = apiWritesOf(await system.apiServerMetrics());
  const opEnd = await leader.metrics();
  const quietStatus = counterSum(opEnd, "berth_operator_status_writes_total", /capacitypool/);
  sampling = false;
  await sampler;
  watch.stop();
  const readyTimes = [...watch.readyAt.values()].map((t) => t - started).sort((a, b) => a - b);
  const q = (f: number) =>
    readyTimes[Math.min(readyTimes.length - 1, Math.ceil(f * readyTimes.length) - 1)] ?? Number.NaN;
  const end = allReadyAt ?? Date.now();
  const phaseSeconds = (end - started) / 1000;
  // Status writes: the sample closest to all-Ready, and the peak rate over 5 s windows.
  const statusSamples = samples.filter((s) => s.statusWrites !== undefined);
  const atEnd = [...statusSamples].reverse().find((s) => s.t <= end - started) ?? statusSamples[0];
  let peak = 0;
  for (let i = 1; i < statusSamples.length; i++) {
    const a = statusSamples[i - 1] as ManyPoolsSample;
    const b = statusSamples[i] as ManyPoolsSample;
    peak = Math.max(
      peak,
      (((b.statusWrites ?? 0) - (a.statusWrites ?? 0)) * 1000) / Math.max(1, b.t - a.t),
    );
  }
  const writesAtEnd = atEnd?.writes ?? {};
  const quiet = diff(quietTo, quietFrom);
  const quietSeconds = o.quietMs / 1000;
  const operatorMem = memoryOf(leader.pid);
  const heapLine = /^nodejs_heap_size_used_bytes (\d+(?:\.\d+)?)$/m.exec(
    await leader.metrics().catch(() => ""),
  );
  const apiMem = memoryOf(system.cp.pids().apiServer);
  const etcdMem = memoryOf(system.cp.pids().etcd);
  return {
    pools: o.count,
    batch: o.batch,
    parallel: o.parallel,
    createMs,
    allReadyMs: allReadyAt === undefined ? undefined : allReadyAt - started,
    readyMs: { p50: q(0.5), p90: q(0.9), p99: q(0.99) },
    firstStatusMs:
      watch.statusAt.size === 0 ? undefined : Math.min(...watch.statusAt.values()) - started,
    readyCount: watch.readyAt.size,
    operator: {
      name: leader.name,
      hwm: operatorMem?.hwm ?? 0,
      startRss: rss0.operator,
      endRss: operatorMem?.rss ?? 0,
      endHeapUsed: heapLine === null ? undefined : Number(heapLine[1]),
    },
    standbyHwm: memoryOf(standby?.pid)?.hwm,
    apiServer: {
      hwm: apiMem?.hwm ?? 0,
      startRss: rss0.apiServer,
      peakSampledRss: peakApiRss,
      endRss: apiMem?.rss ?? 0,
    },
    etcd: { hwm: etcdMem?.hwm ?? 0, endRss: etcdMem?.rss ?? 0 },
    statusWrites: {
      total: atEnd?.statusWrites ?? 0,
      meanPerSecond: (atEnd?.statusWrites ?? 0) / Math.max(0.001, (atEnd?.t ?? 1) / 1000),
      peakPerSecond: peak,
    },
    apiWrites: writesAtEnd,
    apiWritesPerSecond:
      Object.values(writesAtEnd).reduce((a, b) => a + b, 0) /
      Math.max(0.001, (atEnd?.t ?? phaseSeconds * 1000) / 1000),
    quietWritesPerSecond: {
      ...Object.fromEntries(Object.entries(quiet).map(([k, v]) => [k, v / quietSeconds])),
      "(operator status writes)": (quietStatus - quietStatus0) / quietSeconds,
    },
    quietSeconds,
    samples,
    shardChanges: diff(changesOf(opEnd), changes0),
  };
}

export function mib(bytes: number | undefined): string {
  return bytes === undefined ? "?" : (bytes / 2 ** 20).toFixed(0);
}
