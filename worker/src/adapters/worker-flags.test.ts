import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { UsageError } from "@berth/common";
import { parseWorkerFlags, USAGE } from "./worker-flags.js";

const base = [
  "--id",
  "worker-1",
  "--grpc",
  "127.0.0.1:50062",
  "--http",
  "127.0.0.1:9102",
  "--journal",
  "sqlite:///tmp/j.db",
  "--shard-map-file",
  "/tmp/map.json",
];

function usage(args: string[]): string {
  try {
    parseWorkerFlags(args);
  } catch (e: unknown) {
    assert.ok(e instanceof UsageError, String(e));
    assert.equal(e.name, "UsageError");
    return e.message;
  }
  return assert.fail("expected a UsageError");
}

describe("worker flags", () => {
  test("the documented flags parse, with repeatable gossip peers and a default snapshot interval", () => {
    assert.deepEqual(
      parseWorkerFlags([...base, "--gossip-peer", "127.0.0.1:50060", "--gossip-peer", "gw:1"]),
      {
        clusterId: "",
        id: "worker-1",
        grpc: "127.0.0.1:50062",
        http: "127.0.0.1:9102",
        journal: "sqlite:///tmp/j.db",
        shardMapFile: "/tmp/map.json",
        gossipPeers: ["127.0.0.1:50060", "gw:1"],
        snapshotEvery: 100,
        idempotencyRetentionMs: 24 * 3_600_000,
        handOffTimeoutMs: 0,
      },
    );
    for (const [text, ms] of [
      ["90s", 90_000],
      ["30m", 1_800_000],
      ["7d", 7 * 86_400_000],
      ["250ms", 250],
    ] as const) {
      const f = parseWorkerFlags([...base, "--idempotency-retention", text]);
      assert.ok(f !== "help");
      assert.equal(f.idempotencyRetentionMs, ms);
    }
    const seven = parseWorkerFlags([...base, "--snapshot-every", "7"]);
    assert.ok(seven !== "help");
    assert.equal(seven.snapshotEvery, 7);
    assert.equal(parseWorkerFlags(["--help"]), "help");
    const named = parseWorkerFlags([...base, "--cluster-id", "c0ffee-42"]);
    assert.ok(named !== "help");
    assert.equal(named.clusterId, "c0ffee-42");
    const leaving = parseWorkerFlags([...base, "--hand-off-timeout-ms", "25000"]);
    assert.ok(leaving !== "help");
    assert.equal(leaving.handOffTimeoutMs, 25_000);
  });

  test("the usage names both journals and the cluster id", () => {
    assert.match(USAGE, /sqlite:\/\/\/absolute\/path\.db/);
    assert.match(USAGE, /cassandra:\/\/host:port\[,host:port\]\/keyspace/);
    assert.match(USAGE, /--cluster-id/);
    assert.match(USAGE, /--hand-off-timeout-ms/);
    assert.match(USAGE, /--idempotency-retention/);
  });

  test("--address-file is optional and takes an absolute path", () => {
    const without = parseWorkerFlags(base);
    assert.ok(without !== "help");
    assert.equal(without.addressFile, undefined);
    const flags = parseWorkerFlags([
      ...base,
      "--address-file",
      "/run/berth/worker-1.addresses.json",
    ]);
    assert.ok(flags !== "help");
    assert.equal(flags.addressFile, "/run/berth/worker-1.addresses.json");
    assert.equal(
      usage([...base, "--address-file", "worker-1.addresses.json"]),
      '--address-file must be an absolute path, got "worker-1.addresses.json"',
    );
    assert.match(USAGE, /--address-file/);
  });

  test("bad flags are rejected with a precise message", () => {
    assert.equal(usage(base.slice(2)), "missing required flag --id");
    assert.match(usage([...base, "--bogus"]), /Unknown option '--bogus'/);
    assert.equal(
      usage([...base, "--snapshot-every", "0"]),
      '--snapshot-every must be a positive integer, got "0"',
    );
    for (const bad of ["0h", "24", "1.5h", "h", "1w"]) {
      assert.equal(
        usage([...base, "--idempotency-retention", bad]),
        `--idempotency-retention must be a positive number with a unit ms, s, m, h or d (e.g. 24h), got "${bad}"`,
      );
    }
    assert.equal(
      usage([...base, "--hand-off-timeout-ms", "5s"]),
      '--hand-off-timeout-ms must be a non-negative integer (milliseconds), got "5s"',
    );
    assert.equal(
      usage([...base.slice(0, 2), "--grpc", "nope", ...base.slice(4)]),
      '--grpc: invalid address "nope": expected host:port with port 0-65535',
    );
    assert.equal(
      usage([...base.slice(0, 8), "--shard-map-file", "map.json"]),
      '--shard-map-file must be an absolute path, got "map.json"',
    );
    assert.equal(
      usage([...base, "--cluster-id", "Bad_Id"]),
      `--cluster-id: a cluster id is 1-64 lowercase letters, digits and inner '-', got "Bad_Id"`,
    );
  });

  test("Kubernetes mode: the ShardMap resource, a Lease, an address others can dial", () => {
    const k8s = [
      "--id",
      "berth-worker-0",
      "--grpc",
      "0.0.0.0:7000",
      "--http",
      "0.0.0.0:9100",
      "--journal",
      "cassandra://cassandra:9042/berth",
      "--shard-map-resource",
      "berth/berth",
      "--advertise",
      "berth-worker-0.berth-worker.berth.svc:7000",
    ];
    const flags = parseWorkerFlags(k8s);
    assert.ok(flags !== "help");
    assert.equal(flags.shardMapFile, undefined);
    assert.deepEqual(flags.kubernetes, {
      namespace: "berth",
      shardMap: "berth",
      advertise: "berth-worker-0.berth-worker.berth.svc:7000",
      leaseDurationMs: 6_000,
      leaseRenewMs: 1_000,
    });
    const without = k8s.slice(0, -2);
    assert.match(
      usage(without),
      /--advertise must be an address other processes can dial, got "0.0.0.0:7000"/,
    );
    assert.match(
      usage([...k8s, "--shard-map-file", "/m.json"]),
      /exactly one of --shard-map-file and --shard-map-resource/,
    );
    assert.match(
      usage([...k8s, "--lease-renew-ms", "4000"]),
      /at most half of --lease-duration-ms/,
    );
    assert.match(usage([...k8s.slice(0, 10), "--shard-map-resource", "berth"]), /NAMESPACE\/NAME/);
    assert.match(usage(["--id", "Worker_0", ...k8s.slice(2)]), /must be a DNS subdomain/);
    assert.match(usage([...base, "--lease-duration-ms", "9000"]), /only for --shard-map-resource/);
  });

  test("Kubernetes mode: --lease-owner-pod names the worker's own pod", () => {
    const k8s = [
      "--id",
      "berth-worker-0",
      "--grpc",
      "127.0.0.1:7000",
      "--http",
      "127.0.0.1:9100",
      "--journal",
      "sqlite:///tmp/j.db",
      "--shard-map-resource",
      "berth/berth",
    ];
    const flags = parseWorkerFlags([...k8s, "--lease-owner-pod", "berth-worker-0"]);
    assert.ok(flags !== "help");
    assert.equal(flags.kubernetes?.leaseOwnerPod, "berth-worker-0");
    const none = parseWorkerFlags(k8s);
    assert.ok(none !== "help");
    assert.equal(none.kubernetes?.leaseOwnerPod, undefined);
    assert.ok(!("leaseOwnerPod" in (none.kubernetes ?? {})));
    assert.match(
      usage([...k8s, "--lease-owner-pod", "$(POD_NAME)"]),
      /--lease-owner-pod must be a pod name \(a DNS subdomain.*\), got "\$\(POD_NAME\)"/,
    );
    assert.match(
      usage([...base, "--lease-owner-pod", "worker-1"]),
      /--lease-owner-pod is only for --shard-map-resource/,
    );
    assert.match(USAGE, /--lease-owner-pod/);
  });
});

describe("internal TLS flags", () => {
  test("--internal-tls-dir and --internal-tls-server-name are parsed together; without them, plaintext", () => {
    const flags = parseWorkerFlags([
      ...base,
      "--internal-tls-dir",
      "/etc/berth/tls",
      "--internal-tls-server-name",
      "berth-worker.berth.svc",
    ]);
    assert.notEqual(flags, "help");
    if (flags === "help") return;
    assert.deepEqual(flags.internalTls, {
      dir: "/etc/berth/tls",
      serverName: "berth-worker.berth.svc",
    });
    const plain = parseWorkerFlags(base);
    assert.ok(plain !== "help" && plain.internalTls === undefined);
  });

  test("a server name without a directory, or one that is not a DNS name, is a usage error", () => {
    assert.equal(
      usage([...base, "--internal-tls-server-name", "w.berth.svc"]),
      "--internal-tls-server-name needs --internal-tls-dir",
    );
    assert.equal(
      usage([...base, "--internal-tls-dir", "/d", "--internal-tls-server-name", "w:7000"]),
      `--internal-tls-server-name must be a DNS name (letters, digits, '-', '.'), got "w:7000"`,
    );
  });

  test("the usage text documents both flags", () => {
    assert.match(USAGE, /--internal-tls-dir DIR/);
    assert.match(USAGE, /--internal-tls-server-name NAME/);
  });
});
