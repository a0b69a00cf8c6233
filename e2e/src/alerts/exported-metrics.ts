// The metric names Berth's processes really export, so alerts and dashboards can be
// checked against them: a real worker and a real gateway (local mode, SQLite journal,
// loopback) scraped over HTTP, and the operator's registry as its main() builds it.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRegistry } from "@berth/common";
import { startGateway } from "@berth/gateway";
import { operatorMetrics } from "@berth/operator";
import { internal, StaticShardMapSource } from "@berth/proto";
import { openJournal, registerLeaseMetrics, startWorker } from "@berth/worker";
import { pino } from "pino";

/**
 * Names of the series in a Prometheus text exposition: each `# TYPE` family, with
 * `_bucket`, `_sum` and `_count` for histograms and `_sum`, `_count` for summaries.
 */
export function seriesNames(exposition: string): Set<string> {
  const names = new Set<string>();
  for (const line of exposition.split("\n")) {
    const m = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (!m) continue;
    const [, name = "", type] = m;
    names.add(name);
    if (type === "histogram") for (const s of ["_bucket", "_sum", "_count"]) names.add(name + s);
    if (type === "summary") for (const s of ["_sum", "_count"]) names.add(name + s);
  }
  return names;
}

/** What each component exports, by component. */
export interface ExportedMetrics {
  readonly worker: Set<string>;
  readonly gateway: Set<string>;
  readonly operator: Set<string>;
  /** Every name of the three. */
  readonly all: Set<string>;
}

/** Starts a worker and a gateway, scrapes them, builds the operator's registry; cleans up. */
export async function exportedMetrics(): Promise<ExportedMetrics> {
  const logger = pino({ level: "silent" });
  const dir = mkdtempSync(join(tmpdir(), "berth-exported-metrics-"));
  const journal = await openJournal(`sqlite://${join(dir, "journal.db")}`);
  const source = new StaticShardMapSource();
  const cleanups: (() => Promise<void> | void)[] = [
    () => journal.close(),
    () => rmSync(dir, { recursive: true, force: true }),
  ];
  try {
    const worker = await startWorker({
      id: "worker-0",
      grpc: "127.0.0.1:0",
      http: "127.0.0.1:0",
      journal,
      shardMapSource: source,
      logger,
    });
    cleanups.unshift(() => worker.close());
    // Kubernetes mode adds the Lease's metrics to the worker's registry (worker main.ts).
    registerLeaseMetrics(worker.registry, () => ({ renewals: 0, failures: 0 }));
    source.set({
      revision: 1,
      shardCount: 4,
      members: [{ id: worker.id, address: worker.address }],
      quorum: 1,
      shards: [0, 1, 2, 3].map((shard) => ({
        shard,
        owner: worker.id,
        epoch: 1,
        state: internal.ShardState.SHARD_STATE_ACTIVE,
      })),
    });
    await worker.whenReady();
    const gateway = await startGateway({
      grpc: "127.0.0.1:0",
      gossip: "127.0.0.1:0",
      http: "127.0.0.1:0",
      shardMapSource: source,
      logger,
    });
    cleanups.unshift(() => gateway.close());
    const scrape = async (address: string | undefined) =>
      seriesNames(await (await fetch(`http://${address}/metrics`)).text());
    const operatorRegistry = createRegistry("operator");
    operatorMetrics(operatorRegistry);
    const exported = {
      worker: await scrape(worker.httpAddress),
      gateway: await scrape(gateway.httpAddress),
      operator: seriesNames(await operatorRegistry.metrics()),
    };
    return {
      ...exported,
      all: new Set([...exported.worker, ...exported.gateway, ...exported.operator]),
    };
  } finally {
    for (const c of cleanups) await c();
  }
}

/** PromQL words that are not metric names: keywords and aggregation operators. */
const PROMQL_WORDS = new Set([
  // keywords
  "and",
  "or",
  "unless",
  "by",
  "without",
  "on",
  "ignoring",
  "group_left",
  "group_right",
  "bool",
  "offset",
  "inf",
  "nan",
  // aggregations (followed by `by (…)` rather than by their argument)
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
]);

/**
 * The metric names a PromQL expression selects: identifiers that are neither a function
 * or aggregation (followed by `(`), a keyword, a label name (inside `{}` or a `by`/`on`
 * list), a duration, nor inside a string. Grafana variables ($namespace, $__rate_interval)
 * are ignored.
 */
export function metricNamesIn(expr: string): Set<string> {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/'(?:[^'\\]|\\.)*'/g, "''")
    .replace(/\{[^}]*\}/g, "")
    .replace(/\[[^\]]*\]/g, "")
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "$1")
    .replace(/\$\{?\w+\}?/g, "");
  const names = new Set<string>();
  for (const m of stripped.matchAll(/[A-Za-z_:][A-Za-z0-9_:]*/g)) {
    const word = m[0];
    const after = stripped.slice((m.index ?? 0) + word.length).trimStart();
    if (after.startsWith("(")) continue;
    if (PROMQL_WORDS.has(word.toLowerCase())) continue;
    const before = stripped.slice(0, m.index ?? 0);
    if (/\d$/.test(before)) continue; // 5m, 1e3
    names.add(word);
  }
  return names;
}
