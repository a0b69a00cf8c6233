import assert from "node:assert/strict";
import { test } from "node:test";
import { LOCAL_USAGE, parseLocalArgs } from "./options.js";
import { derivePorts } from "./ports.js";

const parse = (argv: string[], env: Record<string, string> = {}) =>
  parseLocalArgs(argv, env, "/repo", "/home/me");

test("with no flags the cluster uses the documented defaults", () => {
  assert.deepEqual(parse([]), {
    help: false,
    workers: 3,
    dataDir: "/repo/.berth",
    pools: ["/repo/examples/pools.yaml"],
    port: 50051,
    controlPort: undefined,
    shards: 256,
    journal: "sqlite",
    logFormat: "pretty",
    watch: true,
  });
});

test("flags win over the environment, which wins over the defaults", () => {
  const env = {
    BERTH_WORKERS: "5",
    BERTH_PORT: "0",
    BERTH_POOLS: "a.yaml:b",
    BERTH_LOG_FORMAT: "json",
  };
  const o = parse(
    ["--workers", "2", "--pools", "x.yaml", "--pools", "dir", "--data-dir", "d", "--no-watch"],
    env,
  );
  assert.equal(o.workers, 2);
  assert.equal(o.port, 0);
  assert.deepEqual(o.pools, ["x.yaml", "dir"]);
  assert.equal(o.dataDir, "/home/me/d");
  assert.equal(o.logFormat, "json");
  assert.equal(o.watch, false);
  assert.deepEqual(parse([], env).pools, ["a.yaml", "b"]);
});

test("malformed flags are rejected with the flag and the value", () => {
  const bad = (argv: string[], message: string) =>
    assert.throws(() => parse(argv), { name: "UsageError", message });
  bad(["--workers", "0"], '--workers must be an integer from 1 to 64, got "0"');
  bad(["--port", "70000"], '--port must be an integer from 0 to 65535, got "70000"');
  bad(["--log-format", "xml"], '--log-format must be pretty or json, got "xml"');
  bad(
    ["--journal", "cassandra"],
    '--journal must be sqlite or a journal URL such as sqlite:///abs/path/journal.db, got "cassandra"',
  );
  bad(["pools.yaml"], 'unexpected argument "pools.yaml" (pools go after --pools)');
  assert.throws(() => parse(["--wat"]), {
    name: "UsageError",
    message: /Unknown option '--wat'/,
  });
  assert.equal(parse(["-h"]).help, true);
  assert.match(LOCAL_USAGE, /--port N/);
});

test("ports derive from the gateway port as in the build plan", () => {
  assert.deepEqual(derivePorts(50051, 2), {
    gateway: { grpc: 50051, gossip: 50060, http: 9100 },
    workers: [
      { grpc: 50061, http: 9101 },
      { grpc: 50062, http: 9102 },
    ],
    control: 9099,
  });
  assert.deepEqual(derivePorts(50151, 1), {
    gateway: { grpc: 50151, gossip: 50160, http: 9200 },
    workers: [{ grpc: 50161, http: 9201 }],
    control: 9199,
  });
  assert.throws(() => derivePorts(40051, 1), {
    name: "RangeError",
    message:
      "--port 40051 with 1 workers puts a port at -900, outside 1..65535 (ports derive from --port: gateway HTTP at 9100+(port-50051), workers at port+10+i); choose another --port or --port 0",
  });
});
