import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "@berth/common";
import { parseGatewayArgs } from "./main.js";

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

test("--address-file takes an absolute path, and listen addresses may ask for port 0", () => {
  assert.deepEqual(
    parseGatewayArgs([
      "--shard-map-file",
      "/m.json",
      "--grpc",
      "127.0.0.1:0",
      "--gossip",
      "127.0.0.1:0",
      "--http",
      "127.0.0.1:0",
      "--shard-map-wait-ms",
      "0",
      "--address-file",
      "/run/berth/gateway.addresses.json",
    ]),
    {
      grpc: "127.0.0.1:0",
      gossip: "127.0.0.1:0",
      http: "127.0.0.1:0",
      shardMapFile: "/m.json",
      shardMapWaitMs: 0,
      addressFile: "/run/berth/gateway.addresses.json",
    },
  );
});

test("usage errors name the flag and what is wrong with it", () => {
  const cases: [string[], RegExp][] = [
    [[], /^give exactly one of --shard-map-file and --shard-map-resource$/],
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
    [
      ["--shard-map-file", "/m.json", "--address-file", "addresses.json"],
      /^--address-file "addresses.json" must be an absolute path$/,
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

test("Kubernetes mode: --shard-map-resource NS/NAME, gossip pulled every second unless told", () => {
  const config = parseGatewayArgs(["--shard-map-resource", "berth/berth", "--kubeconfig", "/k"]);
  assert.notEqual(config, "help");
  if (config === "help") return;
  assert.deepEqual(config.shardMapResource, {
    namespace: "berth",
    name: "berth",
    kubeconfig: "/k",
  });
  assert.equal(config.shardMapFile, undefined);
  assert.equal(config.gossipPullIntervalMs, 1_000);
  const tuned = parseGatewayArgs(["--shard-map-resource", "a/b", "--gossip-pull-ms", "250"]);
  assert.equal(tuned !== "help" && tuned.gossipPullIntervalMs, 250);
  const local = parseGatewayArgs(["--shard-map-file", "/m.json"]);
  assert.equal(local !== "help" && local.gossipPullIntervalMs, undefined);
  for (const [args, message] of [
    [["--shard-map-resource", "berth"], /must be NAMESPACE\/NAME/],
    [["--shard-map-resource", "Berth/x"], /must be NAMESPACE\/NAME/],
    [["--shard-map-resource", "a/b", "--shard-map-file", "/m.json"], /exactly one of/],
    [["--shard-map-file", "/m.json", "--kubeconfig", "/k"], /only for --shard-map-resource/],
    [["--shard-map-resource", "a/b", "--gossip-pull-ms", "5"], /integer ≥ 10/],
  ] as const) {
    assert.throws(() => parseGatewayArgs(args), message);
  }
});

test("internal TLS: --internal-tls-dir (and a server name) for worker and gossip connections", () => {
  const config = parseGatewayArgs([
    "--shard-map-file",
    "/m.json",
    "--internal-tls-dir",
    "/etc/berth/tls",
    "--internal-tls-server-name",
    "berth-worker.berth.svc",
  ]);
  assert.ok(config !== "help");
  assert.deepEqual(config.internalTls, {
    dir: "/etc/berth/tls",
    serverName: "berth-worker.berth.svc",
  });
  assert.throws(
    () => parseGatewayArgs(["--shard-map-file", "/m.json", "--internal-tls-server-name", "x"]),
    (e: unknown) =>
      e instanceof UsageError &&
      e.message === "--internal-tls-server-name needs --internal-tls-dir",
  );
});
