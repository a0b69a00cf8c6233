// docs/metrics.md documents every Berth metric the processes export, and nothing more.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { exportedMetrics } from "./exported-metrics.js";

test("docs/metrics.md lists exactly the berth_* and grpc_server_* metrics a worker, a gateway and the operator export", async () => {
  const doc = readFileSync(new URL("../../../docs/metrics.md", import.meta.url), "utf8");
  const documented = new Set(
    [...doc.matchAll(/^\| `((?:berth|grpc_server)_[a-z0-9_]+)` +\|/gm)].map((m) => m[1] as string),
  );
  const { all } = await exportedMetrics();
  // Families only: a histogram's _bucket, _sum and _count go with it.
  const derived = (n: string) =>
    /_(bucket|sum|count)$/.test(n) && all.has(n.replace(/_(bucket|sum|count)$/, ""));
  const families = [...all].filter((n) => /^(berth|grpc_server)_/.test(n) && !derived(n));
  assert.ok(families.includes("berth_requests_total"), "the scrape found the metrics");
  assert.deepEqual(
    families.filter((n) => !documented.has(n)).sort(),
    [],
    "exported but not documented",
  );
  assert.deepEqual(
    [...documented].filter((n) => !all.has(n)).sort(),
    [],
    "documented but not exported",
  );
});
