import assert from "node:assert/strict";
import { test } from "node:test";
import { parseGatewayArgs, UsageError } from "./main.js";

test("the flags of the build plan parse into a gateway config", () => {
  assert.deepEqual(
    parseGatewayArgs([
      "--grpc",
      "127.0.0.1:50051",
      "--gossip",
      "127.0.0.1:50060",
      "--http",
      "127.0.0.1:9100",
      "--shard-map-file",
      "/tmp/berth/shard-map.json",
      "--shard-map-wait-ms",
      "250",
    ]),
    {
      grpc: "127.0.0.1:50051",
      gossip: "127.0.0.1:50060",
      http: "127.0.0.1:9100",
      shardMapFile: "/tmp/berth/shard-map.json",
      shardMapWaitMs: 250,
    },
  );
});

test("listen addresses default to the local ports and --help is recognised", () => {
  const config = parseGatewayArgs(["--shard-map-file", "/m.json", "--node-id", "gw-1"]);
  assert.notEqual(config, "help");
  assert.deepEqual(config, {
    grpc: "127.0.0.1:50051",
    gossip: "127.0.0.1:50060",
    http: "127.0.0.1:9100",
    shardMapFile: "/m.json",
    shardMapWaitMs: 10_000,
    nodeId: "gw-1",
  });
  assert.equal(parseGatewayArgs(["--help"]), "help");
  const named = parseGatewayArgs(["--shard-map-file", "/m.json", "--cluster-id", "abc-123"]);
  assert.ok(named !== "help");
  assert.equal(named.clusterId, "abc-123");
  assert.throws(
    () => parseGatewayArgs(["--shard-map-file", "/m.json", "--cluster-id", "A"]),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message ===
        `--cluster-id: a cluster id is 1-64 lowercase letters, digits and inner '-', got "A"`,
  );
});

test("usage errors name the flag and what is wrong with it", () => {
  const cases: [string[], RegExp][] = [
    [[], /^--shard-map-file is required$/],
    [
      ["--shard-map-file", "rel/map.json"],
      /^--shard-map-file "rel\/map.json" must be an absolute path$/,
    ],
    [
      ["--shard-map-file", "/m.json", "--grpc", "localhost"],
      /^--grpc "localhost" is not host:port/,
    ],
    [
      ["--shard-map-file", "/m.json", "--http", "1.2.3.4:70000"],
      /^--http "1.2.3.4:70000" is not host:port/,
    ],
    [
      ["--shard-map-file", "/m.json", "--shard-map-wait-ms=-1"],
      /^--shard-map-wait-ms "-1" is not a non-negative integer/,
    ],
    [
      ["--shard-map-file", "/m.json", "--shard-map-wait-ms", "soon"],
      /^--shard-map-wait-ms "soon" is not a non-negative integer/,
    ],
    [["--shard-map-file", "/m.json", "--bogus"], /Unknown option '--bogus'/],
    [["--shard-map-file", "/m.json", "extra"], /positional/i],
  ];
  for (const [args, message] of cases) {
    assert.throws(
      () => parseGatewayArgs(args),
      (e: unknown) => e instanceof UsageError && message.test(e.message),
      `args ${JSON.stringify(args)}`,
    );
  }
});
