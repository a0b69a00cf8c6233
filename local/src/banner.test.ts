import assert from "node:assert/strict";
import { test } from "node:test";
import { internal, planShardMap, shardOf } from "@berth/proto";
import { banner, bannerExample } from "./banner.js";

const info = {
  gateway: { grpc: "127.0.0.1:50051", http: "127.0.0.1:9100", gossip: "127.0.0.1:50060" },
  workers: [
    { id: "worker-0", grpc: "127.0.0.1:50061", http: "127.0.0.1:9101", shards: 130 },
    { id: "worker-1", grpc: "127.0.0.1:50062", http: "127.0.0.1:9102", shards: 126 },
  ],
  control: "127.0.0.1:9099",
  dataDir: "/repo/.berth",
  journal: "sqlite:///repo/.berth/journal.db",
  shardCount: 256,
  revision: 1,
  pools: 12,
  manifests: ["examples/pools.yaml"],
  example: { pool: "delivery/north-a", shard: 17, moveTo: "worker-1" },
  watching: true,
};

test("the banner says where every process listens and how to call the cluster", () => {
  const text = banner(info);
  assert.match(
    text,
    /2 workers, 256 shards \(ShardMap revision 1\), 12 pools configured from examples\/pools\.yaml/,
  );
  assert.match(
    text,
    /^ {2}gateway {4}grpc 127\.0\.0\.1:50051 {3}metrics http:\/\/127\.0\.0\.1:9100\/metrics/m,
  );
  assert.match(text, /^ {2}worker-1 {3}grpc 127\.0\.0\.1:50062 .* 126 shards$/m);
  assert.match(text, /^ {2}npm run berth -- reserve delivery\/north-a 2$/m);
  assert.match(
    text,
    /grpcurl -plaintext -d '\{"pool":"delivery\/north-a"\}' 127\.0\.0\.1:50051 berth\.v1\.CapacityService\/GetPool/,
  );
  assert.match(text, /curl -X POST 'http:\/\/127\.0\.0\.1:9099\/shards\/17\/move\?to=worker-1'/);
  assert.match(text, /Ctrl-C stops everything\./);
});

test("on a non-default port the CLI examples carry --address", () => {
  const text = banner({ ...info, gateway: { ...info.gateway, grpc: "127.0.0.1:41000" } });
  assert.match(text, /npm run berth -- --address 127\.0\.0\.1:41000 availability/);
});

test("the banner's example is the first open pool, to move to a worker that does not own it", () => {
  const ids = ["worker-0", "worker-1", "worker-2"];
  const map = planShardMap({
    members: ids.map((id) => ({ id, address: `${id}:1` })),
    shardCount: 16,
    quorum: 1,
  });
  const specs = [
    internal.PoolSpec.fromPartial({ pool: "ns/closed", closed: true }),
    internal.PoolSpec.fromPartial({ pool: "ns/open" }),
  ];
  const example = bannerExample(specs, map, ids);
  const shard = shardOf("ns/open", 16);
  assert.equal(example?.pool, "ns/open");
  assert.equal(example?.shard, shard);
  assert.ok(example !== undefined && ids.includes(example.moveTo));
  assert.notEqual(example?.moveTo, map.shards[shard]?.owner);
  assert.equal(bannerExample(specs.slice(0, 1), map, ids), undefined);
});
