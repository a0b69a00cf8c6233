// The pure parts of `npm run bench:k8s`: percentiles, the ledger verdict, and reading
// kube-apiserver's /metrics. No timing is asserted anywhere (the machine is shared).
import assert from "node:assert/strict";
import { test } from "node:test";
import { percentiles, verdict } from "./kubernetes-failover.js";
import { apiLatencyOf, apiWritesOf, loadPools, poolManifest } from "./kubernetes-pools.js";

test("percentiles are nearest-rank: p50, p99 and max of the values", () => {
  const xs = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.deepEqual(percentiles(xs), { p50: 50, p99: 99, max: 100 });
  assert.deepEqual(percentiles([7]), { p50: 7, p99: 7, max: 7 });
  assert.ok(Number.isNaN(percentiles([]).p50));
});

test("the ledger verdict names every problem, and is ok only without any", () => {
  const clean = {
    pools: 3,
    mismatched: [],
    oversold: [],
    acknowledgedUnits: 10,
    reservedUnits: 10,
    falseReplays: 0,
    duplicateIds: 0,
    unresolved: 0,
    lostReleases: 0,
  };
  assert.match(verdict(clean), /^ok \(10 units acknowledged = 10 reserved/);
  const bad = verdict({ ...clean, oversold: ["bench/a: 13 > 12"], falseReplays: 2 }, 1);
  assert.match(bad, /^FAILED: /);
  assert.match(bad, /1 pools oversold/);
  assert.match(bad, /2 false replays/);
  assert.match(bad, /1 operations unresolved/);
});

const METRICS = `# HELP apiserver_request_total x
apiserver_request_total{code="200",component="apiserver",dry_run="",group="berth.dev",resource="capacitypools",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 40
apiserver_request_total{code="409",component="apiserver",dry_run="",group="berth.dev",resource="capacitypools",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 2
apiserver_request_total{code="201",component="apiserver",dry_run="",group="berth.dev",resource="capacitypools",scope="resource",subresource="",verb="POST",version="v1alpha1"} 7
apiserver_request_total{code="200",component="apiserver",dry_run="",group="coordination.k8s.io",resource="leases",scope="resource",subresource="",verb="GET",version="v1"} 99
apiserver_request_duration_seconds_sum{component="apiserver",dry_run="",group="berth.dev",resource="capacitypools",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 0.84
apiserver_request_duration_seconds_count{component="apiserver",dry_run="",group="berth.dev",resource="capacitypools",scope="resource",subresource="status",verb="PATCH",version="v1alpha1"} 42
`;

test("kube-apiserver's mutating requests are summed by verb and resource/subresource", () => {
  assert.deepEqual(apiWritesOf(METRICS), {
    "PATCH capacitypools/status": 42,
    "POST capacitypools": 7,
  });
  assert.deepEqual(apiLatencyOf(METRICS), {
    "PATCH capacitypools/status": { sum: 0.84, count: 42 },
  });
});

test("the load's pools: every third one small, ids in the bench namespace", () => {
  const pools = loadPools(6);
  assert.deepEqual(
    pools.map((p) => p.capacity),
    [12, 1_000_000, 1_000_000, 12, 1_000_000, 1_000_000],
  );
  assert.equal(pools[5]?.id, "bench/load-0005");
  assert.match(poolManifest("bench", "p-1", 5), /kind: CapacityPool\n[\s\S]*capacity: 5\n$/);
});
